"""The indexer when history changes: reorganisations, reset chains, reconciliation."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from hexbytes import HexBytes
from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.orm import Session

from db_fixtures import *  # noqa: F403  (fixtures)
from db_fixtures import Market, anvil_web3, start_anvil
from escrow.db.engine import session_scope
from escrow.db.evidence import evidence_path, store_evidence
from escrow.db.models import (
    Dispute,
    EvidenceFile,
    IndexerCheckpoint,
    Message,
    Rating,
    Trade,
    TradeEvent,
    TradeStatus,
)
from escrow.indexer import ChainResetError, Indexer
from escrow.indexer.commands import reset_rows
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


def test_a_node_restarted_with_a_new_genesis_but_the_same_blocks_is_followed(
    market: Market, engine: Engine
) -> None:
    """anvil reloaded from its state file may make a new genesis block; the indexed blocks are
    still there, so it is the same history and indexing goes on."""
    market.fund()
    make_indexer(market, engine).sync()
    with session_scope(engine) as session:
        session.execute(update(IndexerCheckpoint).values(genesis_hash="0x" + "11" * 32))
    market.fund()
    make_indexer(market, engine).sync()
    assert len(trades(engine)) == 2
    with session_scope(engine) as session:
        cp = session.scalars(select(IndexerCheckpoint)).one()
        assert cp.genesis_hash == market.w3.eth.get_block(0)["hash"].to_0x_hex()
        # Another genesis and another last block: a reset chain, refused as before.
        cp.genesis_hash = "0x" + "11" * 32
        cp.last_block_hash = "0x" + "22" * 32
    with pytest.raises(ChainResetError, match="genesis"):
        make_indexer(market, engine).sync()


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


# ---------------------------------------------------------------------------- people's records


def _fund_in_lane(market: Market, lane: int, seller: str, ship_within: int = 7 * 86400) -> int:
    """Funds from the first buyer in ``lane``: a trade id is buyer, lane and block."""
    buyer = market.buyers[0]
    receipt = market.wait(
        market.contract.functions.fund(
            seller,
            market.arbitrator,
            "0x" + "00" * 20,
            10**15,
            market.now() + ship_within,
            86400,
            0,  # delivery window
            100,
            1_000,  # platform fee cap
            lane,
            b"\0" * 32,
        ).transact({"from": buyer, "value": 10**15})
    )
    event = market.contract.events.TradeFunded().process_receipt(receipt)[0]
    trade_id = int(event["args"]["tradeId"])
    market.terms[trade_id] = tuple(event["args"]["terms"].values())
    return trade_id


def _write_records(engine: Engine, market: Market, onchain_id: int, folder: Path) -> Path:
    """A conversation, a rating and an evidence file (on disk) for the trade."""
    buyer, seller = market.buyers[0].lower(), market.seller.lower()
    stored = store_evidence(b"photo of the broken lamp", folder)
    with session_scope(engine) as session:
        trade = session.scalar(select(Trade).where(Trade.onchain_id == onchain_id))
        assert trade is not None
        evidence = EvidenceFile(
            trade_id=trade.id,
            uploaded_by=seller,
            original_name="lamp.jpg",
            size_bytes=stored.size_bytes,
            sha256=stored.sha256,
            storage_path=stored.storage_path,
        )
        session.add(evidence)
        session.flush()
        session.add(Message(trade_id=trade.id, sender=buyer, body="Where is my lamp?"))
        session.add(
            Message(trade_id=trade.id, sender=seller, body="Sent", evidence_file_id=evidence.id)
        )
        session.add(
            Rating(trade_id=trade.id, rater_side="buyer", rater=buyer, ratee=seller, score=2)
        )
    return evidence_path(stored.storage_path, folder)


def _records(engine: Engine) -> list[tuple[str, int | None, Any]]:
    """(kind, trade_id, the detached_* values) of every message, rating and evidence file."""
    with Session(engine) as session:
        rows: list[Any] = [
            *session.scalars(select(Message).order_by(Message.id)),
            *session.scalars(select(Rating)),
            *session.scalars(select(EvidenceFile)),
        ]
        return [
            (
                type(r).__name__,
                r.trade_id,
                (
                    r.detached_chain_id,
                    r.detached_contract,
                    r.detached_onchain_id,
                    r.detached_funded_tx,
                ),
            )
            for r in rows
        ]


def _trade_row(engine: Engine, onchain_id: int) -> Trade | None:
    with Session(engine) as session:
        return session.scalar(select(Trade).where(Trade.onchain_id == onchain_id))


def test_a_reorganisation_keeps_messages_ratings_and_evidence(
    market: Market, engine: Engine, tmp_path: Path
) -> None:
    indexer = make_indexer(market, engine)
    snapshot = market.rpc("evm_snapshot", [])
    trade_id = market.fund(amount=10**15)
    market.ship(trade_id)
    indexer.sync()
    file_on_disk = _write_records(engine, market, trade_id, tmp_path / "evidence")
    market.evidence(trade_id, "https://market/e/1", bytes.fromhex(_sha_of(engine)))
    market.confirm(trade_id)
    indexer.sync()
    original = _trade_row(engine, trade_id)
    assert original is not None and original.status == TradeStatus.RELEASED
    with Session(engine) as session:
        linked = session.scalar(select(EvidenceFile))
        assert linked is not None and linked.onchain_tx_hash is not None
    raw_funding = market.rpc("eth_getRawTransactionByHash", [original.funded_tx])

    # The blocks with the trade are replaced by a longer chain without it.
    market.rpc("evm_revert", [snapshot])
    market.rpc("anvil_mine", [6])
    indexer.sync()
    assert trades(engine) == {}
    remembered = (
        market.w3.eth.chain_id,
        market.address.lower(),
        trade_id,
        original.funded_tx,
    )
    assert _records(engine) == [
        ("Message", None, remembered),
        ("Message", None, remembered),
        ("Rating", None, remembered),
        ("EvidenceFile", None, remembered),
    ]
    with Session(engine) as session:
        message = session.scalars(select(Message).where(Message.sender == market.seller.lower()))
        assert next(iter(message)).evidence_file_id is not None  # still points at its file
        evidence = session.scalar(select(EvidenceFile))
        assert evidence is not None and evidence.onchain_tx_hash is None  # that tx is gone
    assert file_on_disk.is_file()

    # The same signed funding is mined again, in a later block: another on-chain id, the
    # same transaction. The records come back to it.
    market.wait(HexBytes(market.rpc("eth_sendRawTransaction", [raw_funding])))
    indexer.sync()
    (again,) = trades(engine).values()
    assert again.funded_tx == original.funded_tx and again.onchain_id != trade_id
    assert _records(engine) == [
        (kind, again.id, (None, None, None, None))
        for kind in ("Message", "Message", "Rating", "EvidenceFile")
    ]
    assert file_on_disk.is_file()


def _sha_of(engine: Engine) -> str:
    with Session(engine) as session:
        sha = session.scalar(select(EvidenceFile.sha256))
        assert sha is not None
        return sha


def test_records_go_back_by_trade_id_only_between_the_same_people(
    market: Market, engine: Engine, tmp_path: Path
) -> None:
    indexer = make_indexer(market, engine)
    snapshot = market.rpc("evm_snapshot", [])
    trade_id = _fund_in_lane(market, 0, market.seller)
    indexer.sync()
    _write_records(engine, market, trade_id, tmp_path / "evidence")

    # Another history: the same buyer, lane and block (so the same trade id), another seller.
    market.rpc("evm_revert", [snapshot])
    snapshot = market.rpc("evm_snapshot", [])
    other_seller = market.buyers[-1]
    assert _fund_in_lane(market, 0, other_seller) == trade_id
    market.rpc("anvil_mine", [2])
    indexer.sync()
    stranger_trade = _trade_row(engine, trade_id)
    assert stranger_trade is not None and stranger_trade.seller == other_seller.lower()
    # The conversation with the first seller is not handed to the second one.
    assert {trade for _, trade, _ in _records(engine)} == {None}

    # And another: the same people again, other terms (so another transaction), same id.
    market.rpc("evm_revert", [snapshot])
    assert _fund_in_lane(market, 0, market.seller, ship_within=5 * 86400) == trade_id
    market.rpc("anvil_mine", [3])
    indexer.sync()
    back = _trade_row(engine, trade_id)
    assert back is not None and back.seller == market.seller.lower()
    assert {trade for _, trade, _ in _records(engine)} == {back.id}


def test_reset_detaches_records_instead_of_deleting_them(
    market: Market, engine: Engine, tmp_path: Path
) -> None:
    trade_id = market.fund()
    make_indexer(market, engine).sync()
    _write_records(engine, market, trade_id, tmp_path / "evidence")
    reset_rows(engine, market.w3.eth.chain_id, market.address.lower())
    assert trades(engine) == {}
    assert len(_records(engine)) == 4
    assert {trade for _, trade, _ in _records(engine)} == {None}
    make_indexer(market, engine).sync()  # the same chain read again: they come back
    back = _trade_row(engine, trade_id)
    assert back is not None
    assert {trade for _, trade, _ in _records(engine)} == {back.id}
