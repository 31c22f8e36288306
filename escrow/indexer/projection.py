"""From contract events to rows: the trade state machine, replayed from the events.

The same functions serve the forward scan (apply a batch of new events) and the rollback after
a reorganisation (replay a trade's remaining events from scratch), so both paths always agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from eth_hash.auto import keccak
from sqlalchemy import CursorResult, Table, and_, delete, insert, select, update
from sqlalchemy.orm import Session

from escrow.db.models import (
    ArbitratorProfile,
    CheckoutHold,
    Currency,
    Dispute,
    EvidenceFile,
    HoldState,
    Listing,
    Message,
    Rating,
    Side,
    Trade,
    TradeEvent,
    TradeStatus,
    UndecodedLog,
    User,
)
from escrow.db.stats import StatsDelta, parties_of_trades, recompute
from escrow.indexer.bulk import insert_rows, insert_with_ids
from escrow.indexer.decoder import DecodedLog, Undecoded
from escrow.indexer.listings import refresh_listings

#: Events that carry a ``tradeId`` and change a trade's row.
TRADE_EVENTS = frozenset(
    {
        "TradeFunded",
        "TradeShipped",
        "TradeReleased",
        "TradeRefunded",
        "SplitProposed",
        "TradeSettled",
        "DisputeOpened",
        "EvidenceSubmitted",
        "DisputeResolved",
        # contract v2
        "TradeReceived",
        "InspectionExtensionRequested",
        "InspectionExtended",
        "SplitCleared",
    }
)
ARBITRATOR_EVENTS = frozenset({"ArbitratorRegistered", "ArbitratorRemoved"})
#: For events without a trade: the argument naming the account the event is about.
ACCOUNT_ARG = {
    "PaymentDeferred": "payee",
    "Withdrawn": "payee",
    "PlatformFeesWithdrawn": "recipient",
    "ArbitratorRegistered": "arbitrator",
    "ArbitratorRemoved": "arbitrator",
    "PlatformFeeUpdated": "recipient",
    "TokenAllowanceUpdated": "token",
    "OwnershipTransferred": "newOwner",
    "OwnershipTransferStarted": "newOwner",
}
IN_CHUNK = 500  # ids per IN (...) list
ZERO_ADDRESS = "0x" + "00" * 20
#: The latest time the database's timestamp columns (and Python's datetime) can hold.
MAX_TIMESTAMP = 253_402_300_799  # 9999-12-31 23:59:59 UTC
INT32_MAX = 2**31 - 1
#: Length of ``EvidenceFile.onchain_uri``.
URI_COLUMN_LENGTH = 500


@dataclass(frozen=True)
class Scope:
    """One deployed contract on one chain (and the deployment's dollar stablecoin and tenge
    token, if known: a USD listing is bought with the one, a KZT listing with the other)."""

    chain_id: int
    contract_address: str  # lower-case
    stablecoin: str | None = None  # lower-case
    tenge: str | None = None  # lower-case


def utc(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite returns naive datetimes; they are UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def terms_hash(trade_id: int, terms: dict[str, Any]) -> str:
    """``bytes24(keccak256(abi.encode(tradeId, terms)))`` as 0x hex, like ``hashTerms``."""
    words: tuple[int, ...] = (
        trade_id,
        int(terms["buyer"], 16),
        int(terms["seller"], 16),
        int(terms["arbitrator"], 16),
        int(terms["token"], 16),
        terms["amount"],
        terms["shipBy"],
        terms["inspectionPeriod"],
        terms["arbitratorFeeBps"],
        terms["platformFeeBps"],
    )
    if terms.get("deliveryWindow") is not None:  # v2 terms end with the delivery window
        words = (*words, terms["deliveryWindow"])
    encoded = b"".join(w.to_bytes(32, "big") for w in words)
    return "0x" + keccak(encoded)[:24].hex()


def unstorable(event: DecodedLog) -> str | None:
    """Why the rows of ``event`` cannot be stored (a value out of the columns' range), or None.

    The contract bounds these values far below the limits; a log that still exceeds them is
    kept raw instead of failing the batch.
    """
    name = event.name
    args = event.args
    if name == "TradeFunded":
        terms = args["terms"]
        if terms["shipBy"] > MAX_TIMESTAMP:
            return f"{name}: shipBy {terms['shipBy']} is beyond the year 9999"
        if terms["inspectionPeriod"] > INT32_MAX:
            return f"{name}: inspectionPeriod {terms['inspectionPeriod']} is too large"
        if (terms.get("deliveryWindow") or 0) > INT32_MAX:
            return f"{name}: deliveryWindow {terms['deliveryWindow']} is too large"
    elif name in ("TradeShipped", "TradeReceived", "InspectionExtended"):
        if args["inspectionEndsAt"] > MAX_TIMESTAMP:
            return f"{name}: inspectionEndsAt {args['inspectionEndsAt']} is beyond the year 9999"
    elif name == "DisputeOpened":
        if args["rulingDeadline"] > MAX_TIMESTAMP:
            return f"{name}: rulingDeadline {args['rulingDeadline']} is beyond the year 9999"
    if event.block_timestamp is not None and not 0 <= event.block_timestamp <= MAX_TIMESTAMP:
        return f"block time {event.block_timestamp} out of range"
    return None


def column_text(value: str, length: int) -> str:
    """``value`` fit for a text column of ``length`` characters on every database: NUL
    characters (PostgreSQL refuses them) become U+FFFD, and a longer text is cut with '…'."""
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    if len(value) > length:
        value = value[: length - 1] + "\u2026"
    return value


# ---------------------------------------------------------------------------- state machine


@dataclass
class TradeProjection:
    """A trade's row (and its dispute's) being built from events; ``None`` = no such row."""

    onchain_id: int
    trade: dict[str, Any] | None = None
    dispute: dict[str, Any] | None = None
    trade_pk: int | None = None
    dispute_pk: int | None = None
    evidence: list[DecodedLog] = field(default_factory=list)
    changed: bool = False
    #: The rows as stored before this batch (None: no row), for the per-person figures.
    stored_trade: dict[str, Any] | None = None
    stored_dispute: dict[str, Any] | None = None


def _block_time(event: DecodedLog) -> datetime:
    if event.block_timestamp is None:
        raise ValueError(f"no block time for block {event.block_number}")
    return utc(event.block_timestamp)


def apply_event(scope: Scope, proj: TradeProjection, event: DecodedLog) -> bool:
    """Applies one trade event to ``proj``; False when the trade is unknown (not funded)."""
    args = event.args
    name = event.name
    when = _block_time(event)
    if name == "TradeFunded":
        terms = args["terms"]
        proj.trade = {
            "chain_id": scope.chain_id,
            "contract_address": scope.contract_address,
            "onchain_id": args["tradeId"],
            "listing_id": None,
            "listing_ref": args["listingRef"],
            "buyer": terms["buyer"],
            "seller": terms["seller"],
            "arbitrator": terms["arbitrator"],
            "token": terms["token"],
            "amount": terms["amount"],
            "ship_by": utc(terms["shipBy"]),
            "inspection_period": terms["inspectionPeriod"],
            "arbitrator_fee_bps": terms["arbitratorFeeBps"],
            "platform_fee_bps": terms["platformFeeBps"],
            "delivery_window": terms.get("deliveryWindow"),
            "terms_hash": terms_hash(args["tradeId"], terms),
            "status": TradeStatus.FUNDED.value,
            "deadline": None,
            "shipment_ref": None,
            "inspection_ends_at": None,
            "ruling_deadline": None,
            "split_proposer": None,
            "proposed_buyer_bps": None,
            "extension_days": None,
            "extension_granted": False,
            "released_by_buyer": None,
            "refunded_after_deadline": None,
            "buyer_bps": None,
            "buyer_amount": None,
            "seller_amount": None,
            "platform_fee": None,
            "arbitrator_fee": None,
            "funded_at": when,
            "shipped_at": None,
            "received_at": None,
            "split_proposed_at": None,
            "disputed_at": None,
            "finished_at": None,
            "finished_block": None,
            "funded_block": event.block_number,
            "funded_tx": event.tx_hash,
            "last_event_block": event.block_number,
        }
        proj.changed = True
        return True
    trade = proj.trade
    if trade is None:
        return False
    trade["last_event_block"] = event.block_number
    proj.changed = True
    if name == "TradeShipped":
        trade.update(
            status=TradeStatus.SHIPPED.value,
            shipment_ref=args["shipmentRef"],
            inspection_ends_at=utc(args["inspectionEndsAt"]),
            deadline=utc(args["inspectionEndsAt"]),
            shipped_at=when,
        )
        _clear_proposal(trade)
    elif name == "TradeReceived":
        ends = utc(args["inspectionEndsAt"])
        trade.update(received_at=when, inspection_ends_at=ends, deadline=ends)
    elif name == "InspectionExtensionRequested":
        trade.update(extension_days=args["extraDays"])
    elif name == "InspectionExtended":
        ends = utc(args["inspectionEndsAt"])
        trade.update(
            extension_days=args["extraDays"],
            extension_granted=True,
            inspection_ends_at=ends,
            deadline=ends,
        )
    elif name == "SplitCleared":
        _clear_proposal(trade)
    elif name == "SplitProposed":
        side = Side.BUYER if args["proposer"] == trade["buyer"] else Side.SELLER
        trade.update(
            split_proposer=side.value, proposed_buyer_bps=args["buyerBps"], split_proposed_at=when
        )
    elif name == "DisputeOpened":
        trade.update(
            status=TradeStatus.DISPUTED.value,
            deadline=utc(args["rulingDeadline"]),
            ruling_deadline=utc(args["rulingDeadline"]),
            disputed_at=when,
        )
        _clear_proposal(trade)
        statement = proj.dispute.get("statement") if proj.dispute else None
        proj.dispute = {
            "opened_by": args["openedBy"],
            "opened_at": when,
            "opened_block": event.block_number,
            "ruling_deadline": utc(args["rulingDeadline"]),
            "statement": statement,
            "resolved_at": None,
            "by_timeout": None,
            "buyer_bps": None,
            "buyer_amount": None,
            "seller_amount": None,
            "arbitrator_fee": None,
            "platform_fee": None,
        }
    elif name == "EvidenceSubmitted":
        proj.evidence.append(event)
    elif name == "TradeReleased":
        _finish(trade, TradeStatus.RELEASED, event)
        trade.update(
            released_by_buyer=args["byBuyer"],
            seller_amount=args["sellerAmount"],
            platform_fee=args["platformFee"],
            buyer_amount=0,
        )
    elif name == "TradeRefunded":
        _finish(trade, TradeStatus.REFUNDED, event)
        trade.update(
            refunded_after_deadline=args["afterDeadline"],
            buyer_amount=args["buyerAmount"],
            seller_amount=0,
            platform_fee=0,
        )
    elif name == "TradeSettled":
        _finish(trade, TradeStatus.SETTLED, event)
        trade.update(
            buyer_bps=args["buyerBps"],
            buyer_amount=args["buyerAmount"],
            seller_amount=args["sellerAmount"],
            platform_fee=args["platformFee"],
        )
    elif name == "DisputeResolved":
        _finish(trade, TradeStatus.RESOLVED, event)
        outcome = {
            "buyer_bps": args["buyerBps"],
            "buyer_amount": args["buyerAmount"],
            "seller_amount": args["sellerAmount"],
            "platform_fee": args["platformFee"],
            "arbitrator_fee": args["arbitratorFee"],
        }
        trade.update(outcome)
        if proj.dispute is not None:
            proj.dispute.update(outcome, resolved_at=when, by_timeout=args["byTimeout"])
    return True


def _clear_proposal(trade: dict[str, Any]) -> None:
    # The contract drops an open split proposal on every status change.
    trade.update(split_proposer=None, proposed_buyer_bps=None)


def _finish(trade: dict[str, Any], status: TradeStatus, event: DecodedLog) -> None:
    trade.update(
        status=status.value,
        deadline=None,
        finished_at=_block_time(event),
        finished_block=event.block_number,
    )
    _clear_proposal(trade)


def event_row(scope: Scope, event: DecodedLog) -> dict[str, Any]:
    args = event.args
    trade_id = args.get("tradeId") if event.name in TRADE_EVENTS else None
    account_arg = ACCOUNT_ARG.get(event.name)
    return {
        "chain_id": scope.chain_id,
        "contract_address": scope.contract_address,
        "block_number": event.block_number,
        "block_hash": event.block_hash,
        "block_time": None if event.block_timestamp is None else utc(event.block_timestamp),
        "tx_hash": event.tx_hash,
        "log_index": event.log_index,
        "event": event.name,
        "trade_id": None,
        "onchain_trade_id": trade_id,
        "account": args.get(account_arg) if account_arg else None,
        "args": args,
    }


# ---------------------------------------------------------------------------- database


@dataclass
class BatchResult:
    applied: int = 0  # new events stored
    skipped: int = 0  # already in the database (replay)
    orphans: int = 0  # trade events of trades funded before the start block
    undecoded: int = 0  # logs that could not be decoded, stored raw


def _chunks(items: Sequence[Any], size: int = IN_CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


_TRADE_STATE_COLUMNS = [c for c in Trade.__table__.columns if c.name not in ("id",)]
_DISPUTE_COLUMNS = [c for c in Dispute.__table__.columns if c.name not in ("id", "trade_id")]


def load_projections(
    session: Session, scope: Scope, onchain_ids: Iterable[int]
) -> dict[int, TradeProjection]:
    """The stored rows of these trades (missing ids get an empty projection)."""
    ids = sorted(set(onchain_ids))
    result = {i: TradeProjection(onchain_id=i) for i in ids}
    for chunk in _chunks(ids):
        rows = session.execute(
            select(Trade.id, *_TRADE_STATE_COLUMNS).where(
                Trade.chain_id == scope.chain_id,
                Trade.contract_address == scope.contract_address,
                Trade.onchain_id.in_(chunk),
            )
        ).mappings()
        for row in rows:
            proj = result[row["onchain_id"]]
            proj.trade_pk = row["id"]
            proj.trade = {k: v for k, v in row.items() if k != "id"}
            proj.stored_trade = dict(proj.trade)
    by_pk = {p.trade_pk: p for p in result.values() if p.trade_pk is not None}
    for chunk in _chunks(list(by_pk)):
        for row in session.execute(
            select(Dispute.id, Dispute.trade_id, *_DISPUTE_COLUMNS).where(
                Dispute.trade_id.in_(chunk)
            )
        ).mappings():
            proj = by_pk[row["trade_id"]]
            proj.dispute_pk = row["id"]
            proj.dispute = {k: v for k, v in row.items() if k not in ("id", "trade_id")}
            proj.stored_dispute = dict(proj.dispute)
    return result


def store_projections(
    session: Session, projections: Iterable[TradeProjection], scope: Scope | None = None
) -> None:
    """Writes changed projections: inserts, updates by primary key, deletes emptied rows.

    A deleted trade's messages, ratings and evidence files are detached, not deleted; a new
    trade takes back the ones that belong to it (see :func:`reattach_records`).
    """
    projections = [p for p in projections if p.changed]
    new = [p for p in projections if p.trade is not None and p.trade_pk is None]
    if new:
        _link_listings(session, scope, [p.trade for p in new if p.trade is not None])
        table = cast(Table, Trade.__table__)
        rows = [p.trade for p in new if p.trade is not None]
        pks = insert_with_ids(
            session,
            table,
            rows,
            "onchain_id",
            {"chain_id": rows[0]["chain_id"], "contract_address": rows[0]["contract_address"]},
        )
        for proj, pk in zip(new, pks, strict=True):
            proj.trade_pk = pk
        reattach_records(
            session, [(pk, p.trade) for p, pk in zip(new, pks, strict=True) if p.trade is not None]
        )
    new_ids = {id(p) for p in new}
    updates = [
        dict(p.trade, id=p.trade_pk)
        for p in projections
        if p.trade is not None and id(p) not in new_ids
    ]
    if updates:
        session.execute(update(Trade), updates)
    gone = [p.trade_pk for p in projections if p.trade is None and p.trade_pk is not None]
    touched_listings = [p.trade.get("listing_id") for p in projections if p.trade is not None]
    for chunk in _chunks(gone):
        touched_listings += session.scalars(
            select(Trade.listing_id).where(Trade.id.in_(chunk))
        ).all()
        detach_records(session, Trade.id.in_(chunk))
        session.execute(delete(Trade).where(Trade.id.in_(chunk)))
    refresh_listings(session, touched_listings)

    new_disputes = [
        dict(p.dispute, trade_id=p.trade_pk)
        for p in projections
        if p.dispute is not None and p.dispute_pk is None and p.trade is not None
    ]
    if new_disputes:
        session.execute(insert(Dispute), new_disputes)
    dispute_updates = [
        dict(p.dispute, id=p.dispute_pk)
        for p in projections
        if p.dispute is not None and p.dispute_pk is not None
    ]
    if dispute_updates:
        session.execute(update(Dispute), dispute_updates)
    gone_disputes = [
        p.dispute_pk for p in projections if p.dispute is None and p.dispute_pk is not None
    ]
    for chunk in _chunks(gone_disputes):
        session.execute(delete(Dispute).where(Dispute.id.in_(chunk)))

    for proj in projections:
        for event in proj.evidence:
            session.execute(
                update(EvidenceFile)
                .where(
                    EvidenceFile.trade_id == proj.trade_pk,
                    EvidenceFile.sha256 == event.args["contentHash"][2:],
                    EvidenceFile.onchain_tx_hash.is_(None),
                )
                .values(
                    onchain_uri=column_text(str(event.args["uri"]), URI_COLUMN_LENGTH),
                    onchain_tx_hash=event.tx_hash,
                    onchain_block=event.block_number,
                )
            )
    _count_for_people(session, projections)


def _count_for_people(session: Session, projections: list[TradeProjection]) -> None:
    """Adds the difference these trades make to their people's figures (``party_stats``,
    ``arbitrator_stats``), in the batch's transaction."""
    listing_ids = sorted(
        {
            row["listing_id"]
            for p in projections
            for row in (p.stored_trade, p.trade)
            if row is not None and row.get("listing_id") is not None
        }
    )
    currency: dict[int, str] = {}
    for chunk in _chunks(listing_ids):
        currency.update(
            session.execute(select(Listing.id, Listing.currency).where(Listing.id.in_(chunk))).all()
        )
    delta = StatsDelta()
    for proj in projections:
        old, new = proj.stored_trade, proj.trade
        delta.add(
            old,
            currency.get(old["listing_id"]) if old and old.get("listing_id") else None,
            new,
            currency.get(new["listing_id"]) if new and new.get("listing_id") else None,
            dispute_changed=proj.dispute != proj.stored_dispute,
        )
        proj.stored_trade = None if new is None else dict(new)
        proj.stored_dispute = None if proj.dispute is None else dict(proj.dispute)
    delta.apply(session)


@dataclass(frozen=True)
class _ListingTerms:
    id: int
    seller: str
    price: int
    currency: str


def _link_listings(session: Session, scope: Scope | None, trades: list[dict[str, Any]]) -> None:
    """Sets each new trade's ``listing_id``: the listing it quotes, if it buys that listing.

    The listing reference is public, so quoting it proves nothing. A trade buys the listing
    only when it pays the listing's seller its price in its currency, or matches what a checkout
    hold of that listing quoted to that buyer (the price may have changed since). Other trades
    keep ``listing_id`` NULL and never change the listing. Open holds of the buyer on a listing
    they bought end as 'funded'.
    """
    refs = sorted({t["listing_ref"] for t in trades})
    listing_by_ref: dict[str, _ListingTerms] = {}
    for chunk in _chunks(refs):
        for listing_id, ref, seller, price, currency in session.execute(
            select(Listing.id, Listing.ref, User.address, Listing.price, Listing.currency)
            .join(User, User.id == Listing.seller_id)
            .where(Listing.ref.in_(chunk))
        ):
            listing_by_ref[ref] = _ListingTerms(listing_id, seller.lower(), price, currency)
    for trade in trades:
        trade["listing_id"] = None
    quoting = [
        (t, listing_by_ref[t["listing_ref"]]) for t in trades if t["listing_ref"] in listing_by_ref
    ]
    if not quoting:
        return
    tokens = _currency_tokens(session, scope, {listing.currency for _, listing in quoting})
    unmatched: list[tuple[dict[str, Any], _ListingTerms]] = []
    for trade, listing in quoting:
        if (
            trade["seller"].lower() == listing.seller
            and trade["amount"] == listing.price
            and trade["token"].lower() in tokens.get(listing.currency, ())
        ):
            trade["listing_id"] = listing.id
        else:
            unmatched.append((trade, listing))
    if unmatched:
        quotes: set[tuple[int, str, str, str, int]] = set()
        listing_ids = sorted({listing.id for _, listing in unmatched})
        for chunk in _chunks(listing_ids):
            for row in session.execute(
                select(
                    CheckoutHold.listing_id,
                    CheckoutHold.buyer,
                    CheckoutHold.seller,
                    CheckoutHold.token,
                    CheckoutHold.amount,
                ).where(CheckoutHold.listing_id.in_(chunk))
            ):
                listing_id, buyer, seller, token, amount = row
                quotes.add((listing_id, buyer.lower(), seller.lower(), token.lower(), amount))
        for trade, listing in unmatched:
            quote = (
                listing.id,
                trade["buyer"].lower(),
                trade["seller"].lower(),
                trade["token"].lower(),
                trade["amount"],
            )
            if quote in quotes:
                trade["listing_id"] = listing.id
    now = datetime.now(UTC)
    for trade in trades:
        if trade["listing_id"] is None:
            continue
        session.execute(
            update(CheckoutHold)
            .where(
                CheckoutHold.listing_id == trade["listing_id"],
                CheckoutHold.buyer == trade["buyer"],
                CheckoutHold.state.in_([HoldState.WALLET.value, HoldState.PAYMENT.value]),
            )
            .values(state=HoldState.ENDED.value, end_reason="funded", ended_at=now)
            .execution_options(synchronize_session=False)
        )


def _currency_tokens(
    session: Session, scope: Scope | None, currencies: set[str]
) -> dict[str, set[str]]:
    """The tokens (lower-case addresses) that pay a listing in each of ``currencies``."""
    tokens: dict[str, set[str]] = {Currency.ETH.value: {ZERO_ADDRESS}}
    known = {
        Currency.USD.value: scope.stablecoin if scope is not None else None,
        Currency.KZT.value: scope.tenge if scope is not None else None,
    }
    for currency, token in known.items():
        if currency not in currencies:
            continue
        if token:
            tokens[currency] = {token.lower()}
        else:
            # The deployment record is not at hand: the web app quotes USD (KZT) holds in the
            # deployment's stablecoin (tenge), so those are the tokens it knows as that currency.
            tokens[currency] = {
                t.lower()
                for t in session.scalars(
                    select(CheckoutHold.token).where(CheckoutHold.currency == currency).distinct()
                )
            }
    return tokens


# ---------------------------------------------------------------------------- people's records

#: Rows people wrote about a trade; they outlive the trade's row (see ``DetachedFromTrade``).
RECORD_MODELS: tuple[type[Message] | type[Rating] | type[EvidenceFile], ...] = (
    Message,
    Rating,
    EvidenceFile,
)


def detach_records(session: Session, trades: Any) -> None:
    """Detaches the records of the trades ``trades`` (a condition on ``Trade``) before they are
    deleted: ``trade_id`` NULL, and the trade's chain, contract, on-chain id and funding
    transaction remembered. Files on disk stay where they are."""
    now = datetime.now(UTC)
    for model in RECORD_MODELS:

        def of_trade(column: Any, model: Any = model) -> Any:
            return select(column).where(Trade.id == model.trade_id).scalar_subquery()

        session.execute(
            update(model)
            .where(model.trade_id.in_(select(Trade.id).where(trades)))
            .values(
                detached_chain_id=of_trade(Trade.chain_id),
                detached_contract=of_trade(Trade.contract_address),
                detached_onchain_id=of_trade(Trade.onchain_id),
                detached_funded_tx=of_trade(Trade.funded_tx),
                detached_at=now,
                trade_id=None,
            )
            .execution_options(synchronize_session=False)
        )


def reattach_records(session: Session, trades: Sequence[tuple[int, dict[str, Any]]]) -> int:
    """Gives new trades back the detached records that belong to them; returns how many.

    Records go back to the trade funded by the same transaction (a reorganisation can move it
    to another block, which changes the on-chain id), or else to the trade with the same
    on-chain id when everyone who wrote them is a party of it (the id fixes the buyer, not the
    seller or the arbitrator, and nobody may read a conversation they were not part of).
    """
    if not trades:
        return 0
    first = trades[0][1]
    chain_id, contract = first["chain_id"], first["contract_address"]
    detached: list[tuple[Any, Any]] = []  # (model, row)
    for model in RECORD_MODELS:
        found = session.scalars(
            select(model).where(
                model.trade_id.is_(None),
                model.detached_chain_id == chain_id,
                model.detached_contract == contract,
            )
        )
        detached.extend((model, row) for row in found)
    if not detached:
        return 0
    groups: dict[tuple[int | None, str | None], list[tuple[Any, Any]]] = {}
    for model, row in detached:
        groups.setdefault((row.detached_onchain_id, row.detached_funded_tx), []).append(
            (model, row)
        )
    by_tx = {t["funded_tx"]: (pk, t) for pk, t in trades}
    by_id = {t["onchain_id"]: (pk, t) for pk, t in trades}
    chosen: dict[int, list[list[tuple[Any, Any]]]] = {}
    for (onchain_id, funded_tx), rows in groups.items():
        if funded_tx in by_tx:
            chosen.setdefault(by_tx[funded_tx][0], []).insert(0, rows)
        elif onchain_id in by_id and _all_parties(rows, by_id[onchain_id][1]):
            chosen.setdefault(by_id[onchain_id][0], []).append(rows)
    attached = 0
    for trade_pk, row_groups in chosen.items():
        taken: set[tuple[Any, ...]] = set()
        for rows in row_groups:
            for model, row in rows:
                key = _unique_key(model, row)
                if key is not None and key in taken:
                    continue  # the same rating or file came back twice: keep one attached
                if key is not None:
                    taken.add(key)
                row.trade_id = trade_pk
                row.detached_chain_id = row.detached_contract = None
                row.detached_onchain_id = row.detached_funded_tx = row.detached_at = None
                attached += 1
    session.flush()
    return attached


def _unique_key(model: Any, row: Any) -> tuple[Any, ...] | None:
    if model is Rating:
        return ("rating", row.rater_side)
    if model is EvidenceFile:
        return ("file", row.sha256)
    return None


def _all_parties(rows: list[tuple[Any, Any]], trade: dict[str, Any]) -> bool:
    buyer, seller = trade["buyer"].lower(), trade["seller"].lower()
    people = {buyer, seller, trade["arbitrator"].lower()}
    for model, row in rows:
        if model is Message and row.sender.lower() not in people:
            return False
        if model is EvidenceFile and row.uploaded_by.lower() not in people:
            return False
        if model is Rating:
            sides = (buyer, seller) if row.rater_side == Side.BUYER.value else (seller, buyer)
            if (row.rater.lower(), row.ratee.lower()) != sides:
                return False
    return True


def existing_event_keys(
    session: Session, scope: Scope, first_block: int, last_block: int
) -> set[tuple[str, int]]:
    rows = session.execute(
        select(TradeEvent.tx_hash, TradeEvent.log_index).where(
            TradeEvent.chain_id == scope.chain_id,
            TradeEvent.contract_address == scope.contract_address,
            TradeEvent.block_number.between(first_block, last_block),
        )
    )
    return {(tx, index) for tx, index in rows}


def store_undecoded(session: Session, scope: Scope, logs: Sequence[Undecoded]) -> int:
    """Stores logs that could not be decoded, raw (skipping ones already stored)."""
    if not logs:
        return 0
    seen: set[tuple[str, int]] = set()
    for chunk in _chunks(sorted({u.log.tx_hash for u in logs})):
        seen.update(
            (tx, index)
            for tx, index in session.execute(
                select(UndecodedLog.tx_hash, UndecodedLog.log_index).where(
                    UndecodedLog.chain_id == scope.chain_id, UndecodedLog.tx_hash.in_(chunk)
                )
            )
        )
    rows = []
    for entry in logs:
        raw = entry.log
        if (raw.tx_hash, raw.log_index) in seen:
            continue
        seen.add((raw.tx_hash, raw.log_index))
        rows.append(
            {
                "chain_id": scope.chain_id,
                "contract_address": scope.contract_address,
                "block_number": raw.block_number,
                "block_hash": raw.block_hash,
                "tx_hash": raw.tx_hash,
                "log_index": raw.log_index,
                "topics": [str(t) for t in raw.topics],
                "data": "0x" + raw.data,
                "error": column_text(entry.error, 2000),
                "created_at": datetime.now(UTC),
            }
        )
    if rows:
        session.execute(insert(cast(Table, UndecodedLog.__table__)), rows)
    return len(rows)


def apply_events(
    session: Session,
    scope: Scope,
    events: Sequence[DecodedLog],
    undecoded: Sequence[Undecoded] = (),
) -> BatchResult:
    """Stores ``events`` (in chain order) and updates the rows they change; ``undecoded`` logs
    of the same blocks are stored raw.

    Events already stored (same chain, tx hash and log index) are skipped, so replaying a range
    changes nothing. Runs inside the caller's transaction.
    """
    result = BatchResult()
    result.undecoded = store_undecoded(session, scope, undecoded)
    if not events:
        return result
    seen = existing_event_keys(session, scope, events[0].block_number, events[-1].block_number)
    if seen:
        fresh = [e for e in events if (e.tx_hash, e.log_index) not in seen]
        result.skipped = len(events) - len(fresh)
        events = fresh
        if not events:
            return result

    trade_ids = {e.args["tradeId"] for e in events if e.name in TRADE_EVENTS}
    funded_here = {e.args["tradeId"] for e in events if e.name == "TradeFunded"}
    projections = load_projections(session, scope, trade_ids - funded_here)
    for trade_id in funded_here:
        projections.setdefault(trade_id, TradeProjection(onchain_id=trade_id))

    rows = []
    row_projection: list[TradeProjection | None] = []
    arbitrator_events = []
    for event in events:
        row = event_row(scope, event)
        proj = None
        if event.name in TRADE_EVENTS:
            proj = projections[event.args["tradeId"]]
            if not apply_event(scope, proj, event):
                result.orphans += 1
                proj = None
        elif event.name in ARBITRATOR_EVENTS:
            arbitrator_events.append(event)
        rows.append(row)
        row_projection.append(proj)

    store_projections(session, projections.values(), scope)
    for row, proj in zip(rows, row_projection, strict=True):
        if proj is not None:
            row["trade_id"] = proj.trade_pk
    insert_rows(session, cast(Table, TradeEvent.__table__), rows)
    for event in arbitrator_events:
        _apply_arbitrator_event(session, event)
    result.applied = len(rows)
    return result


def _apply_arbitrator_event(session: Session, event: DecodedLog) -> None:
    address = event.args["arbitrator"]
    profile = session.scalar(select(ArbitratorProfile).where(ArbitratorProfile.address == address))
    if profile is None:
        profile = ArbitratorProfile(address=address, languages=[])
        session.add(profile)
    registered = event.name == "ArbitratorRegistered"
    profile.onchain_registered = registered
    profile.onchain_max_fee_bps = event.args["maxFeeBps"] if registered else None
    profile.onchain_updated_block = event.block_number
    session.flush()


# ---------------------------------------------------------------------------- rollback


def _stored_event(row: TradeEvent) -> DecodedLog:
    return DecodedLog(
        name=row.event,
        args=row.args,
        block_number=row.block_number,
        block_hash=row.block_hash,
        block_timestamp=None if row.block_time is None else int(as_utc(row.block_time).timestamp()),
        tx_hash=row.tx_hash,
        log_index=row.log_index,
    )


def rebuild_trades(session: Session, scope: Scope, onchain_ids: Iterable[int]) -> None:
    """Recomputes these trades from their stored events (deleting trades left with none)."""
    projections = load_projections(session, scope, onchain_ids)
    for proj in projections.values():
        statement = proj.dispute.get("statement") if proj.dispute else None
        proj.trade, proj.dispute, proj.changed = None, None, True
        events = session.scalars(
            select(TradeEvent)
            .where(
                TradeEvent.chain_id == scope.chain_id,
                TradeEvent.contract_address == scope.contract_address,
                TradeEvent.onchain_trade_id == proj.onchain_id,
            )
            .order_by(TradeEvent.block_number, TradeEvent.log_index)
        ).all()
        for row in events:
            apply_event(scope, proj, _stored_event(row))
        if proj.dispute is not None:
            proj.dispute["statement"] = statement
        proj.evidence = []  # links above the fork were cleared; the rest are still valid
        if proj.trade is not None and proj.trade_pk is not None:
            listing_id = session.scalar(select(Trade.listing_id).where(Trade.id == proj.trade_pk))
            proj.trade["listing_id"] = listing_id
    store_projections(session, projections.values(), scope)


def rollback_above(session: Session, scope: Scope, block: int) -> int:
    """Removes everything that came from blocks above ``block``; returns the events removed."""
    in_scope = and_(
        TradeEvent.chain_id == scope.chain_id,
        TradeEvent.contract_address == scope.contract_address,
        TradeEvent.block_number > block,
    )
    affected = sorted(
        {
            i
            for i in session.scalars(select(TradeEvent.onchain_trade_id).where(in_scope))
            if i is not None
        }
    )
    arbitrators = sorted(
        {
            a
            for a in session.scalars(
                select(TradeEvent.account).where(in_scope, TradeEvent.event.in_(ARBITRATOR_EVENTS))
            )
            if a is not None
        }
    )
    of_scope = and_(
        Trade.chain_id == scope.chain_id, Trade.contract_address == scope.contract_address
    )
    people: tuple[set[str], set[str]] = (set(), set())
    for chunk in _chunks(affected):
        parties, arbitrators_here = parties_of_trades(
            session, and_(of_scope, Trade.onchain_id.in_(chunk))
        )
        people[0].update(parties)
        people[1].update(arbitrators_here)
    removed = cast(CursorResult[Any], session.execute(delete(TradeEvent).where(in_scope)))
    removed_count = removed.rowcount or 0
    session.execute(
        delete(UndecodedLog).where(
            UndecodedLog.chain_id == scope.chain_id,
            UndecodedLog.contract_address == scope.contract_address,
            UndecodedLog.block_number > block,
        )
    )
    trade_pks = select(Trade.id).where(
        Trade.chain_id == scope.chain_id, Trade.contract_address == scope.contract_address
    )
    session.execute(
        update(EvidenceFile)
        .where(EvidenceFile.onchain_block > block, EvidenceFile.trade_id.in_(trade_pks))
        .values(onchain_uri=None, onchain_tx_hash=None, onchain_block=None)
    )
    for chunk in _chunks(affected):
        rebuild_trades(session, scope, chunk)
    for address in arbitrators:
        _rebuild_arbitrator(session, scope, address)
    # The figures of everyone whose trades were undone, again from the trades (exact).
    recompute(session, *people)
    return removed_count


def _rebuild_arbitrator(session: Session, scope: Scope, address: str | None) -> None:
    if address is None:
        return
    last = session.scalars(
        select(TradeEvent)
        .where(
            TradeEvent.chain_id == scope.chain_id,
            TradeEvent.contract_address == scope.contract_address,
            TradeEvent.event.in_(ARBITRATOR_EVENTS),
            TradeEvent.account == address,
        )
        .order_by(TradeEvent.block_number.desc(), TradeEvent.log_index.desc())
        .limit(1)
    ).first()
    profile = session.scalar(select(ArbitratorProfile).where(ArbitratorProfile.address == address))
    if profile is None:
        return
    if last is None:
        profile.onchain_registered, profile.onchain_max_fee_bps = False, None
        profile.onchain_updated_block = None
    else:
        _apply_arbitrator_event(session, _stored_event(last))
