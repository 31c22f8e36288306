"""The scaled shape (docs/scaling.md): the leader lock between two real indexer processes on
PostgreSQL, and a short load run against the whole shape (nginx, two web instances, Redis,
PostgreSQL, two indexers, two keepers) with a web instance and the active indexer killed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session

from db_fixtures import (  # noqa: F401
    Market,
    anvil,
    fresh_postgres_url,
    market,
    postgres_server,
)
from escrow.anvil import ends_with_parent
from escrow.db.engine import upgrade
from escrow.db.models import Trade, TradeEvent
from escrow.settings import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT / "scripts"))
from run_scaled import missing_binaries  # noqa: E402

ESCROW = Path(sys.executable).parent / "escrow"


def _needs_the_shape() -> None:
    missing = missing_binaries()
    if not missing:
        return
    reason = f"missing system packages {', '.join(missing)} (scripts/install_system_deps.sh)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"the scaled shape is required in CI: {reason}")
    pytest.skip(reason)


class Indexer:
    def __init__(self, name: str, url: str, chain: Market, log: Path) -> None:
        self.name = name
        self.log = log
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "ESCROW_RPC_URL": chain.w3.provider.endpoint_uri,  # type: ignore[attr-defined]
            # libpq names this process's database sessions (the lock's own is named apart).
            "PGAPPNAME": name,
            "PYTHONPATH": str(PROJECT_ROOT),
        }
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                [
                    *ends_with_parent(),
                    str(ESCROW),
                    "index",
                    "--leader-lock",
                    "--poll",
                    "0.1",
                    "--address",
                    chain.address,
                    "--from-block",
                    str(chain.deploy_block),
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def said(self, words: str) -> bool:
        return words in self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _wait(condition: object, timeout: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():  # type: ignore[operator]
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def pg_url(postgres_server: str) -> str:  # noqa: F811
    url = fresh_postgres_url(postgres_server)
    upgrade(url)
    return url


@pytest.fixture
def indexers(
    pg_url: str,
    market: Market,  # noqa: F811
    tmp_path: Path,
) -> Iterator[list[Indexer]]:
    tag = uuid.uuid4().hex[:8]
    started = [
        Indexer(f"idx-{tag}-{n}", pg_url, market, tmp_path / f"indexer-{n}.log") for n in (1, 2)
    ]
    yield started
    for indexer in started:
        indexer.stop()


def _sessions_by_name(url: str, names: list[str]) -> dict[str, int]:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT application_name, count(*) FROM pg_stat_activity "
                    "WHERE application_name = ANY(:names) GROUP BY application_name"
                ),
                {"names": names},
            ).all()
    finally:
        engine.dispose()
    return {str(name): int(count) for name, count in rows}


def _trades(url: str, market: Market) -> tuple[int, int]:  # noqa: F811
    engine = create_engine(url)
    try:
        with Session(engine) as session:
            trades = session.scalar(
                select(func.count(Trade.id)).where(Trade.contract_address == market.address.lower())
            )
            events = session.scalar(select(func.count(TradeEvent.id)))
    finally:
        engine.dispose()
    return int(trades or 0), int(events or 0)


@pytest.mark.anvil
def test_standby_indexer_takes_over_when_the_active_one_is_killed(
    indexers: list[Indexer],
    pg_url: str,
    market: Market,  # noqa: F811
) -> None:
    first, second = indexers
    _wait(
        lambda: (
            sum(i.said("became active") for i in indexers) == 1
            and sum(i.said("waiting for the lock") for i in indexers) == 1
        ),
        30,
        "one active indexer and one standing by",
    )
    active, standby = (first, second) if first.said("became active") else (second, first)
    names = [first.name, second.name]

    trade_id = market.fund()
    _wait(lambda: _trades(pg_url, market)[0] == 1, 20, "the active indexer to store the trade")
    sessions = _sessions_by_name(pg_url, names)
    # Only the active one has database sessions of its own: the standby holds nothing but its
    # (separately named) attempts at the lock.
    assert sessions.get(active.name, 0) >= 1 and sessions.get(standby.name, 0) == 0, sessions

    active.process.kill()  # SIGKILL: its sessions end, the server frees its lock
    active.process.wait()
    took = _wait(lambda: standby.said("became active"), 10, "the standby to take over")
    assert took < 5.0

    market.ship(trade_id)
    market.fund()
    _wait(lambda: _trades(pg_url, market)[0] == 2, 20, "the new active indexer to store it")
    sessions = _sessions_by_name(pg_url, names)
    assert sessions.get(active.name, 0) == 0 and sessions.get(standby.name, 0) >= 1, sessions
    # Nothing lost or doubled: every log of the escrow is stored once.
    logs = market.rpc("eth_getLogs", [{"address": market.address, "fromBlock": "0x0"}])
    _wait(lambda: _trades(pg_url, market)[1] == len(logs), 10, "every event stored")
    time.sleep(0.5)
    assert _trades(pg_url, market) == (2, len(logs))
    assert standby.process.poll() is None


@pytest.mark.slow
@pytest.mark.anvil
@pytest.mark.timeout(900)
def test_short_scaled_run(tmp_path: Path) -> None:
    """The short version of `scripts/bench_load.py --scaled`: a few users for 15 s."""
    _needs_the_shape()
    out = tmp_path / "load.json"
    run = subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "scripts" / "bench_load.py"),
            "--scaled",
            "--users",
            "3",
            "--seconds",
            "15",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
    )
    assert out.exists(), run.stdout + run.stderr
    report = json.loads(out.read_text())
    assert report["errors"] == 0, report["error_kinds"]
    assert report["db_equals_chain"] is True, report["check"]
    assert report["trades_completed"] >= 3 and report["token_trades_completed"] >= 1
    failover = report["failover"]
    assert failover["indexer_takeover_seconds"] < 5.0
    assert failover["requests_lost_while_web_instance_down"] == 0
    assert failover["requests_while_web_instance_down"] > 0
    assert len(failover["active_indexers_at_end"]) == 1
    assert len(failover["standby_indexers_at_end"]) == 1
    assert len(failover["active_keepers_at_end"]) == 1
    assert failover["processes_down_at_end"] == []
    # The instances count rate limits together, in Redis.
    assert failover["rate_limit_keys_in_redis"] > 0
    shared = failover["shared_rate_limit"]
    assert shared["limit"] > 0 and shared["refused_at_request"] == shared["limit"] + 1
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.anvil
def test_an_indexer_whose_lock_session_ends_stops_writing_and_one_goes_on(
    indexers: list[Indexer],
    pg_url: str,
    market: Market,  # noqa: F811
) -> None:
    """The server ends the active indexer's lock session (as after a network cut or an
    administrator's pg_terminate_backend): before its next batch it notices, stops writing and
    stands by again; one indexer is active afterwards and every event is stored once."""
    _wait(
        lambda: (
            sum(i.said("became active") for i in indexers) == 1
            and sum(i.said("waiting for the lock") for i in indexers) == 1
        ),
        30,
        "one active indexer and one standing by",
    )
    active = indexers[0] if indexers[0].said("became active") else indexers[1]
    engine = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            ended = conn.execute(
                text(
                    "SELECT pg_terminate_backend(a.pid) FROM pg_stat_activity a "
                    "JOIN pg_locks l ON l.pid = a.pid AND l.locktype = 'advisory' AND l.granted "
                    "WHERE a.application_name = 'escrow indexer lock'"
                )
            ).all()
    finally:
        engine.dispose()
    assert len(ended) == 1
    trade_id = market.fund()  # a batch to write: the old holder checks its lock first
    _wait(lambda: active.said("stopped writing"), 10, "the old holder to stop writing")
    _wait(
        lambda: sum(i.log.read_text().count("became active") for i in indexers) == 2,
        10,
        "an indexer to take the lock again",
    )
    market.ship(trade_id)
    logs = market.rpc("eth_getLogs", [{"address": market.address, "fromBlock": "0x0"}])
    _wait(lambda: _trades(pg_url, market) == (1, len(logs)), 20, "every event stored once")
    assert all(i.process.poll() is None for i in indexers)


@pytest.mark.anvil
def test_index_once_leaves_the_work_to_the_active_indexer(
    indexers: list[Indexer],
    pg_url: str,
    market: Market,  # noqa: F811
) -> None:
    _wait(lambda: any(i.said("became active") for i in indexers), 30, "an active indexer")
    once = subprocess.run(
        [str(ESCROW), "index", "--leader-lock", "--once", "--address", market.address],
        env={
            **os.environ,
            "DATABASE_URL": pg_url,
            "ESCROW_RPC_URL": market.w3.provider.endpoint_uri,  # type: ignore[attr-defined]
            "PYTHONPATH": str(PROJECT_ROOT),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert once.returncode == 0, once.stderr
    assert "another indexer is active" in once.stdout
