"""What a notification says, written when it is read (in the reader's language and time zone),
where it leads, and the insert that keeps rows unique. Shared by the notifier
(``webapp/notify.py``), the notification centre (``webapp/notifications.py``) and the e-mails
(``webapp/mailer.py``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from sqlalchemy.orm import Session

from escrow.db.models import Notification
from webapp.views import when


def insert_ignoring(session: Session, model: Any, unique: list[str]) -> Any:
    """``INSERT … ON CONFLICT (unique) DO NOTHING`` for the session's database."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(model).on_conflict_do_nothing(index_elements=unique)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(model).on_conflict_do_nothing(index_elements=unique)


def _percent(bps: Any) -> str:
    from flask_babel import format_percent

    return str(format_percent(int(bps or 0) / 10_000))


def describe(kind: str, params: dict[str, Any]) -> str:
    """The notification's text in the current language, times in the current time zone."""
    title = params.get("title") or _("trade #%(id)s", id=params.get("trade", "?"))
    if kind.startswith("remind_"):
        return _reminder_text(kind, title, params)
    by = str(params.get("by", ""))
    percent = _percent(params.get("buyer_bps"))
    days = int(params.get("days") or 0)
    if kind == "sold":
        if params.get("ship_by"):
            return _(
                "You sold “%(title)s”: the payment is held in escrow. Ship it by %(when)s.",
                title=title,
                when=when(datetime.fromisoformat(str(params["ship_by"]))),
            )
        return _("You sold “%(title)s”: the payment is held in escrow.", title=title)
    if kind == "paid":
        return _("Your payment for “%(title)s” is held in escrow.", title=title)
    if kind == "shipped":
        return _("The seller shipped “%(title)s”.", title=title)
    if kind == "delivered":
        return _("The buyer received “%(title)s”: the inspection has started.", title=title)
    if kind == "extension_requested":
        return ngettext(
            "The buyer asks for %(num)d more day to inspect “%(title)s”.",
            "The buyer asks for %(num)d more days to inspect “%(title)s”.",
            days,
            title=title,
        )
    if kind == "extension_granted":
        return ngettext(
            "The seller gave you %(num)d more day to inspect “%(title)s”.",
            "The seller gave you %(num)d more days to inspect “%(title)s”.",
            days,
            title=title,
        )
    if kind == "paid_out" and params.get("by_buyer"):
        return _("The buyer confirmed “%(title)s”: the money was paid out to you.", title=title)
    if kind == "paid_out":
        return _(
            "The inspection of “%(title)s” is over: the money was paid out to you.", title=title
        )
    if kind == "released":
        return _(
            "The inspection of “%(title)s” is over: the money went to the seller.", title=title
        )
    if kind == "refunded" and params.get("after_deadline"):
        return _(
            "“%(title)s” was not shipped in time: the payment went back to the buyer.", title=title
        )
    if kind == "refunded":
        return _("The seller refunded the payment for “%(title)s”.", title=title)
    if kind == "split_proposed":
        return _(
            "The other party proposes a split for “%(title)s”: %(percent)s to the buyer.",
            title=title,
            percent=percent,
        )
    if kind == "settled":
        return _(
            "“%(title)s” was settled by a split: %(percent)s to the buyer.",
            title=title,
            percent=percent,
        )
    if kind == "dispute_opened" and by == "buyer":
        return _("The buyer opened a dispute about “%(title)s”.", title=title)
    if kind == "dispute_opened":
        return _("The seller opened a dispute about “%(title)s”.", title=title)
    if kind == "evidence":
        return _("New evidence in the dispute about “%(title)s”.", title=title)
    if kind == "ruling" and params.get("by_timeout"):
        return _(
            "Nobody ruled on “%(title)s” in time: %(percent)s went to the buyer.",
            title=title,
            percent=percent,
        )
    if kind == "ruling":
        return _(
            "The arbitrator ruled on “%(title)s”: %(percent)s to the buyer.",
            title=title,
            percent=percent,
        )
    if kind == "message" and by == "buyer":
        return _("New message from the buyer about “%(title)s”.", title=title)
    if kind == "message" and by == "seller":
        return _("New message from the seller about “%(title)s”.", title=title)
    if kind == "message":
        return _("New message from the arbitrator about “%(title)s”.", title=title)
    if kind == "chat" and by == "buyer":
        return _("A buyer asks about “%(title)s”.", title=title)
    if kind == "chat":
        return _("The seller answered about “%(title)s”.", title=title)
    return str(title)


def _reminder_text(kind: str, title: str, params: dict[str, Any]) -> str:
    at = when(datetime.fromisoformat(str(params["deadline"])))
    left = ngettext("%(num)d hour", "%(num)d hours", int(params.get("hours") or 1))
    if kind == "remind_ship_by":
        return _(
            "Ship “%(title)s” by %(when)s (%(left)s left), or the buyer can take the money back.",
            title=title,
            when=at,
            left=left,
        )
    if kind == "remind_delivery_by":
        return _(
            "You promised delivery of “%(title)s” by %(when)s (%(left)s left).",
            title=title,
            when=at,
            left=left,
        )
    if kind == "remind_inspection_end":
        return _(
            "The inspection of “%(title)s” ends %(when)s (%(left)s left): confirm receipt or "
            "open a dispute before then, or the money goes to the seller.",
            title=title,
            when=at,
            left=left,
        )
    return _(
        "Rule on the dispute about “%(title)s” by %(when)s (%(left)s left).",
        title=title,
        when=at,
        left=left,
    )


def target_url(notification: Notification) -> str:
    """Where the notification leads: its trade, its conversation, or the trades page."""
    if notification.trade_id is not None:
        anchor = "#messages" if notification.kind == "message" else ""
        return url_for("trades.show", trade_pk=notification.trade_id) + anchor
    if notification.conversation_id is not None:
        return url_for("messages.show", conversation_id=notification.conversation_id)
    if notification.kind == "chat":
        return url_for("messages.inbox")
    return url_for("trades.index")
