"""A ``limits`` storage in the market's own database, so every gunicorn worker counts the same
requests against the same limit without a server of its own (Redis, memcached).

Flask-Limiter picks it with ``RATELIMIT_STORAGE_URI = "db+" + <SQLAlchemy URL>``, for example
``db+sqlite:////srv/escrow/escrow.sqlite3`` or ``db+postgresql+psycopg://user@host/escrow``;
``create_app`` uses the app's own ``DATABASE_URL`` this way unless the setting names another
store. Counters are rows of ``rate_limits`` (:class:`~escrow.db.models.RateLimitCounter`),
created by the Alembic migrations like every other table.

Only what the fixed-window strategy (Flask-Limiter's default) calls is here: ``incr``, ``get``,
``get_expiry``, ``clear``, ``reset`` and ``check``. Each is one SQL statement in autocommit
mode; ``incr`` is a single ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` that starts a new
window when the stored one has ended, so parallel increments from any number of processes
count exactly. The moving-window and sliding-window strategies need other methods
(``acquire_entry``, ``get_moving_window``, ``acquire_sliding_window_entry``...) that this
storage does not have: ``limits`` refuses to build those strategies on it, so a
``RATELIMIT_STRATEGY`` other than ``fixed-window`` fails when the app starts, not on a request.

A ``redis://`` URI in ``ESCROW_RATELIMIT_STORAGE`` uses Flask-Limiter's own Redis storage
instead (the ``redis`` package is pinned). The scaled shape does (docs/scaling.md): every
request increments a counter, and in Redis that is one in-memory ``INCR`` rather than a write
to the database that the indexer and the pages use.

Times are the web server's clock (``time.time()``), the clock Flask-Limiter compares them with
for its headers; workers on several hosts need synchronised clocks, as for any shared store.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Callable
from typing import Any

import limits.storage
from sqlalchemy import Double, Engine, Table, bindparam, case, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.dml import Insert

from escrow.db.engine import make_engine
from escrow.db.models import RateLimitCounter

#: The URI prefix that selects this storage; the rest of the URI is the SQLAlchemy URL.
PREFIX = "db+"
#: How many increments (per process) between two purges of expired counters.
PURGE_EVERY = 100
#: Longest key stored as it is; longer ones (none that Flask-Limiter builds today) are hashed.
MAX_KEY_CHARS = 255

TABLE: Table = RateLimitCounter.__table__  # type: ignore[assignment]


def storage_uri(database_url: str) -> str:
    """The ``RATELIMIT_STORAGE_URI`` that counts in the database at ``database_url``."""
    return PREFIX + database_url


def _sqlalchemy_url(uri: str) -> str:
    if not uri.startswith(PREFIX):
        raise ValueError(f"a database rate-limit storage URI starts with {PREFIX!r}")
    url = uri[len(PREFIX) :]
    # As escrow.db.engine.database_url does: plain PostgreSQL URLs use the psycopg 3 driver.
    for scheme in ("postgres://", "postgresql://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme) :]
    return url


def _row_key(key: str) -> str:
    if len(key) <= MAX_KEY_CHARS:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def _increment_statement(insert: Callable[[Table], Any]) -> Insert:
    """``INSERT ... ON CONFLICT (key) DO UPDATE ... RETURNING count``: a new row, or one more
    hit in the current window, or the first hit of a new window when the stored one ended."""
    now = bindparam("now", type_=Double)
    stmt = insert(TABLE).values(
        key=bindparam("key"), count=bindparam("amount"), expires_at=bindparam("new_expires_at")
    )
    ended = TABLE.c.expires_at <= now
    stmt = stmt.on_conflict_do_update(
        index_elements=[TABLE.c.key],
        # Both expressions read the row as it was before this statement.
        set_={
            "count": case((ended, stmt.excluded.count), else_=TABLE.c.count + stmt.excluded.count),
            "expires_at": case((ended, stmt.excluded.expires_at), else_=TABLE.c.expires_at),
        },
    )
    return stmt.returning(TABLE.c.count)


_INCREMENT = {
    "sqlite": _increment_statement(sqlite.insert),
    "postgresql": _increment_statement(postgresql.insert),
}
# Built once: building a statement costs more than running it on SQLite.
_CURRENT = (TABLE.c.key == bindparam("key")) & (TABLE.c.expires_at > bindparam("now"))
_GET_COUNT = select(TABLE.c.count).where(_CURRENT)
_GET_EXPIRY = select(TABLE.c.expires_at).where(_CURRENT)
_DELETE_KEY = delete(TABLE).where(TABLE.c.key == bindparam("key"))
_DELETE_ENDED = delete(TABLE).where(TABLE.c.expires_at <= bindparam("now"))
_DELETE_ALL = delete(TABLE)
_PING = select(TABLE.c.key).limit(1)


class DatabaseStorage(limits.storage.Storage):
    """Fixed-window counters in the ``rate_limits`` table (see the module's documentation).

    ``purge_every``: expired counters are deleted on every that many increments of this
    process (default :data:`PURGE_EVERY`), so the table holds about the keys seen within the
    longest window. ``clock`` is for tests.
    """

    STORAGE_SCHEME = [
        "db+sqlite",
        "db+sqlite+pysqlite",
        "db+postgres",
        "db+postgresql",
        "db+postgresql+psycopg",
    ]

    def __init__(
        self,
        uri: str,
        wrap_exceptions: bool = False,
        *,
        purge_every: int = PURGE_EVERY,
        clock: Callable[[], float] = time.time,
        **options: Any,
    ) -> None:
        url = _sqlalchemy_url(uri)
        backend = make_url(url).get_backend_name()
        if backend not in _INCREMENT:
            raise ValueError(f"no rate-limit storage for {backend} databases")
        self._increment = _INCREMENT[backend]
        # A few connections of its own, one statement each, committed as it runs. On SQLite
        # make_engine waits up to 10 s for a busy database like the app's engine; on
        # PostgreSQL it checks a pooled connection before use (pool_pre_ping).
        self.engine: Engine = make_engine(
            url, pool_size=2, max_overflow=8, isolation_level="AUTOCOMMIT"
        )
        self.purge_every = max(1, int(purge_every))
        self.clock = clock
        self._increments = itertools.count(1)
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return SQLAlchemyError

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        """Adds ``amount`` to the counter of ``key`` and returns the new count; a counter that
        does not exist or whose window ended starts over at ``amount`` for ``expiry`` seconds."""
        now = self.clock()
        params = {
            "key": _row_key(key),
            "amount": amount,
            "now": now,
            "new_expires_at": now + expiry,
        }
        with self.engine.connect() as conn:
            count = conn.execute(self._increment, params).scalar_one()
            if next(self._increments) % self.purge_every == 0:
                conn.execute(_DELETE_ENDED, {"now": now})
        return int(count)

    def get(self, key: str) -> int:
        """The count in the current window of ``key`` (0 when there is none)."""
        with self.engine.connect() as conn:
            count = conn.scalar(_GET_COUNT, {"key": _row_key(key), "now": self.clock()})
        return int(count or 0)

    def get_expiry(self, key: str) -> float:
        """When the current window of ``key`` ends (now when there is none), in epoch seconds."""
        now = self.clock()
        with self.engine.connect() as conn:
            expires_at = conn.scalar(_GET_EXPIRY, {"key": _row_key(key), "now": now})
        return float(expires_at) if expires_at is not None else now

    def clear(self, key: str) -> None:
        with self.engine.connect() as conn:
            conn.execute(_DELETE_KEY, {"key": _row_key(key)})

    def reset(self) -> int | None:
        """Deletes every counter; returns how many there were."""
        with self.engine.connect() as conn:
            return conn.execute(_DELETE_ALL).rowcount

    def check(self) -> bool:
        """Whether the database answers and has the table (the migrations have run)."""
        try:
            with self.engine.connect() as conn:
                conn.execute(_PING)
        except SQLAlchemyError:
            return False
        return True

    def purge(self) -> int:
        """Deletes the counters whose window has ended; returns how many."""
        with self.engine.connect() as conn:
            return conn.execute(_DELETE_ENDED, {"now": self.clock()}).rowcount

    def dispose(self) -> None:
        """Closes the pooled connections."""
        self.engine.dispose()
