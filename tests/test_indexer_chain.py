"""The indexer when history changes: reorganisations, reset chains, reconciliation."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.orm import Session

from db_fixtures import *  # noqa: F403  (fixtures)
from db_fixtures import Market, anvil_web3, start_anvil
from escrow.db.engine import session_scope
from escrow.db.models import Dispute, Trade, TradeEvent, TradeStatus
from escrow.indexer import ChainResetError, Indexer
from escrow.indexer.reconcile import reconcile

pytestmark = pytest.mark.anvil


def make_indexer(market: Market, engine: Engine, **kwargs: object) -> Indexer:
    return Indexer(
        market.w3, engine, market.address, abi=market.abi, start_block=market.deploy_block, **kwargs
    )  # type: ignore[arg-type]


def trades(engine: Engine) -> dict[int, Trade]:
    with Session(engine) as session:
        return {t.onchain_id: t for t in session.scalars(select(Trade))}


def event_hashes(engine: Engine) -> set[str]:
    with Session(engine) as session:
        return set(session.scalars(select(TradeEvent.block_hash)))


def test_a_reorganisation_replaces_the_rewritten_blocks(market: Market, engine: Engine) -> None:
    kept = market.fund(amount=1)
    snapshot = market.rpc("evm_snapshot", [])
    lost = market.fund(amount=2)
    market.ship(kept)
    indexer = make_indexer(market, engine)
    indexer.sync()
    assert set(trades(engine)) == {kept, lost}
    assert trades(engine)[kept].status == TradeStatus.SHIPPED

    market.rpc("evm_revert", [snapshot])  # rewrite history from the snapshot on
    replacement = market.fund(amount=3)
    market.dispute(kept)
    market.rpc("anvil_mine", [3])
    indexer.sync()

    stored = trades(engine)
    assert set(stored) == {kept, replacement}
    assert stored[kept].status == TradeStatus.DISPUTED
    assert stored[kept].shipped_at is None and stored[kept].shipment_ref is None
    chain_hashes = {
        market.w3.eth.get_block(n)["hash"].to_0x_hex()
        for n in range(market.deploy_block, market.w3.eth.block_number + 1)
    }
    assert event_hashes(engine) <= chain_hashes
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Dispute)) == 1
    assert reconcile(market.w3, engine, market.address, abi=market.abi).ok


def test_a_reorganisation_that_removes_a_dispute(market: Market, engine: Engine) -> None:
    trade_id = market.fund()
    snapshot = market.rpc("evm_snapshot", [])
    market.dispute(trade_id)
    indexer = make_indexer(market, engine)
    indexer.sync()
    assert trades(engine)[trade_id].status == TradeStatus.DISPUTED
    market.rpc("evm_revert", [snapshot])
    market.rpc("anvil_mine", [2])
    indexer.sync()
    assert trades(engine)[trade_id].status == TradeStatus.FUNDED
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Dispute)) == 0


def test_a_shorter_chain_after_revert_is_handled(market: Market, engine: Engine) -> None:
    snapshot = market.rpc("evm_snapshot", [])
    market.fund()
    market.rpc("anvil_mine", [5])
    indexer = make_indexer(market, engine)
    indexer.sync()
    market.rpc("evm_revert", [snapshot])  # the head is now below the checkpoint
    indexer.sync()
    assert trades(engine) == {}
    assert indexer.checkpoint()[0] == market.w3.eth.block_number


def test_a_reset_chain_is_refused(engine: Engine) -> None:
    first = start_anvil()
    try:
        market = Market(anvil_web3(first.url))
        market.fund()
        make_indexer(market, engine).sync()
    finally:
        first.stop()
    # A node restarted later: a new chain with the same id and a later genesis time.
    second = start_anvil("--timestamp", str(int(time.time()) + 1000))
    try:
        fresh = Market(anvil_web3(second.url))  # same deployer and nonce: same address
        assert fresh.address == market.address
        fresh.fund()
        fresh.fund()
        with pytest.raises(ChainResetError, match="genesis"):
            make_indexer(fresh, engine).sync()
    finally:
        second.stop()
    assert len(trades(engine)) == 1  # nothing of the other chain was mixed in


def test_changed_contract_code_is_refused(market: Market, engine: Engine) -> None:
    indexer = make_indexer(market, engine)
    indexer.sync()
    market.rpc("anvil_setCode", [market.address, "0x6000"])
    with pytest.raises(ChainResetError, match="code"):
        make_indexer(market, engine).sync()


def test_reconcile_reports_and_repairs_differences(market: Market, engine: Engine) -> None:
    shipped = market.fund()
    market.ship(shipped)
    proposed = market.fund()
    market.propose(proposed, 6000)
    done = market.fund()
    market.confirm(done)
    make_indexer(market, engine).sync()
    assert reconcile(market.w3, engine, market.address, abi=market.abi).ok

    with session_scope(engine) as session:
        session.execute(
            update(Trade)
            .where(Trade.onchain_id == shipped)
            .values(status=TradeStatus.RELEASED.value)
        )
        session.execute(
            update(Trade)
            .where(Trade.onchain_id == proposed)
            .values(split_proposer=None, proposed_buyer_bps=None)
        )
        # Lose an event entirely: only re-reading the chain can bring it back.
        session.execute(delete(TradeEvent).where(TradeEvent.event == "TradeReleased"))
        session.execute(
            update(Trade)
            .where(Trade.onchain_id == done)
            .values(status=TradeStatus.FUNDED.value, finished_block=None)
        )

    report = reconcile(market.w3, engine, market.address, abi=market.abi)
    assert report.checked == 3
    assert {(d.onchain_id, d.field) for d in report.differences} >= {
        (shipped, "status"),
        (proposed, "split_proposer"),
        (done, "status"),
    }

    repaired = reconcile(market.w3, engine, market.address, abi=market.abi, repair=True)
    assert sorted(repaired.repaired) == sorted({shipped, proposed, done}), (
        [str(d) for d in repaired.differences],
        [str(d) for d in report.differences],
    )
    assert repaired.ok
    assert reconcile(market.w3, engine, market.address, abi=market.abi).ok
    assert trades(engine)[done].status == TradeStatus.RELEASED
