"""Per-user write quotas, counted from the rows in the database.

Every gunicorn worker sees the same database, so these quotas hold for the whole server. The
request rate limit (Flask-Limiter, ``WRITE_RATE_LIMIT``) is counted apart, in the store
``RATELIMIT_STORAGE_URI`` names (by default the database too); the quotas here do not depend on
it. Each check returns the message to show, or None when the write may go ahead.

Two requests of one user that arrive at the same moment can both pass a check, so a quota can
be overrun by at most the number of requests served in parallel; it cannot be overrun further.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import current_app
from flask_babel import gettext as _
from flask_babel import ngettext
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from escrow.db.models import EvidenceFile, Listing, ListingStatus, Message, User

MiB = 1024 * 1024
DAY = timedelta(days=1)


def _limit(name: str) -> int:
    return int(current_app.config[name])


def _ago(delta: timedelta) -> datetime:
    return datetime.now(UTC) - delta


def _megabytes(size: int) -> str:
    if size >= MiB:
        megabytes = f"{size / MiB:.0f}"
        return _("%(size)s MB", size=megabytes)
    kilobytes = f"{max(size, 0) / 1024:.0f}"
    return _("%(size)s KB", size=kilobytes)


def message_refusal(session: Session, sender: str) -> str | None:
    """Messages one person may write, over all trades: per minute and per hour."""
    minute, hour = _ago(timedelta(minutes=1)), _ago(timedelta(hours=1))
    last_minute, last_hour = session.execute(
        select(
            func.count(case((Message.created_at >= minute, 1))),
            func.count(Message.id),
        ).where(
            Message.sender == sender,
            Message.created_at >= hour,
            # An evidence file's note is counted by the evidence quota.
            Message.evidence_file_id.is_(None),
        )
    ).one()
    if last_minute >= _limit("MESSAGES_PER_MINUTE"):
        return ngettext(
            "You sent %(num)d message in the last minute, the most allowed. "
            "Wait a minute, then send it again.",
            "You sent %(num)d messages in the last minute, the most allowed. "
            "Wait a minute, then send it again.",
            last_minute,
        )
    if last_hour >= _limit("MESSAGES_PER_HOUR"):
        return ngettext(
            "You sent %(num)d message in the last hour, the most allowed. Try again later.",
            "You sent %(num)d messages in the last hour, the most allowed. Try again later.",
            last_hour,
        )
    return None


def evidence_refusal(session: Session, trade_id: int, uploader: str, size: int) -> str | None:
    """Evidence one person may add: files and bytes per trade, and per day over all trades.

    Counted per uploader, so that one side of a trade cannot use up the other side's room.
    """
    on_trade = session.execute(
        select(
            func.count(EvidenceFile.id), func.coalesce(func.sum(EvidenceFile.size_bytes), 0)
        ).where(EvidenceFile.trade_id == trade_id, EvidenceFile.uploaded_by == uploader)
    ).one()
    today = session.execute(
        select(
            func.count(EvidenceFile.id), func.coalesce(func.sum(EvidenceFile.size_bytes), 0)
        ).where(EvidenceFile.uploaded_by == uploader, EvidenceFile.created_at >= _ago(DAY))
    ).one()
    files_per_trade, bytes_per_trade = (
        _limit("EVIDENCE_FILES_PER_TRADE"),
        _limit("EVIDENCE_BYTES_PER_TRADE"),
    )
    files_per_day, bytes_per_day = (
        _limit("EVIDENCE_FILES_PER_USER_DAY"),
        _limit("EVIDENCE_BYTES_PER_USER_DAY"),
    )
    if on_trade[0] >= files_per_trade:
        return ngettext(
            "You already added %(num)d evidence file to this trade, the most allowed.",
            "You already added %(num)d evidence files to this trade, the most allowed.",
            files_per_trade,
        )
    if on_trade[1] + size > bytes_per_trade:
        return _(
            "Your evidence on this trade would pass %(size)s, the most allowed. "
            "Add a smaller file.",
            size=_megabytes(bytes_per_trade),
        )
    if today[0] >= files_per_day:
        return ngettext(
            "You added %(num)d evidence file in the last 24 hours; try again tomorrow.",
            "You added %(num)d evidence files in the last 24 hours; try again tomorrow.",
            files_per_day,
        )
    if today[1] + size > bytes_per_day:
        return _(
            "Your evidence of the last 24 hours would pass %(size)s; "
            "add a smaller file or try again tomorrow.",
            size=_megabytes(bytes_per_day),
        )
    return None


def listing_refusal(session: Session, seller: str) -> str | None:
    """Listings one seller may create per day, and how many may be on the market at once."""
    on_market = Listing.status.in_((ListingStatus.ACTIVE.value, ListingStatus.RESERVED.value))
    created, listed = session.execute(
        select(
            func.count(case((Listing.created_at >= _ago(DAY), 1))),
            func.count(case((on_market, 1))),
        )
        .join(User, Listing.seller_id == User.id)
        .where(User.address == seller)
    ).one()
    if created >= _limit("LISTINGS_PER_DAY"):
        return ngettext(
            "You created %(num)d listing in the last 24 hours, the most allowed. "
            "Try again tomorrow.",
            "You created %(num)d listings in the last 24 hours, the most allowed. "
            "Try again tomorrow.",
            created,
        )
    if listed >= _limit("ACTIVE_LISTINGS_PER_SELLER"):
        return ngettext(
            "You have %(num)d listing on the market, the most allowed. Pause or delete one first.",
            "You have %(num)d listings on the market, the most allowed. Pause or delete one first.",
            listed,
        )
    return None
