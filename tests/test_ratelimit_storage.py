"""The rate-limit storage in the database (webapp/ratelimit_storage.py): counting, windows,
clearing and purging on SQLite and PostgreSQL, exact counts under parallel increments from
threads and from processes, the app using it by default, and the sign-in limit holding across
the two gunicorn workers of the production stack (which ``memory://`` does not do)."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    SlidingWindowCounterRateLimiter,
)
from sqlalchemy import Engine, func, select

from db_fixtures import *  # noqa: F403  (fixtures)
from escrow.chain import Chain
from escrow.db.engine import make_engine
from escrow.db.models import RateLimitCounter
from escrow.deploy import Deployment
from escrow.settings import PROJECT_ROOT
from web_fixtures import app_settings
from webapp import config, create_app
from webapp.extensions import limiter
from webapp.ratelimit_storage import DatabaseStorage, storage_uri
from webapp.stack import LocalStack

ADDRESS = "0x" + "11" * 20


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def storage(db_url: str, engine: Engine, clock: Clock) -> Iterator[DatabaseStorage]:
    """The storage on a migrated database of each kind, on a clock the test moves."""
    made = DatabaseStorage(storage_uri(db_url), clock=clock)
    yield made
    made.dispose()


def rows(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(conn.execute(select(RateLimitCounter.key, RateLimitCounter.count)).all())


# ---------------------------------------------------------------------------- the storage


def test_the_uri_scheme_selects_the_storage(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.sqlite3'}"
    made = storage_from_string(storage_uri(url))
    assert isinstance(made, DatabaseStorage)
    assert made.engine.url.render_as_string() == url
    made.dispose()
    # A plain PostgreSQL URL gets the psycopg 3 driver, like DATABASE_URL does.
    made = storage_from_string("db+postgresql://user:secret@db.example/escrow")
    assert isinstance(made, DatabaseStorage)
    assert made.engine.url.drivername == "postgresql+psycopg"
    made.dispose()


def test_counts_within_a_window_and_starts_over_after_it(
    storage: DatabaseStorage, clock: Clock
) -> None:
    start = clock.now
    assert storage.get("k") == 0
    assert storage.get_expiry("k") == start  # no window: it ends now
    assert [storage.incr("k", 60) for _ in range(3)] == [1, 2, 3]
    assert storage.incr("k", 60, amount=5) == 8
    assert storage.get("k") == 8
    assert storage.get_expiry("k") == start + 60
    assert storage.incr("other", 10) == 1  # keys count apart
    clock.now = start + 59.5
    assert storage.incr("k", 60) == 9
    assert storage.get_expiry("k") == start + 60  # a hit does not stretch the window
    clock.now = start + 60
    assert storage.get("k") == 0  # the window has ended
    assert storage.get_expiry("k") == clock.now
    assert storage.incr("k", 60) == 1  # a new one starts with this hit
    assert storage.get_expiry("k") == start + 120


def test_windows_end_on_the_real_clock(db_url: str, engine: Engine) -> None:
    real = DatabaseStorage(storage_uri(db_url))
    try:
        assert real.incr("k", 1) == 1 and real.incr("k", 1) == 2
        assert time.time() < real.get_expiry("k") <= time.time() + 1
        time.sleep(1.05)
        assert real.get("k") == 0
        assert real.incr("k", 1) == 1
    finally:
        real.dispose()


def test_the_fixed_window_strategy_on_it(storage: DatabaseStorage, clock: Clock) -> None:
    from limits import parse

    limit = parse("3 per minute")
    strategy = FixedWindowRateLimiter(storage)
    assert [strategy.hit(limit, "client") for _ in range(4)] == [True, True, True, False]
    assert not strategy.test(limit, "client")
    stats = strategy.get_window_stats(limit, "client")
    assert stats.remaining == 0 and stats.reset_time == clock.now + 60
    strategy.clear(limit, "client")
    assert strategy.hit(limit, "client")
    clock.now += 60
    assert strategy.get_window_stats(limit, "client").remaining == 3


def test_other_strategies_are_refused(storage: DatabaseStorage) -> None:
    with pytest.raises(NotImplementedError, match="MovingWindow.*DatabaseStorage"):
        MovingWindowRateLimiter(storage)
    with pytest.raises(NotImplementedError, match="SlidingWindowCounter.*DatabaseStorage"):
        SlidingWindowCounterRateLimiter(storage)


def test_clear_and_reset(storage: DatabaseStorage, engine: Engine) -> None:
    for key in ("a", "b", "c"):
        storage.incr(key, 60, amount=2)
    storage.clear("b")
    storage.clear("never-counted")
    assert rows(engine) == {"a": 2, "c": 2}
    assert storage.get("b") == 0 and storage.incr("b", 60) == 1
    assert storage.reset() == 3
    assert rows(engine) == {}
    assert storage.check()


def test_ended_windows_are_purged_now_and_then(db_url: str, engine: Engine, clock: Clock) -> None:
    purging = DatabaseStorage(storage_uri(db_url), purge_every=4, clock=clock)
    try:
        purging.incr("short", 10)
        purging.incr("long", 100)
        clock.now += 50
        purging.incr("new", 10)
        assert set(rows(engine)) == {"short", "long", "new"}  # 3 increments: not yet
        purging.incr("new", 10)  # the 4th purges what ended
        assert rows(engine) == {"long": 1, "new": 2}
        clock.now += 100
        assert purging.purge() == 2
        assert rows(engine) == {}
    finally:
        purging.dispose()


def test_long_keys_are_stored_hashed(storage: DatabaseStorage, engine: Engine) -> None:
    long_key = "LIMITER/" + "x" * 400
    assert storage.incr(long_key, 60) == 1 and storage.incr(long_key, 60) == 2
    assert storage.incr(long_key + "y", 60) == 1
    assert storage.get(long_key) == 2
    assert all(len(key) <= 255 for key in rows(engine))


def test_the_check_fails_without_the_database_or_the_table(tmp_path: Path) -> None:
    for url in (
        f"sqlite:///{tmp_path / 'not-migrated.sqlite3'}",
        "postgresql+psycopg://nobody@127.0.0.1:1/escrow?connect_timeout=2",
    ):
        broken = DatabaseStorage(storage_uri(url))
        try:
            assert broken.check() is False
        finally:
            broken.dispose()


# ---------------------------------------------------------------------------- in parallel


def test_parallel_threads_count_exactly(storage: DatabaseStorage) -> None:
    threads, each = 8, 50
    start = threading.Barrier(threads)
    seen: list[int] = []
    lock = threading.Lock()

    def hit() -> None:
        start.wait()
        counts = [storage.incr("shared", 60) for _ in range(each)]
        with lock:
            seen.extend(counts)

    pool = [threading.Thread(target=hit) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(120)
    # Every increment saw a count of its own: none was lost or counted twice.
    assert sorted(seen) == list(range(1, threads * each + 1))
    assert storage.get("shared") == threads * each


INCREMENTER = """
import json, sys, time
from webapp.ratelimit_storage import DatabaseStorage
storage = DatabaseStorage(sys.argv[1])
at, each = float(sys.argv[2]), int(sys.argv[3])
storage.check()
time.sleep(max(0.0, at - time.time()))
print(json.dumps([storage.incr("shared", 60) for _ in range(each)]))
"""


def test_parallel_processes_count_exactly(db_url: str, engine: Engine) -> None:
    processes, each = 4, 100
    at = time.time() + 4  # all start incrementing at once, after their imports
    running = [
        subprocess.Popen(
            [sys.executable, "-c", INCREMENTER, storage_uri(db_url), str(at), str(each)],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    seen: list[int] = []
    for process in running:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        seen.extend(json.loads(out))
    assert sorted(seen) == list(range(1, processes * each + 1))
    assert rows(engine) == {"shared": processes * each}


# ---------------------------------------------------------------------------- in the app


def test_the_app_counts_in_its_database_by_default(app: Flask) -> None:
    storage = limiter.storage
    assert isinstance(storage, DatabaseStorage)
    assert storage.engine.url.render_as_string() == app.config["DATABASE_URL"]
    assert app.config["RATELIMIT_STORAGE_URI"] == "db+" + app.config["DATABASE_URL"]
    app.config["SIGNIN_RATE_LIMIT"] = "3 per minute"
    client = app.test_client()
    statuses = [client.get(f"/auth/message?address={ADDRESS}").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    counters = rows(app.extensions["escrow_engine"])
    assert list(counters.values()) == [4]
    assert "message" in next(iter(counters))


def test_memory_storage_when_the_setting_says_so(
    chain: Chain,
    deployment: Deployment,
    web_db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ESCROW_RATELIMIT_STORAGE", raising=False)
    assert config.from_environment()["RATELIMIT_STORAGE_URI"] == ""  # the database
    monkeypatch.setenv("ESCROW_RATELIMIT_STORAGE", "memory://")
    assert config.from_environment()["RATELIMIT_STORAGE_URI"] == "memory://"
    app = create_app(
        app_settings(web_db_url, tmp_path, chain, deployment, SIGNIN_RATE_LIMIT="2 per minute")
    )
    try:
        assert isinstance(limiter.storage, MemoryStorage)
        client = app.test_client()
        statuses = [client.get(f"/auth/message?address={ADDRESS}").status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        engine = app.extensions["escrow_engine"]
        with engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(RateLimitCounter)) == 0
    finally:
        app.extensions["escrow_engine"].dispose()


def test_another_strategy_fails_when_the_limiter_starts(web_db_url: str) -> None:
    # A Limiter of its own: the app's keeps the first strategy it was given for the process.
    app = Flask(__name__)
    app.config.update(
        RATELIMIT_STORAGE_URI=storage_uri(web_db_url), RATELIMIT_STRATEGY="moving-window"
    )
    with pytest.raises(NotImplementedError, match="MovingWindow.*DatabaseStorage"):
        Limiter(get_remote_address, app=app)


# ---------------------------------------------------------------------------- across workers


def get_message(port: int) -> tuple[int, str | None]:
    """One sign-in message request on a connection of its own, closed after the answer."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", f"/auth/message?address={ADDRESS}", headers={"Connection": "close"})
        response = conn.getresponse()
        response.read()
        return response.status, response.getheader("X-RateLimit-Remaining")
    finally:
        conn.close()


def requests_on_both_workers(port: int, each: int) -> list[tuple[int, str | None]]:
    """``each`` requests served by one of the two (sync, one-thread) workers, then ``each`` by
    the other.

    A sync worker serves one connection at a time, and connections are accepted in the order
    they were made: a connection that sends nothing keeps the worker that accepted it waiting,
    so every request goes to the other one. Then a second silent connection takes that other
    worker and closing the first frees the first worker for the remaining requests."""
    first = socket.create_connection(("127.0.0.1", port))
    try:
        answers = [get_message(port) for _ in range(each)]
        second = socket.create_connection(("127.0.0.1", port))
        time.sleep(0.5)  # accepted by the only worker that is free
    finally:
        first.close()
    try:
        answers += [get_message(port) for _ in range(each)]
    finally:
        second.close()
    return answers


@pytest.mark.anvil
@pytest.mark.slow
@pytest.mark.parametrize("storage_kind", ["sqlite", "postgresql", "memory"])
def test_the_signin_limit_holds_across_workers(
    storage_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """20 sign-in messages per minute per client with two gunicorn workers: the 21st request is
    refused even though half of the requests go to each worker. With ``memory://`` (the
    control) each worker counts alone and lets 30 through."""
    database_url = None
    if storage_kind == "postgresql":
        database_url = fresh_postgres_url(request.getfixturevalue("postgres_server"))  # noqa: F405
    setting = "memory://" if storage_kind == "memory" else ""
    with LocalStack(
        tmp_path / "stack",
        database_url=database_url,
        workers=2,
        threads=1,
        seed=False,
        quiet=True,
        extra_env={"ESCROW_RATELIMIT_STORAGE": setting},
    ) as stack:
        port = stack.web_port
        answers = requests_on_both_workers(port, 15)
        engine = make_engine(stack.database_url)
        try:
            counters = rows(engine)
        finally:
            engine.dispose()
    statuses = [status for status, _ in answers]
    remaining = [left for _, left in answers]
    if storage_kind == "memory":
        # Each worker starts at 19 left: two counts, 30 messages written.
        assert statuses == [200] * 30
        assert remaining == [str(n) for n in range(19, 4, -1)] * 2
        assert counters == {}
    else:
        assert statuses == [200] * 20 + [429] * 10
        assert remaining == [str(n) for n in range(19, -1, -1)] + ["0"] * 10
        assert list(counters.values()) == [30]
