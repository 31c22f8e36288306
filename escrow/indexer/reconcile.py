"""Reconciliation: every trade in the database against the contract's current state.

The database is a projection of the events, so a difference means rows were changed by hand,
events are missing, or a bug. ``repair`` re-reads the trade's own logs from the chain, stores
the missing ones and rebuilds the trade from its events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from eth_utils import keccak
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from web3 import Web3
from web3.exceptions import ContractCustomError, ContractLogicError

from escrow.db.engine import session_scope
from escrow.db.models import IndexerCheckpoint, Trade, TradeEvent, TradeStatus, UndecodedLog
from escrow.db.stats import recompute
from escrow.indexer.decoder import DecodedLog, LogDecoder, UndecodableLog
from escrow.indexer.projection import (
    Scope,
    as_utc,
    event_row,
    rebuild_trades,
)
from escrow.indexer.source import LogSource

_UNKNOWN_TRADE = "0x" + keccak(text="UnknownTrade(uint256)")[:4].hex()
_TERMS_MISMATCH = "0x" + keccak(text="TermsMismatch(uint256)")[:4].hex()
_PARTIES = ("None", "buyer", "seller")


@dataclass(frozen=True)
class Difference:
    onchain_id: int
    field: str
    database: Any
    chain: Any

    def __str__(self) -> str:
        return (
            f"trade {self.onchain_id:#x}: {self.field}: database={self.database!r} "
            f"chain={self.chain!r}"
        )


@dataclass(frozen=True)
class UndecodedEntry:
    """A log of the contract the indexer stored raw because it could not decode it."""

    block_number: int
    tx_hash: str
    log_index: int
    error: str

    def __str__(self) -> str:
        return (
            f"undecoded log in block {self.block_number}, tx {self.tx_hash} "
            f"log {self.log_index}: {self.error[:200]}"
        )


#: How many undecoded logs a report lists (all are counted).
UNDECODED_LISTED = 20


@dataclass
class ReconcileReport:
    checked: int = 0
    differences: list[Difference] = field(default_factory=list)
    repaired: list[int] = field(default_factory=list)
    #: Logs stored raw (anyone can make the contract emit one: they are reported, not failed).
    undecoded_logs: int = 0
    undecoded: list[UndecodedEntry] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences

    def merge(self, other: ReconcileReport) -> None:
        """Adds another contract's report (a market following several escrows)."""
        self.checked += other.checked
        self.differences.extend(other.differences)
        self.repaired.extend(other.repaired)
        self.undecoded_logs += other.undecoded_logs
        self.undecoded.extend(other.undecoded)


def undecoded_logs(
    session: Session, scope: Scope, limit: int = UNDECODED_LISTED
) -> tuple[int, list[UndecodedEntry]]:
    """How many logs of the contract are stored undecoded, and the latest ``limit`` of them."""
    in_scope = (
        UndecodedLog.chain_id == scope.chain_id,
        UndecodedLog.contract_address == scope.contract_address,
    )
    count = session.scalar(select(func.count()).select_from(UndecodedLog).where(*in_scope)) or 0
    rows = session.execute(
        select(
            UndecodedLog.block_number,
            UndecodedLog.tx_hash,
            UndecodedLog.log_index,
            UndecodedLog.error,
        )
        .where(*in_scope)
        .order_by(UndecodedLog.block_number.desc(), UndecodedLog.log_index.desc())
        .limit(limit)
    ).all()
    return int(count), [UndecodedEntry(*row) for row in rows]


def _terms(trade: Trade) -> tuple[Any, ...]:
    fields = (
        Web3.to_checksum_address(trade.buyer),
        Web3.to_checksum_address(trade.seller),
        Web3.to_checksum_address(trade.arbitrator),
        Web3.to_checksum_address(trade.token),
        trade.amount,
        int(as_utc(trade.ship_by).timestamp()),
        trade.inspection_period,
        trade.arbitrator_fee_bps,
        trade.platform_fee_bps,
    )
    # v2 terms end with the delivery window; a v1 trade has none (NULL)
    return fields if trade.delivery_window is None else (*fields, trade.delivery_window)


def _expected_deadline(trade: Trade) -> int:
    status = TradeStatus(trade.status)
    if status.is_final:
        return trade.finished_block or 0
    if status in (TradeStatus.SHIPPED, TradeStatus.DISPUTED) and trade.deadline is not None:
        return int(as_utc(trade.deadline).timestamp())
    return 0


def compare_trade(contract: Any, trade: Trade) -> list[Difference]:
    """Differences between one stored trade and the contract's state of it."""
    diffs: list[Difference] = []
    try:
        state = contract.functions.tradeState(trade.onchain_id, _terms(trade)).call()
    except (ContractCustomError, ContractLogicError) as exc:
        data = str(getattr(exc, "data", "") or "")
        if data.startswith(_TERMS_MISMATCH):
            # Either the lane now holds a later trade (so this one ended) or our terms are wrong.
            if not TradeStatus(trade.status).is_final:
                diffs.append(
                    Difference(
                        trade.onchain_id,
                        "terms",
                        "stored terms",
                        "do not match the chain (or the lane was reused)",
                    )
                )
            return diffs
        if data.startswith(_UNKNOWN_TRADE):
            return [Difference(trade.onchain_id, "exists", True, False)]
        raise
    terms_hash, status, deadline, proposer, proposed_bps = state
    chain_values = {
        "terms_hash": "0x" + bytes(terms_hash).hex(),
        "status": TradeStatus.from_chain(status).value,
        "deadline": deadline,
        "split_proposer": None if proposer == 0 else _PARTIES[proposer],
        "proposed_buyer_bps": proposed_bps if proposer != 0 else None,
    }
    db_values = {
        "terms_hash": trade.terms_hash,
        "status": trade.status,
        "deadline": _expected_deadline(trade),
        "split_proposer": trade.split_proposer,
        "proposed_buyer_bps": trade.proposed_buyer_bps if trade.split_proposer else None,
    }
    for name, chain_value in chain_values.items():
        if db_values[name] != chain_value:
            diffs.append(Difference(trade.onchain_id, name, db_values[name], chain_value))
    return diffs


def escrow_abi_at(w3: Web3, contract_address: str) -> list[dict[str, Any]]:
    """The ABI of the escrow version deployed at ``contract_address`` (current if unknown)."""
    from escrow.client import CONTRACT_VERSIONS, CURRENT_VERSION
    from escrow.compiler import load_artifact
    from escrow.deploy import code_version

    code = bytes(w3.eth.get_code(Web3.to_checksum_address(contract_address)))
    version = code_version(code) or CURRENT_VERSION
    return load_artifact(CONTRACT_VERSIONS[version]).abi


def reconcile(
    w3: Web3,
    engine: Engine,
    contract_address: str,
    *,
    abi: Sequence[dict[str, Any]] | None = None,
    repair: bool = False,
) -> ReconcileReport:
    """Compares every stored trade of the contract with the chain; optionally repairs them."""
    if abi is None:
        abi = escrow_abi_at(w3, contract_address)
    source = LogSource(w3)
    scope = Scope(source.chain_id, contract_address.lower())
    contract = w3.eth.contract(address=Web3.to_checksum_address(contract_address), abi=abi)
    report = ReconcileReport()
    with Session(engine) as session:
        trades = session.scalars(
            select(Trade)
            .where(
                Trade.chain_id == scope.chain_id, Trade.contract_address == scope.contract_address
            )
            .order_by(Trade.id)
        ).all()
        session.expunge_all()
        report.undecoded_logs, report.undecoded = undecoded_logs(session, scope)
    for trade in trades:
        report.checked += 1
        diffs = compare_trade(contract, trade)
        if not diffs:
            continue
        if repair:
            repair_trade(source, LogDecoder(abi), engine, scope, trade)
            with Session(engine) as session:
                fresh = session.get(Trade, trade.id)
                remaining = compare_trade(contract, fresh) if fresh is not None else diffs
            if not remaining:
                report.repaired.append(trade.onchain_id)
            diffs = remaining
        report.differences.extend(diffs)
    return report


def repair_trade(
    source: LogSource, decoder: LogDecoder, engine: Engine, scope: Scope, trade: Trade
) -> int:
    """Stores the trade's logs that are missing and rebuilds it; returns the logs added."""
    with Session(engine) as session:
        # Up to the checkpoint: later blocks are the scanner's (and may not be confirmed yet).
        last_block = session.scalar(
            select(IndexerCheckpoint.last_block).where(
                IndexerCheckpoint.chain_id == scope.chain_id,
                IndexerCheckpoint.contract_address == scope.contract_address,
            )
        )
    topic = "0x" + trade.onchain_id.to_bytes(32, "big").hex()
    raw = source.get_logs(
        scope.contract_address, trade.funded_block, last_block or trade.funded_block, [None, topic]
    )
    events: list[DecodedLog] = []
    for entry in raw:
        try:
            events.append(decoder.decode(entry))
        except UndecodableLog:
            continue  # the scanner keeps these raw; they change no trade
    missing_stamps = {e.block_number for e in events if e.block_timestamp is None}
    stamps = source.block_timestamps(sorted(missing_stamps))
    added = 0
    with session_scope(engine) as session:
        stored = {
            (tx, index)
            for tx, index in session.execute(
                select(TradeEvent.tx_hash, TradeEvent.log_index).where(
                    TradeEvent.chain_id == scope.chain_id,
                    TradeEvent.onchain_trade_id == trade.onchain_id,
                )
            )
        }
        for event in events:
            if (event.tx_hash, event.log_index) in stored:
                continue
            if event.block_timestamp is None:
                event = replace(event, block_timestamp=stamps[event.block_number])
            row = event_row(scope, event)
            row["trade_id"] = trade.id
            session.add(TradeEvent(**row))
            added += 1
        session.flush()
        rebuild_trades(session, scope, [trade.onchain_id])
        # The people's figures again from their trades (the rebuild added its difference).
        recompute(session, {trade.buyer, trade.seller}, {trade.arbitrator})
    return added
