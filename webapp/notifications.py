"""The notification centre: the header's count, the list, "mark all read", e-mail settings,
and the small JSON endpoint ``static/js/live.js`` polls to keep the count and a trade page
up to date without reloading.

Notifications are written by the notifier (``webapp/notify.py``); every page here shows only
the signed-in person's own, and a trade's version only to its buyer, seller and arbitrator.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Any

import sqlalchemy.exc
from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from escrow.db.models import (
    EvidenceFile,
    Message,
    Notification,
    NotificationSettings,
    Rating,
    Trade,
    TradeEvent,
)
from webapp import db, header
from webapp.auth import current_address, current_user, login_required
from webapp.i18n import language
from webapp.notices import describe, target_url
from webapp.trade_rules import role_of

bp = Blueprint("notifications", __name__)

PAGE_SIZE = 30
MAX_EMAIL = 254
#: A plain address: one @, a dot in the domain, no spaces, quotes or line breaks (which would
#: let an address add headers to the e-mail).
EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


# ---------------------------------------------------------------------------- queries


# The header's statements, run on every page a person sees signed in: built once, since
# building a statement costs more than SQLite's answer.


def _newest(column: Any, owner: Any) -> Any:
    return select(func.max(column)).where(owner == bindparam("trade_id")).scalar_subquery()


TRADE_VERSION = select(
    _newest(TradeEvent.id, TradeEvent.trade_id),
    select(func.count(TradeEvent.id))
    .where(TradeEvent.trade_id == bindparam("trade_id"))
    .scalar_subquery(),
    _newest(Message.id, Message.trade_id),
    _newest(EvidenceFile.id, EvidenceFile.trade_id),
    _newest(Rating.id, Rating.trade_id),
    Trade.status,
    Trade.last_event_block,
).where(Trade.id == bindparam("trade_id"))


def unread_count(session: Session, address: str) -> int:
    """Unread notifications of ``address``: one indexed count."""
    return int(session.scalar(header.UNREAD_NOTIFICATIONS, {"address": address}) or 0)


def trade_version(session: Session, trade_id: int) -> str:
    """Changes whenever what the trade page shows changes: its events (also when a
    reorganisation removes some), messages, evidence files and ratings."""

    row = session.execute(TRADE_VERSION, {"trade_id": trade_id}).one_or_none()
    text = "|".join(str(part) for part in (row or ("gone",)))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _visible_trade(session: Session, raw: str | None, address: str) -> Trade | None:
    """The trade ``raw`` names if ``address`` takes part in it; None otherwise (also for a
    trade that does not exist: the answer is the same)."""
    if not raw or not raw.isdigit() or len(raw) > 12:
        return None
    trade = session.get(Trade, int(raw))
    if trade is None or role_of(trade, address) is None:
        return None
    return trade


@bp.app_context_processor
def header_notifications() -> dict[str, Any]:
    """``notifications_unread`` for the bell on every page, and on a trade page its version
    (``live_trade``) for live.js. 0 when signed out or the database is down."""
    empty: dict[str, Any] = {"notifications_unread": 0, "live_trade": None}
    if g.get("database_down"):
        return empty
    try:
        address = current_address()
        if address is None:
            return empty
        session = db.session()
        live = None
        if request.endpoint == "trades.show":
            trade = _visible_trade(
                session, str((request.view_args or {}).get("trade_pk", "")), address
            )
            if trade is not None:
                live = {"id": trade.id, "version": trade_version(session, trade.id)}
        user = current_user()
        unread = header.figures(session, address, user.id if user else None).unread_notifications
        return {"notifications_unread": unread, "live_trade": live}
    except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError):
        g.database_down = True
        return empty


# ---------------------------------------------------------------------------- pages


def _page() -> int:
    raw = request.args.get("page", "1")
    return int(raw) if raw.isdigit() and 0 < int(raw) < 10**6 else 1


@bp.get("/notifications")
@login_required
def index() -> str:
    address = current_address() or ""
    session = db.session()
    page = _page()
    rows = list(
        session.scalars(
            select(Notification)
            .where(Notification.recipient == address)
            .order_by(Notification.id.desc())
            .offset((page - 1) * PAGE_SIZE)
            .limit(PAGE_SIZE + 1)
        )
    )
    if not rows and page > 1:
        return redirect(url_for("notifications.index"))  # type: ignore[return-value]
    shown = rows[:PAGE_SIZE]
    items = [(n, describe(n.kind, dict(n.params or {}))) for n in shown]
    return render_template(
        "notifications/index.html",
        items=items,
        page=page,
        has_next=len(rows) > PAGE_SIZE,
        newest=session.scalar(
            select(func.max(Notification.id)).where(Notification.recipient == address)
        ),
        unread=unread_count(session, address),
    )


@bp.get("/notifications/<int:notification_id>")
@login_required
def open_one(notification_id: int) -> Any:
    """Marks one notification read and goes where it leads (only one's own: else 404)."""
    session = db.session()
    notification = session.get(Notification, notification_id)
    if notification is None or notification.recipient != current_address():
        abort(404, _("There is no such notification."))
    if notification.read_at is None:
        notification.read_at = datetime.now(UTC)
        session.commit()
    return redirect(target_url(notification))


@bp.post("/notifications/read")
@login_required
def mark_all_read() -> Any:
    """Marks read everything up to the newest notification the page showed (``upto``): one
    that arrived after the page was drawn stays unread."""
    address = current_address() or ""
    raw = request.form.get("upto", "")
    query = update(Notification).where(
        Notification.recipient == address, Notification.read_at.is_(None)
    )
    if raw:
        if not raw.isdigit() or len(raw) > 12:
            flash(_("That request was not understood; nothing was changed."), "error")
            return redirect(url_for("notifications.index"))
        query = query.where(Notification.id <= int(raw))
    session = db.session()
    marked = session.execute(query.values(read_at=datetime.now(UTC)))
    session.commit()
    if getattr(marked, "rowcount", 0):
        flash(_("All notifications are marked as read."), "success")
    return redirect(url_for("notifications.index"))


@bp.get("/notifications/poll")
@login_required
def poll() -> Any:
    """``{"unread": n}``, and with ``?trade=<id>&v=<version>`` also ``"trade": {"id",
    "version", "changed"}`` when the signed-in person takes part in that trade (else 404)."""
    address = current_address() or ""
    session = db.session()
    body: dict[str, Any] = {"unread": unread_count(session, address)}
    if "trade" in request.args:
        trade = _visible_trade(session, request.args.get("trade"), address)
        if trade is None:
            return jsonify(error=_("There is no such trade."), **body), 404
        version = trade_version(session, trade.id)
        seen = request.args.get("v", "")
        body["trade"] = {
            "id": trade.id,
            "version": version,
            "changed": bool(seen) and seen != version,
        }
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response


# ---------------------------------------------------------------------------- settings


def _settings_error(email: str, enabled: bool) -> str | None:
    if len(email) > MAX_EMAIL:
        return _("An e-mail address can be at most %(num)d characters.", num=MAX_EMAIL)
    if email and not EMAIL.match(email):
        return _(
            "“%(email)s” is not an e-mail address. Write it like name@example.kz.", email=email
        )
    if enabled and not email:
        return _("Give an e-mail address to get e-mails.")
    return None


@bp.route("/notifications/settings", methods=["GET", "POST"])
@login_required
def settings() -> Any:
    address = current_address() or ""
    session = db.session()
    row = session.get(NotificationSettings, address)
    mail_on = bool(current_app.config.get("SMTP_HOST"))
    if request.method == "GET":
        return render_template(
            "notifications/settings.html",
            email=row.email if row else "",
            enabled=bool(row and row.email_enabled),
            error=None,
            mail_on=mail_on,
        )
    raw = request.form.get("email", "")
    email = raw.strip() if isinstance(raw, str) else ""
    enabled = request.form.get("email_enabled") == "1"
    error = _settings_error(email, enabled)
    if error:
        page = render_template(
            "notifications/settings.html",
            email=email[:400],
            enabled=enabled,
            error=error,
            mail_on=mail_on,
        )
        return page, 400
    if row is None:
        row = NotificationSettings(address=address)
        session.add(row)
    row.email = email or None
    row.email_enabled = enabled and bool(email)
    row.locale = language()
    try:
        session.commit()
    except sqlalchemy.exc.IntegrityError:  # the same person's other tab saved first
        session.rollback()
        row = session.get(NotificationSettings, address)
        assert row is not None
        row.email, row.email_enabled, row.locale = (
            email or None,
            enabled and bool(email),
            language(),
        )
        session.commit()
    flash(_("Your notification settings are saved."), "success")
    return redirect(url_for("notifications.settings"))
