"""Off-chain records with rules the schema alone cannot express."""

from __future__ import annotations

from sqlalchemy.orm import Session

from escrow.db.models import EvidenceFile, Rating, Side, Trade, TradeStatus
from escrow.errors import EscrowError


class RecordRejected(EscrowError):
    """A record that the market's rules do not allow (the message says why)."""


def add_rating(
    session: Session, trade: Trade, rater: str, score: int, comment: str | None = None
) -> Rating:
    """The buyer rates the seller or the seller rates the buyer, once, after the trade finished.

    The unique constraint (trade, rater side) enforces "once" even under concurrent requests.
    """
    rater = rater.lower()
    if not TradeStatus(trade.status).is_final:
        raise RecordRejected(f"trade {trade.onchain_id} is not finished ({trade.status})")
    if rater == trade.buyer:
        side, ratee = Side.BUYER, trade.seller
    elif rater == trade.seller:
        side, ratee = Side.SELLER, trade.buyer
    else:
        raise RecordRejected(f"{rater} is not a party of trade {trade.onchain_id}")
    if not 1 <= score <= 5:
        raise RecordRejected(f"score must be 1..5, not {score}")
    rating = Rating(
        trade_id=trade.id,
        rater_side=side.value,
        rater=rater,
        ratee=ratee,
        score=score,
        comment=comment,
    )
    session.add(rating)
    return rating


def add_evidence_file(
    session: Session,
    trade: Trade,
    uploaded_by: str,
    original_name: str,
    sha256: str,
    size_bytes: int,
    storage_path: str,
    content_type: str = "application/octet-stream",
) -> EvidenceFile:
    """Records a file stored with :func:`escrow.db.evidence.store_evidence` for a trade."""
    uploaded_by = uploaded_by.lower()
    if uploaded_by not in (trade.buyer, trade.seller, trade.arbitrator):
        raise RecordRejected(f"{uploaded_by} is not a party or the arbitrator of the trade")
    record = EvidenceFile(
        trade_id=trade.id,
        uploaded_by=uploaded_by,
        original_name=original_name[:255],
        content_type=content_type,
        size_bytes=size_bytes,
        sha256=sha256.removeprefix("0x"),
        storage_path=storage_path,
    )
    session.add(record)
    return record
