"""One active indexer and one active keeper per database, however many are started.

The scaled shape (docs/scaling.md) runs two indexers and two keepers beside several web hosts:
one of each is active, the other waits. The election is a PostgreSQL session-level advisory
lock (``pg_try_advisory_lock``) taken on a connection of its own that stays open while the
process is active. The lock belongs to that database session: when the process dies (even by
SIGKILL) the server sees its connection close and releases the lock, and the standby, which
tries again every ``poll`` seconds, becomes active within about that time.

The active process calls :meth:`LeaderLock.check` before each batch or pass: if the lock's
connection is gone (server restarted, connection killed), the lock may already be someone
else's, so it raises :class:`LeadershipLost` and the caller stops writing and waits for the
lock again.

SQLite is one file on one host: there is nothing to share with another machine and the
database itself serialises writers, so :func:`leader_lock` returns a lock that is always held
(:class:`NoLock`).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from typing import Protocol

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)

#: Seconds between a standby's attempts to take the lock.
DEFAULT_POLL = 1.0


class LeadershipLost(Exception):
    """The lock's connection is gone: another process may be active now."""


def lock_key(role: str, namespace: str = "") -> int:
    """A stable signed 64-bit key per role ("indexer", "keeper") and database schema
    (``namespace``: two markets in two schemas of one server elect separately)."""
    digest = hashlib.blake2b(f"p2p-escrow:{namespace}:{role}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class Leadership(Protocol):
    role: str

    def try_acquire(self) -> bool: ...

    def acquire(self, stop: threading.Event) -> bool: ...

    def check(self) -> None: ...

    def release(self) -> None: ...


class NoLock:
    """SQLite (one host): always active, nothing to check."""

    def __init__(self, role: str) -> None:
        self.role = role

    def try_acquire(self) -> bool:
        return True

    def acquire(self, stop: threading.Event) -> bool:
        log.info("%s: SQLite database, single host: no leader lock needed", self.role)
        return not stop.is_set()

    def check(self) -> None:
        return None

    def release(self) -> None:
        return None


class LeaderLock:
    """A PostgreSQL advisory lock held on a dedicated connection while this process is active."""

    def __init__(self, url: str, role: str, *, poll: float = DEFAULT_POLL) -> None:
        self.role = role
        self.key = lock_key(role)
        self.poll = poll
        # One connection at a time, never pooled: the lock lives exactly as long as it.
        self._engine: Engine = create_engine(
            url,
            poolclass=NullPool,
            isolation_level="AUTOCOMMIT",
            connect_args={"application_name": f"escrow {role} lock", "connect_timeout": 5},
        )
        self._connection: Connection | None = None

    @property
    def held(self) -> bool:
        return self._connection is not None

    def try_acquire(self) -> bool:
        """One attempt; True when this process holds the lock now."""
        if self._connection is not None:
            return True
        connection = self._engine.connect()
        try:
            namespace = connection.execute(
                text("SELECT current_database() || '.' || current_schema()")
            ).scalar_one()
            self.key = lock_key(self.role, str(namespace))
            got = bool(
                connection.execute(
                    text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}
                ).scalar_one()
            )
        except BaseException:
            connection.close()
            raise
        if got:
            self._connection = connection
        else:
            connection.close()
        return got

    def acquire(self, stop: threading.Event) -> bool:
        """Waits (trying every ``poll`` seconds) until the lock is ours or ``stop`` is set."""
        said_waiting = False
        while not stop.is_set():
            try:
                if self.try_acquire():
                    log.info("%s became active (leader lock %d taken)", self.role, self.key)
                    return True
                if not said_waiting:
                    log.info(
                        "%s waiting for the lock: another one is active; standing by",
                        self.role,
                    )
                    said_waiting = True
            except SQLAlchemyError as exc:
                log.warning(
                    "%s cannot reach the database for the leader lock: %s",
                    self.role,
                    str(exc).splitlines()[0][:200],
                )
            stop.wait(self.poll)
        return False

    def check(self) -> None:
        """Raises :class:`LeadershipLost` unless the lock's session is alive and holds it."""
        if self._connection is None:
            raise LeadershipLost(f"{self.role} does not hold the leader lock")
        try:
            holds = self._connection.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND pid = pg_backend_pid() AND objsubid = 1 "
                    "AND classid::bigint = :high AND objid::bigint = :low"
                ),
                {"high": (self.key >> 32) & 0xFFFFFFFF, "low": self.key & 0xFFFFFFFF},
            ).scalar_one()
        except SQLAlchemyError as exc:
            self._drop()
            raise LeadershipLost(f"{self.role} lost the leader lock's connection: {exc}") from exc
        if not holds:
            self._drop()
            raise LeadershipLost(f"{self.role} no longer holds the leader lock")

    def release(self) -> None:
        if self._connection is None:
            return
        try:
            self._connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
        except SQLAlchemyError:
            pass  # closing the connection releases it anyway
        self._drop()
        self._engine.dispose()

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except SQLAlchemyError:
                pass


def leader_lock(url: str, role: str, *, poll: float = DEFAULT_POLL) -> Leadership:
    """The lock for ``role`` on the database at ``url``: a PostgreSQL advisory lock, or
    :class:`NoLock` on SQLite."""
    if make_url(url).get_backend_name() == "postgresql":
        return LeaderLock(url, role, poll=poll)
    return NoLock(role)
