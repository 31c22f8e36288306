"""`python -m escrow.indexer index` killed with SIGKILL at random moments loses and doubles
nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db_fixtures import *  # noqa: F403  (fixtures)
from db_fixtures import Market
from escrow.db.engine import make_engine, upgrade
from escrow.db.models import Trade, TradeEvent
from escrow.settings import PROJECT_ROOT

pytestmark = [pytest.mark.anvil, pytest.mark.slow]


def test_sigkill_between_and_inside_batches(market: Market, db_url: str) -> None:
    amounts = [1000 + i for i in range(120)]
    for amount in amounts:
        market.fund(amount=amount)
    upgrade(db_url)
    command = [
        sys.executable,
        "-m",
        "escrow.indexer",
        "--rpc-url",
        market.w3.provider.endpoint_uri,
        "index",
        "--once",
        "--database-url",
        db_url,
        "--address",
        market.address,
        "--from-block",
        str(market.deploy_block),
        "--max-blocks-per-batch",
        "1",
    ]
    env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT))
    engine = make_engine(db_url)

    def stored() -> int:
        with Session(engine) as session:
            return session.scalar(select(func.count()).select_from(TradeEvent)) or 0

    for delay in (1.2, 1.35, 1.5):
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
    partial = stored()
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    with Session(engine) as session:
        keys = session.execute(select(TradeEvent.tx_hash, TradeEvent.log_index)).all()
        trade_amounts = sorted(session.scalars(select(Trade.amount)))
    # + OwnershipTransferred (constructor) and ArbitratorRegistered
    assert len(keys) == len(set(keys)) == len(amounts) + 2
    assert trade_amounts == amounts
    assert partial <= len(keys)
    engine.dispose()
