"""Many rows in few round trips, inside the caller's transaction.

PostgreSQL: ``COPY … FROM STDIN`` on the session's own connection (so the rows commit or roll
back with the batch and its checkpoint). A multi-row ``INSERT … VALUES`` with thousands of rows
was slower than the database itself: psycopg parses the statement's placeholders on the client
for every execution, which took most of a batch's time (see README, "Database and indexer").
SQLite: the driver's ``executemany`` (one prepared statement, rows bound in C).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from operator import itemgetter
from typing import Any, cast

import sqlalchemy.exc
from sqlalchemy import JSON, Connection, Table, func, insert, select, text
from sqlalchemy.orm import Session


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def insert_rows(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Inserts ``rows`` (dicts with the same keys) into ``table``."""
    if not rows:
        return
    if is_postgres(session):
        _copy(session, table, rows)
    else:
        _executemany(session, table, rows)


def new_ids(session: Session, table: Table, count: int) -> list[int]:
    """``count`` fresh primary keys from the table's sequence (PostgreSQL only)."""
    return list(
        session.execute(
            text(
                "SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)"
            ),
            {"table": table.name, "n": count},
        ).scalars()
    )


def insert_with_ids(
    session: Session, table: Table, rows: Sequence[dict[str, Any]], key: str, scope: dict[str, Any]
) -> list[int]:
    """Inserts ``rows`` and returns their primary keys in the same order.

    PostgreSQL: keys drawn from the sequence first, then COPY. SQLite: ``executemany``, then the
    keys read back by ``key`` (unique within ``scope``, e.g. the trade's on-chain id within its
    chain and contract), since a ``RETURNING`` that keeps the rows' order made SQLAlchemy send
    one statement per row there.
    """
    if not rows:
        return []
    if is_postgres(session):
        ids = new_ids(session, table, len(rows))
        _copy(session, table, [dict(row, id=pk) for row, pk in zip(rows, ids, strict=True)])
        return ids
    _executemany(session, table, rows)
    wanted = [row[key] for row in rows]
    # SQLite gives a new row the largest id so far plus one, and this transaction holds the
    # write lock: the rows just written are normally the last len(rows) ids, in order.
    last = session.execute(select(func.max(table.c.id))).scalar_one()
    tail = session.execute(
        select(table.c.id, table.c[key]).where(table.c.id > last - len(rows)).order_by(table.c.id)
    ).all()
    if [value for _, value in tail] == wanted:
        return [pk for pk, _ in tail]
    found: dict[Any, int] = {}
    conditions = [table.c[name] == value for name, value in scope.items()]
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        found.update(
            (value, pk)
            for pk, value in session.execute(
                select(table.c.id, table.c[key]).where(*conditions, table.c[key].in_(chunk))
            )
        )
    return [found[value] for value in wanted]


def _copy(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    names = list(rows[0])
    columns = [table.c[name] for name in names]
    # Values go as the driver dumps them (int, bool, datetime, str): the bind processors of
    # these columns change nothing on PostgreSQL except JSON, which is serialised here.
    as_json = [isinstance(column.type, JSON) for column in columns]
    raw = session.connection().connection.driver_connection
    assert raw is not None
    quoted = ", ".join(f'"{name}"' for name in names)
    values = _converted(rows, names, [(i, json.dumps) for i, j in enumerate(as_json) if j])
    statement = f'COPY "{table.name}" ({quoted}) FROM STDIN'
    with _as_sqlalchemy_errors(session.connection(), statement):
        with raw.cursor() as cursor, cursor.copy(statement) as copy:
            for row in values:
                copy.write_row(row)


def _executemany(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """The driver's ``executemany`` with the values converted by the columns' own bind
    processors (what SQLAlchemy would send), without its per-row statement bookkeeping."""
    names = list(rows[0])
    connection = session.connection()
    compiled = insert(table).compile(dialect=connection.dialect, column_keys=names)
    order = list(compiled.positiontup or ())
    if sorted(order) != sorted(names):  # not a plain positional INSERT: let SQLAlchemy do it
        session.execute(insert(table), list(rows))
        return
    processors = [cast(Any, compiled._bind_processors.get(name)) for name in order]
    values = _converted(rows, order, [(i, p) for i, p in enumerate(processors) if p is not None])
    raw = connection.connection.driver_connection
    assert raw is not None
    with _as_sqlalchemy_errors(connection, compiled.string):
        cursor = raw.cursor()
        try:
            cursor.executemany(compiled.string, values)
        finally:
            cursor.close()


@contextmanager
def _as_sqlalchemy_errors(connection: Connection, statement: str) -> Iterator[None]:
    """The driver's own errors (``sqlite3.OperationalError: database is locked``, psycopg's)
    raised as SQLAlchemy's, as every other statement of a batch raises them: the indexer's loop
    waits out a locked or unreachable database by those classes instead of stopping."""
    dbapi = connection.dialect.loaded_dbapi
    try:
        yield
    except dbapi.Error as exc:
        raise sqlalchemy.exc.DBAPIError.instance(
            statement, None, exc, dbapi.Error, dialect=connection.dialect
        ) from exc


def _converted(
    rows: Sequence[dict[str, Any]], names: list[str], convert: list[tuple[int, Any]]
) -> list[list[Any]]:
    """Each row's values in ``names`` order, with ``convert`` (position, function) applied to
    the values that are not None."""
    get = itemgetter(*names)
    out = []
    for row in rows:
        values = list(get(row)) if len(names) > 1 else [get(row)]
        for i, function in convert:
            value = values[i]
            if value is not None:
                values[i] = function(value)
        out.append(values)
    return out
