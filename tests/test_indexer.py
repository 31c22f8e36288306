"""The indexer against a real node (anvil): projection, batches, replay, crashes."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from db_fixtures import *  # noqa: F403  (fixtures)
from db_fixtures import Market
from escrow.db.engine import session_scope
from escrow.db.models import (
    ArbitratorProfile,
    Dispute,
    EvidenceFile,
    IndexerCheckpoint,
    Listing,
    Trade,
    TradeEvent,
    TradeStatus,
    User,
)
from escrow.indexer import Indexer
from escrow.indexer.projection import BatchResult, Scope, apply_events, as_utc

pytestmark = pytest.mark.anvil


def make_indexer(market: Market, engine: Engine, **kwargs: object) -> Indexer:
    return Indexer(
        market.w3, engine, market.address, abi=market.abi, start_block=market.deploy_block, **kwargs
    )  # type: ignore[arg-type]


def count(engine: Engine, model: type) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def trade(engine: Engine, onchain_id: int) -> Trade:
    with Session(engine) as session:
        row = session.scalar(select(Trade).where(Trade.onchain_id == onchain_id))
        assert row is not None
        return row


def test_trade_lifecycles_are_projected(market: Market, engine: Engine) -> None:
    with session_scope(engine) as session:
        seller = User(address=market.seller.lower(), display_name="Sam")
        session.add(seller)
        session.flush()
        session.add(
            Listing(
                ref="0x" + b"bike".ljust(32, b"\0").hex(),
                seller_id=seller.id,
                title="Bike",
                price=10**18,
            )
        )
    released = market.fund(listing_ref=b"bike")
    market.ship(released)
    market.confirm(released)
    disputed = market.fund(amount=3 * 10**18 + 1)
    market.ship(disputed)
    market.propose(disputed, 7000)
    market.dispute(disputed)
    market.evidence(disputed, "ipfs://photo", hashlib.sha256(b"photo").digest())
    market.rule(disputed, 2500)
    proposed = market.fund(amount=5)
    market.propose(proposed, 4000, sender=market.seller)

    indexer = make_indexer(market, engine)
    result = indexer.sync()
    assert result.events == count(engine, TradeEvent) >= 13

    first = trade(engine, released)
    assert first.status == TradeStatus.RELEASED
    assert first.released_by_buyer is True
    assert first.amount == 10**18 and isinstance(first.amount, int)
    assert first.seller_amount == 10**18 and first.platform_fee == 0
    assert first.listing_id is not None
    assert first.buyer == market.buyers[0].lower()
    assert first.shipped_at is not None and first.finished_at is not None
    assert first.deadline is None

    second = trade(engine, disputed)
    assert second.status == TradeStatus.RESOLVED
    assert second.split_proposer is None  # a status change drops the proposal
    fee = (3 * 10**18 + 1) * 100 // 10_000
    assert second.arbitrator_fee == fee
    assert second.buyer_amount + second.seller_amount + fee == 3 * 10**18 + 1
    with Session(engine) as session:
        dispute = session.scalar(select(Dispute).where(Dispute.trade_id == second.id))
        assert dispute is not None and dispute.by_timeout is False and dispute.buyer_bps == 2500
        profile = session.scalar(select(ArbitratorProfile))
        assert (
            profile is not None
            and profile.onchain_registered
            and profile.onchain_max_fee_bps == 500
        )

    third = trade(engine, proposed)
    assert third.status == TradeStatus.FUNDED
    assert (third.split_proposer, third.proposed_buyer_bps) == ("seller", 4000)

    assert indexer.sync().events == 0  # nothing new


def test_evidence_files_are_linked_to_their_onchain_submission(
    market: Market, engine: Engine
) -> None:
    trade_id = market.fund()
    indexer = make_indexer(market, engine)
    indexer.sync()
    content = b"receipt scan"
    digest = hashlib.sha256(content).hexdigest()
    with session_scope(engine) as session:
        row = session.scalar(select(Trade).where(Trade.onchain_id == trade_id))
        assert row is not None
        session.add(
            EvidenceFile(
                trade_id=row.id,
                uploaded_by=row.buyer,
                original_name="a.png",
                size_bytes=len(content),
                sha256=digest,
                storage_path="x",
            )
        )
    market.evidence(trade_id, "https://market/e/1", bytes.fromhex(digest))
    indexer.sync()
    with Session(engine) as session:
        evidence = session.scalar(select(EvidenceFile))
        assert evidence is not None
        assert evidence.onchain_uri == "https://market/e/1"
        assert evidence.onchain_tx_hash is not None


def test_confirmations_hold_back_the_newest_blocks(market: Market, engine: Engine) -> None:
    market.fund()
    indexer = make_indexer(market, engine, confirmations=3)
    indexer.sync()
    assert count(engine, Trade) == 0
    market.rpc("anvil_mine", [3])
    indexer.sync()
    assert count(engine, Trade) == 1


def test_small_batches_equal_one_big_batch(market: Market, engine: Engine) -> None:
    ids = [market.fund(amount=i + 1) for i in range(6)]
    for trade_id in ids[:3]:
        market.ship(trade_id)
    indexer = make_indexer(market, engine, max_blocks_per_batch=1)
    result = indexer.sync()
    assert result.batches >= 10
    assert [trade(engine, i).status for i in ids] == ["Shipped"] * 3 + ["Funded"] * 3
    last_block, last_hash = indexer.checkpoint()
    assert last_block == market.w3.eth.block_number
    assert last_hash == market.w3.eth.get_block(last_block)["hash"].to_0x_hex()


def test_replaying_a_range_changes_nothing(market: Market, engine: Engine) -> None:
    trade_id = market.fund()
    market.ship(trade_id)
    indexer = make_indexer(market, engine)
    indexer.sync()
    before = trade(engine, trade_id)
    events = count(engine, TradeEvent)
    # Rewind the checkpoint as if the last commit had not been recorded.
    with session_scope(engine) as session:
        session.execute(
            update(IndexerCheckpoint).values(
                last_block=market.deploy_block - 1, last_block_hash=None
            )
        )
    result = indexer.sync()
    assert result.skipped == events and result.events == 0
    assert count(engine, TradeEvent) == events
    after = trade(engine, trade_id)
    assert (after.status, after.shipped_at) == (before.status, before.shipped_at)


def test_apply_events_twice_is_idempotent(market: Market, engine: Engine) -> None:
    trade_id = market.fund()
    market.ship(trade_id)
    indexer = make_indexer(market, engine)
    raw = indexer.source.get_logs(market.address, market.deploy_block, market.w3.eth.block_number)
    events = indexer._decode(raw)
    scope = Scope(indexer.scope.chain_id, indexer.scope.contract_address)
    with session_scope(engine) as session:
        first = apply_events(session, scope, events)
    with session_scope(engine) as session:
        second = apply_events(session, scope, events)
    assert first.applied == len(events) and second == BatchResult(0, len(events), 0)
    assert trade(engine, trade_id).status == TradeStatus.SHIPPED


class Crash(Exception):
    pass


def test_a_crash_inside_a_batch_loses_and_doubles_nothing(market: Market, engine: Engine) -> None:
    ids = [market.fund(amount=10 + i) for i in range(4)]
    market.ship(ids[0])
    indexer = make_indexer(market, engine, max_blocks_per_batch=2)
    batches = 0

    def crash_on_third(session: Session, result: BatchResult) -> None:
        nonlocal batches
        batches += 1
        if batches == 3:
            assert session.scalar(select(func.count()).select_from(TradeEvent))
            raise Crash

    indexer.before_commit = crash_on_third
    with pytest.raises(Crash):
        indexer.sync()
    committed_block, _ = indexer.checkpoint()
    assert committed_block == market.deploy_block - 1 + 4  # two batches of two blocks
    stored = count(engine, TradeEvent)

    restarted = make_indexer(market, engine)
    restarted.sync()
    total = count(engine, TradeEvent)
    assert total > stored
    with Session(engine) as session:
        keys = session.execute(select(TradeEvent.tx_hash, TradeEvent.log_index)).all()
    assert len(keys) == len(set(keys)) == total
    assert [trade(engine, i).status for i in ids] == ["Shipped", "Funded", "Funded", "Funded"]
    assert [trade(engine, i).amount for i in ids] == [10, 11, 12, 13]


def test_trade_times_are_block_times(market: Market, engine: Engine) -> None:
    trade_id = market.fund()
    block = market.w3.eth.get_block("latest")
    make_indexer(market, engine).sync()
    assert as_utc(trade(engine, trade_id).funded_at).timestamp() == block["timestamp"]


def test_crowded_ranges_commit_in_groups_of_whole_blocks(market: Market, engine: Engine) -> None:
    ids = [market.fund(amount=i + 1) for i in range(7)]
    indexer = make_indexer(market, engine, target_events_per_batch=2)
    commits: list[int] = []
    indexer.before_commit = lambda session, result: commits.append(result.applied)
    indexer.sync()
    assert len(commits) >= 4 and sum(commits) == count(engine, TradeEvent)
    assert [trade(engine, i).amount for i in ids] == list(range(1, 8))
    assert indexer.checkpoint()[0] == market.w3.eth.block_number
