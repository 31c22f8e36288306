"""The leader lock (escrow.leader): one holder per role and database, a dead holder's lock is
free again, a lost connection is noticed before the next write, SQLite needs none."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from db_fixtures import fresh_postgres_url, postgres_server  # noqa: F401
from escrow.leader import LeaderLock, LeadershipLost, NoLock, leader_lock


@pytest.fixture
def pg_url(postgres_server: str) -> str:  # noqa: F811
    return fresh_postgres_url(postgres_server)


@pytest.fixture
def locks(pg_url: str) -> Iterator[list[LeaderLock]]:
    made: list[LeaderLock] = []
    yield made
    for lock in made:
        lock.release()


def _lock(locks: list[LeaderLock], url: str, role: str, poll: float = 0.1) -> LeaderLock:
    lock = leader_lock(url, role, poll=poll)
    assert isinstance(lock, LeaderLock)
    locks.append(lock)
    return lock


def test_one_holder_per_role_until_released(pg_url: str, locks: list[LeaderLock]) -> None:
    first = _lock(locks, pg_url, "indexer")
    second = _lock(locks, pg_url, "indexer")
    keeper = _lock(locks, pg_url, "keeper")
    assert first.try_acquire()
    assert not second.try_acquire()
    assert keeper.try_acquire()  # another role is another lock
    first.check()
    with pytest.raises(LeadershipLost):
        second.check()
    first.release()
    assert second.try_acquire()
    second.check()
    assert not first.try_acquire()


def test_other_schema_elects_separately(postgres_server: str, locks: list[LeaderLock]) -> None:  # noqa: F811
    one = _lock(locks, fresh_postgres_url(postgres_server), "indexer")
    two = _lock(locks, fresh_postgres_url(postgres_server), "indexer")
    assert one.try_acquire() and two.try_acquire()
    assert one.key != two.key


def test_standby_takes_over_when_the_holder_dies(pg_url: str, locks: list[LeaderLock]) -> None:
    active = _lock(locks, pg_url, "indexer")
    standby = _lock(locks, pg_url, "indexer", poll=0.2)
    assert active.try_acquire()
    stop = threading.Event()
    became: list[float] = []

    def wait() -> None:
        if standby.acquire(stop):
            became.append(time.monotonic())

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    time.sleep(0.6)
    assert not became  # still standing by
    # The holder's session ends as a killed process's would: the server closes it.
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        killed = conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'escrow indexer lock' AND pid IN "
                "(SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted)"
            )
        ).all()
    admin.dispose()
    assert len(killed) == 1
    dead_at = time.monotonic()
    thread.join(timeout=5)
    stop.set()
    assert became and became[0] - dead_at < 2.0
    # The old holder notices before its next write and stops.
    with pytest.raises(LeadershipLost):
        active.check()
    assert not active.held
    standby.check()


def test_acquire_returns_when_stopped(pg_url: str, locks: list[LeaderLock]) -> None:
    holder = _lock(locks, pg_url, "keeper")
    waiting = _lock(locks, pg_url, "keeper")
    assert holder.try_acquire()
    stop = threading.Event()
    stop.set()
    assert waiting.acquire(stop) is False


def test_sqlite_needs_no_lock(tmp_path: object) -> None:
    lock = leader_lock(f"sqlite:///{tmp_path}/x.sqlite3", "indexer")
    assert isinstance(lock, NoLock)
    assert lock.acquire(threading.Event())
    lock.check()
    lock.release()
