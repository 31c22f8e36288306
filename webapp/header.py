"""What the header of every signed-in page counts: messages and notifications waiting for the
visitor, and whether they arbitrate (the "Arbitration" link). One statement per page, built
once; the messages, notifications and arbitration code read the same figures from here."""

from __future__ import annotations

from dataclasses import dataclass

from flask import has_request_context
from sqlalchemy import and_, bindparam, exists, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import BindParameter

from escrow.db.models import (
    ArbitratorProfile,
    Conversation,
    ConversationMessage,
    Notification,
    Trade,
)
from webapp.i18n import per_request

_USER: BindParameter[int] = bindparam("user_id")
_ADDRESS: BindParameter[str] = bindparam("address")

#: Messages waiting for one person (``user_id``) over all their conversations.
UNREAD_MESSAGES = (
    select(func.count(ConversationMessage.id))
    .join(Conversation, ConversationMessage.conversation_id == Conversation.id)
    .where(
        ConversationMessage.sender_id != _USER,
        or_(
            and_(
                Conversation.buyer_id == _USER, ConversationMessage.id > Conversation.buyer_read_id
            ),
            and_(
                Conversation.seller_id == _USER,
                ConversationMessage.id > Conversation.seller_read_id,
            ),
        ),
    )
)
#: Unread notifications of one person (``address``): one indexed count.
UNREAD_NOTIFICATIONS = select(func.count(Notification.id)).where(
    Notification.recipient == _ADDRESS, Notification.read_at.is_(None)
)
#: Whether ``address`` arbitrates any trade or has an arbitrator profile.
ARBITRATES = exists().where(Trade.arbitrator == _ADDRESS) | exists().where(
    ArbitratorProfile.address == _ADDRESS
)
IS_ARBITRATOR = select(ARBITRATES)
FIGURES = select(
    UNREAD_MESSAGES.scalar_subquery(), UNREAD_NOTIFICATIONS.scalar_subquery(), ARBITRATES
)


@dataclass(frozen=True)
class Figures:
    unread_messages: int
    unread_notifications: int
    is_arbitrator: bool


def figures(session: Session, address: str, user_id: int | None) -> Figures:
    """The header's figures for ``address`` (whose account is ``user_id``; None before their
    first action, who has no conversations), read once per request."""
    if not has_request_context():
        return _read(session, address, user_id)
    known: dict[str, Figures] = per_request("_header_figures", dict)
    if address not in known:
        known[address] = _read(session, address, user_id)
    return known[address]


def _read(session: Session, address: str, user_id: int | None) -> Figures:
    row = session.execute(FIGURES, {"address": address, "user_id": user_id}).one()
    return Figures(int(row[0] or 0), int(row[1] or 0), bool(row[2]))
