"""Chat before buying: a signed-in buyer asks the seller about a listing, the seller replies.

One conversation per listing and buyer. Only its two people see it: for anyone else it does not
exist (404). Every message is shown through the phishing guard (``webapp/phishing.py``): risky
links, card and phone numbers are masked for the reader, with a warning in the reader's language.

A listing that is withdrawn or sold keeps its conversations, which its two people can go on
with, but nobody starts a new one about it. Messages are limited per sender (per minute and per
hour, counted in the database like ``webapp/quotas.py``; the app-wide ``WRITE_RATE_LIMIT`` of
``webapp/extensions.py`` applies too) and in length; a refusal is a page with the reason and the
text the person wrote, never a 500.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy.exc
from flask import Blueprint, abort, current_app, g, redirect, render_template, url_for
from flask_babel import format_number, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import case, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from wtforms import TextAreaField
from wtforms.validators import DataRequired, Length

from escrow.db.models import (
    Conversation,
    ConversationMessage,
    Listing,
    ListingStatus,
    User,
)
from webapp import db, header
from webapp.auth import current_address, current_user, login_required
from webapp.errors import render_error
from webapp.forms import Form
from webapp.views import guarded, guarded_preview

bp = Blueprint("messages", __name__)

MAX_CHARS = 1000
#: Defaults of the settings of the same name (``current_app.config`` overrides them).
LIMITS = {
    "CHAT_MESSAGES_PER_MINUTE": 5,
    "CHAT_MESSAGES_PER_HOUR": 30,
    "CHAT_CONVERSATIONS_PER_DAY": 20,
}
#: Listings about which a new conversation may start.
OPEN_LISTING = (ListingStatus.ACTIVE.value, ListingStatus.RESERVED.value)
PAGE_SIZE = 50
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class MessageForm(Form):
    body = TextAreaField(
        _l("Message"),
        validators=[
            DataRequired(_l("Write a message.")),
            Length(max=MAX_CHARS, message=_l("A message can be at most 1,000 characters.")),
        ],
    )


# ---------------------------------------------------------------------------- helpers


def _limit(name: str) -> int:
    return int(current_app.config.get(name, LIMITS[name]))


def _user(session: Session, address: str) -> User:
    """The signed-in person's user row (made on their first message)."""
    user = session.scalar(select(User).where(User.address == address))
    if user is None:
        user = User(address=address, languages=[])
        session.add(user)
        session.flush()
    return user


def refusal(session: Session, sender_id: int, new_conversation: bool) -> str | None:
    """Why ``sender_id`` may not send a message now, or None."""
    now = datetime.now(UTC)
    minute, hour = now - timedelta(minutes=1), now - timedelta(hours=1)
    last_minute, last_hour = session.execute(
        select(
            func.count(case((ConversationMessage.created_at >= minute, 1))),
            func.count(ConversationMessage.id),
        ).where(ConversationMessage.sender_id == sender_id, ConversationMessage.created_at >= hour)
    ).one()
    if last_minute >= _limit("CHAT_MESSAGES_PER_MINUTE"):
        return ngettext(
            "You sent %(num)d message in the last minute, the most allowed. "
            "Wait a minute, then send it again.",
            "You sent %(num)d messages in the last minute, the most allowed. "
            "Wait a minute, then send it again.",
            last_minute,
        )
    if last_hour >= _limit("CHAT_MESSAGES_PER_HOUR"):
        return ngettext(
            "You sent %(num)d message in the last hour, the most allowed. Try again later.",
            "You sent %(num)d messages in the last hour, the most allowed. Try again later.",
            last_hour,
        )
    if new_conversation:
        started = session.scalar(
            select(func.count(Conversation.id)).where(
                Conversation.buyer_id == sender_id,
                Conversation.created_at >= now - timedelta(days=1),
            )
        )
        if (started or 0) >= _limit("CHAT_CONVERSATIONS_PER_DAY"):
            return ngettext(
                "You asked about %(num)d listing in the last 24 hours, the most allowed. "
                "Try again tomorrow.",
                "You asked about %(num)d listings in the last 24 hours, the most allowed. "
                "Try again tomorrow.",
                int(started or 0),
            )
    return None


def _size_error() -> str:
    return _("Write a message of 1 to %(max)s characters.", max=format_number(MAX_CHARS))


def _body(form: MessageForm) -> str | None:
    """The message's text, stripped, or None when it is empty or too long."""
    raw = form.body.data if isinstance(form.body.data, str) else ""
    # Control characters other than line breaks and tabs are dropped (PostgreSQL refuses NUL).
    raw = CONTROL.sub("", raw.replace("\r\n", "\n"))
    body = raw.strip()
    return body if 1 <= len(body) <= MAX_CHARS else None


def _own_conversation(conversation_id: int) -> tuple[Conversation, User]:
    """The conversation and the signed-in person, who must be one of its two; else 404, the
    same as for a conversation that does not exist."""
    session = db.session()
    me = current_user()
    conversation = session.get(Conversation, conversation_id)
    if (
        conversation is None
        or me is None
        or me.id
        not in (
            conversation.buyer_id,
            conversation.seller_id,
        )
    ):
        abort(404, _("There is no such conversation."))
    return conversation, me


def _add(session: Session, conversation: Conversation, sender: User, body: str) -> None:
    message = ConversationMessage(conversation_id=conversation.id, sender_id=sender.id, body=body)
    session.add(message)
    session.flush()
    conversation.last_message_at = message.created_at
    # What one writes, one has read: the conversation up to here.
    if sender.id == conversation.buyer_id:
        conversation.buyer_read_id = message.id
    else:
        conversation.seller_read_id = message.id


def _unread_expression(user_id: int) -> Any:
    """Per conversation row: its messages from the other side that ``user_id`` has not seen."""
    read_mark = case(
        (Conversation.buyer_id == user_id, Conversation.buyer_read_id),
        else_=Conversation.seller_read_id,
    )
    return (
        select(func.count(ConversationMessage.id))
        .where(
            ConversationMessage.conversation_id == Conversation.id,
            ConversationMessage.id > read_mark,
            ConversationMessage.sender_id != user_id,
        )
        .correlate(Conversation)
        .scalar_subquery()
    )


def _mine(user_id: int) -> Any:
    return or_(Conversation.buyer_id == user_id, Conversation.seller_id == user_id)


@bp.app_context_processor
def header_counts() -> dict[str, Any]:
    """``unread_messages`` for the header of every page (0 when signed out or the database is
    down: an error page must not need the database)."""
    if g.get("database_down"):
        return {"unread_messages": 0}
    try:
        user = current_user()
        count = (
            header.figures(db.session(), user.address, user.id).unread_messages
            if user is not None
            else 0
        )
    except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError):
        g.database_down = True
        count = 0
    return {"unread_messages": count}


# ---------------------------------------------------------------------------- pages


@bp.get("/messages")
@login_required
def inbox() -> str:
    session = db.session()
    me = current_user()
    rows: list[Any] = []
    if me is not None:
        unread = _unread_expression(me.id).label("unread")
        last_body = (
            select(ConversationMessage.body)
            .where(ConversationMessage.conversation_id == Conversation.id)
            .order_by(ConversationMessage.id.desc())
            .limit(1)
            .correlate(Conversation)
            .scalar_subquery()
            .label("last_body")
        )
        rows = list(
            session.execute(
                select(Conversation, unread, last_body)
                .where(_mine(me.id))
                .order_by(Conversation.last_message_at.desc(), Conversation.id.desc())
                .limit(PAGE_SIZE)
            )
        )
    return render_template("messages/inbox.html", rows=rows, me=me, preview=guarded_preview)


def _show(conversation: Conversation, me: User, form: MessageForm, error: str | None = None) -> str:
    session = db.session()
    messages = list(
        session.scalars(
            select(ConversationMessage)
            .where(ConversationMessage.conversation_id == conversation.id)
            .order_by(ConversationMessage.id)
        )
    )
    if messages and error is None:
        last = messages[-1].id
        if me.id == conversation.buyer_id and conversation.buyer_read_id < last:
            conversation.buyer_read_id = last
            session.commit()
        elif me.id == conversation.seller_id and conversation.seller_read_id < last:
            conversation.seller_read_id = last
            session.commit()
    other = conversation.seller if me.id == conversation.buyer_id else conversation.buyer
    return render_template(
        "messages/show.html",
        conversation=conversation,
        messages=messages,
        me=me,
        other=other,
        i_am_buyer=me.id == conversation.buyer_id,
        form=form,
        error=error,
        guarded=guarded,
        max_chars=MAX_CHARS,
    )


@bp.get("/messages/<int:conversation_id>")
@login_required
def show(conversation_id: int) -> str:
    conversation, me = _own_conversation(conversation_id)
    return _show(conversation, me, MessageForm(formdata=None))


@bp.post("/messages/<int:conversation_id>")
@login_required
def reply(conversation_id: int) -> Any:
    conversation, me = _own_conversation(conversation_id)
    form = MessageForm()
    if not form.validate_on_submit():
        return _show(conversation, me, form, _size_error()), 400
    body = _body(form)
    if body is None:
        return _show(conversation, me, form, _size_error()), 400
    session = db.session()
    refused = refusal(session, me.id, new_conversation=False)
    if refused:
        return _show(conversation, me, form, refused), 429
    _add(session, conversation, me, body)
    session.commit()
    return redirect(url_for("messages.show", conversation_id=conversation.id) + "#latest")


@bp.post("/listings/<int:listing_id>/ask")
@login_required
def ask(listing_id: int) -> Any:
    """The listing page's "Ask the seller": a new conversation, or the next message of the
    buyer's conversation about this listing."""
    session = db.session()
    listing = session.get(Listing, listing_id)
    address = current_address()
    if listing is None:
        abort(404, _("There is no such listing."))
    if listing.seller.address == address:
        return render_error(403, _("This is your own listing: you cannot message yourself."))
    form = MessageForm()
    if not form.validate_on_submit() or (body := _body(form)) is None:
        return render_error(400, _size_error())
    buyer = session.scalar(select(User).where(User.address == address))
    conversation = (
        session.scalar(
            select(Conversation).where(
                Conversation.listing_id == listing.id, Conversation.buyer_id == buyer.id
            )
        )
        if buyer is not None
        else None
    )
    if conversation is None:
        if listing.status == ListingStatus.WITHDRAWN.value:
            abort(404, _("This listing was withdrawn by the seller."))
        if listing.status not in OPEN_LISTING:
            return render_error(
                409, _("This listing is no longer for sale, so no new conversation can start.")
            )
    if buyer is None:
        buyer = _user(session, address or "")
    refused = refusal(session, buyer.id, new_conversation=conversation is None)
    if refused:
        session.rollback()
        return render_error(429, refused)
    if conversation is None:
        conversation = Conversation(
            listing_id=listing.id,
            listing_title=listing.title,
            buyer_id=buyer.id,
            seller_id=listing.seller_id,
        )
        session.add(conversation)
        try:
            session.flush()
        except IntegrityError:  # the same buyer's other tab started it a moment ago
            session.rollback()
            buyer = _user(session, address or "")
            conversation = session.scalar(
                select(Conversation).where(
                    Conversation.listing_id == listing_id, Conversation.buyer_id == buyer.id
                )
            )
            if conversation is None:
                return render_error(409, _("The conversation could not start; try again."))
    _add(session, conversation, buyer, body)
    session.commit()
    return redirect(url_for("messages.show", conversation_id=conversation.id) + "#latest")


def conversation_for(listing_id: int) -> int | None:
    """The signed-in buyer's conversation about a listing, for the listing page's link."""
    me = current_user()
    if me is None:
        return None
    return db.session().scalar(
        select(Conversation.id).where(
            Conversation.listing_id == listing_id, Conversation.buyer_id == me.id
        )
    )


@bp.app_context_processor
def listing_helpers() -> dict[str, Any]:
    return {"conversation_for": conversation_for, "max_message_chars": MAX_CHARS}
