"""The notifier: tells each person what happened in their trades and what is due.

It reads what the indexer and the web app wrote (new contract events by id, new trade messages,
new messages before buying, open trades with a deadline coming) and writes
:class:`~escrow.db.models.Notification` rows, one per person and key (unique in the database),
then queues e-mails for the people who asked for them (``webapp/mailer.py``) and sends the due
ones. Only the kind and its parameters are stored; the text is written when it is read, in the
reader's language and time zone (:func:`describe`).

Run it beside the indexer: ``python -m webapp.notify`` (``--once`` for one pass). The tests
call :func:`run_once` directly.

Safe to run again and twice at once: every row is inserted with "on conflict do nothing" on its
unique key, so a pass that repeats work (a restart, a second process, the look-back below)
creates nothing new. Sources are read by id from a cursor kept in ``notifier_cursors``, with a
look-back of a few hundred ids: SQLite gives a deleted row's id to the next row, so events that
replace the ones a reorganisation removed can get ids at or below the cursor; on PostgreSQL a
message committed late can have a lower id than one already read.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session, aliased

from escrow.db.models import (
    Conversation,
    ConversationMessage,
    Listing,
    Message,
    Notification,
    NotifierCursor,
    Trade,
    TradeEvent,
    TradeStatus,
    User,
)
from webapp import mailer
from webapp.notices import insert_ignoring
from webapp.trade_rules import DISPUTE_STATEMENT_MARK, delivery_end, inspection_end
from webapp.views import as_utc

log = logging.getLogger("escrow.notify")

#: Reminders go this many hours before a deadline (only the nearest one that is due: a trade
#: first seen 20 hours before its deadline gets the 24-hour reminder, never the 72-hour one).
REMINDER_HOURS = (72, 24, 1)
#: Ids read again below each cursor (see the module's docstring).
LOOKBACK = {"events": 500, "messages": 100, "chat": 100}
#: Nothing older than this becomes a notification (a first run on an old database).
MAX_AGE = timedelta(days=7)
#: Rows inserted per statement.
BATCH = 200
DEFAULT_INTERVAL = 5.0
OPEN = (TradeStatus.FUNDED.value, TradeStatus.SHIPPED.value, TradeStatus.DISPUTED.value)


@dataclass(frozen=True)
class Draft:
    """A notification to create (unless it exists)."""

    recipient: str
    key: str
    kind: str
    params: dict[str, Any]
    trade_id: int | None = None
    conversation_id: int | None = None


# ---------------------------------------------------------------------------- one pass


def run_once(session: Session, now: datetime | None = None, *, mail: bool = True) -> int:
    """One pass: creates the notifications due at ``now`` (UTC; default: the clock) and
    queues their e-mails; commits. Returns how many notifications it created."""
    now = as_utc(now) or datetime.now(UTC)
    drafts: list[Draft] = []
    cursors: dict[str, int] = {}
    for name, source in (("events", _from_events), ("messages", _from_messages)):
        found, cursors[name] = source(session, _cursor(session, name), now)
        drafts += found
    found, cursors["chat"] = _from_chat(session, _cursor(session, "chat"), now)
    drafts += found
    drafts += _reminders(session, now)
    created = insert_new(session, drafts, now)
    for name, last in cursors.items():
        _set_cursor(session, name, last)
    if mail:
        mailer.queue(session, created, now)
    session.commit()
    return len(created)


def insert_new(session: Session, drafts: list[Draft], now: datetime) -> list[Draft]:
    """Inserts the drafts not yet stored (unique on recipient and key); returns those."""
    unique = {(d.recipient, d.key): d for d in drafts}
    if not unique:
        return []
    existing: set[tuple[str, str]] = set()
    keys = sorted({key for _recipient, key in unique})
    for start in range(0, len(keys), BATCH):
        existing.update(
            (str(r), str(k))
            for r, k in session.execute(
                select(Notification.recipient, Notification.key).where(
                    Notification.key.in_(keys[start : start + BATCH])
                )
            )
        )
    new = [d for pair, d in unique.items() if pair not in existing]
    rows = [
        {
            "recipient": d.recipient,
            "key": d.key,
            "kind": d.kind,
            "params": d.params,
            "trade_id": d.trade_id,
            "conversation_id": d.conversation_id,
            "created_at": now,
        }
        for d in new
    ]
    for start in range(0, len(rows), BATCH):
        session.execute(
            insert_ignoring(session, Notification, ["recipient", "key"]).values(
                rows[start : start + BATCH]
            )
        )
    return new


def _cursor(session: Session, name: str) -> int:
    value = session.scalar(select(NotifierCursor.last_id).where(NotifierCursor.name == name))
    return int(value or 0)


def _set_cursor(session: Session, name: str, last: int) -> None:
    """Stores a cursor that moved (an idle pass writes nothing: no lock on SQLite)."""
    row = session.get(NotifierCursor, name)
    if row is None:
        session.execute(
            insert_ignoring(session, NotifierCursor, ["name"]).values(name=name, last_id=last)
        )
    elif row.last_id != last:
        row.last_id = last


def _title(trade: Trade, listing_title: str | None) -> dict[str, Any]:
    return {"title": listing_title or "", "trade": trade.id}


# ---------------------------------------------------------------------------- contract events


def _from_events(session: Session, cursor: int, now: datetime) -> tuple[list[Draft], int]:
    rows = session.execute(
        select(TradeEvent, Trade, Listing.title)
        .join(Trade, TradeEvent.trade_id == Trade.id)
        .outerjoin(Listing, Trade.listing_id == Listing.id)
        .where(TradeEvent.id > max(0, cursor - LOOKBACK["events"]))
        .order_by(TradeEvent.id)
    ).all()
    # The cursor never goes back: a reorganisation that deleted the newest events leaves it.
    last = max([cursor, *(int(event.id) for event, _t, _l in rows)])
    drafts: list[Draft] = []
    oldest = now - MAX_AGE
    for event, trade, title in rows:
        happened = as_utc(event.block_time)
        if happened is not None and happened < oldest:
            continue
        key = f"ev:{event.chain_id}:{event.tx_hash}:{event.log_index}"
        base = _title(trade, title)
        for recipient, kind, params in event_notices(event.event, dict(event.args or {}), trade):
            drafts.append(Draft(recipient, key, kind, {**base, **params}, trade_id=trade.id))
    return drafts, last


def _arg(args: dict[str, Any], *names: str) -> Any:
    for name in names:
        if name in args:
            return args[name]
    return None


def event_notices(
    name: str, args: dict[str, Any], trade: Trade
) -> list[tuple[str, str, dict[str, Any]]]:
    """(recipient, kind, parameters) for each person a contract event concerns: the other
    party, never the one who acted, and never anyone outside the trade."""
    buyer, seller, arbitrator = trade.buyer, trade.seller, trade.arbitrator
    out: list[tuple[str, str, dict[str, Any]]] = []
    if name == "TradeFunded":
        ship_by = as_utc(trade.ship_by)
        out += [(seller, "sold", {"ship_by": ship_by.isoformat() if ship_by else None})]
        out.append((buyer, "paid", {}))
    elif name == "TradeShipped":
        out.append((buyer, "shipped", {}))
    elif name == "TradeReceived":
        out.append((seller, "delivered", {}))
    elif name == "InspectionExtensionRequested":
        days = int(_arg(args, "extraDays", "extra_days") or 0)
        out.append((seller, "extension_requested", {"days": days}))
    elif name == "InspectionExtended":
        days = int(_arg(args, "extraDays", "extra_days") or 0)
        out.append((buyer, "extension_granted", {"days": days}))
    elif name == "TradeReleased":
        by_buyer = bool(_arg(args, "byBuyer", "by_buyer"))
        out.append((seller, "paid_out", {"by_buyer": by_buyer}))
        if not by_buyer:
            out.append((buyer, "released", {}))
    elif name == "TradeRefunded":
        after = bool(_arg(args, "afterDeadline", "after_deadline"))
        out.append((buyer, "refunded", {"after_deadline": after}))
        if after:
            out.append((seller, "refunded", {"after_deadline": after}))
    elif name == "SplitProposed":
        proposer = str(_arg(args, "proposer") or "").lower()
        bps = int(_arg(args, "buyerBps", "buyer_bps") or 0)
        other = seller if proposer == buyer else buyer if proposer == seller else None
        if other is not None:
            out.append((other, "split_proposed", {"buyer_bps": bps}))
    elif name == "TradeSettled":
        bps = int(_arg(args, "buyerBps", "buyer_bps") or 0)
        out += [(buyer, "settled", {"buyer_bps": bps}), (seller, "settled", {"buyer_bps": bps})]
    elif name == "DisputeOpened":
        opener = str(_arg(args, "openedBy", "opened_by") or "").lower()
        out += [
            (who, "dispute_opened", {"by": "buyer" if opener == buyer else "seller"})
            for who in (buyer, seller, arbitrator)
            if who != opener
        ]
    elif name == "EvidenceSubmitted":
        by = str(_arg(args, "submittedBy", "submitted_by") or "").lower()
        role = {buyer: "buyer", seller: "seller", arbitrator: "arbitrator"}.get(by, "")
        out += [(who, "evidence", {"by": role}) for who in (buyer, seller, arbitrator) if who != by]
    elif name == "DisputeResolved":
        params = {
            "buyer_bps": int(_arg(args, "buyerBps", "buyer_bps") or 0),
            "by_timeout": bool(_arg(args, "byTimeout", "by_timeout")),
        }
        out += [(buyer, "ruling", params), (seller, "ruling", params)]
        if params["by_timeout"]:
            out.append((arbitrator, "ruling", params))
    return [(who.lower(), kind, params) for who, kind, params in out if who]


# ---------------------------------------------------------------------------- messages


def _from_messages(session: Session, cursor: int, now: datetime) -> tuple[list[Draft], int]:
    rows = session.execute(
        select(Message, Trade, Listing.title)
        .join(Trade, Message.trade_id == Trade.id)
        .outerjoin(Listing, Trade.listing_id == Listing.id)
        .where(Message.id > max(0, cursor - LOOKBACK["messages"]))
        .order_by(Message.id)
    ).all()
    last = max([cursor, *(int(message.id) for message, _t, _l in rows)])
    drafts: list[Draft] = []
    for message, trade, title in rows:
        created = as_utc(message.created_at)
        # The opener's statement arrives with the dispute, which has its own notification.
        if (created and created < now - MAX_AGE) or message.body.startswith(DISPUTE_STATEMENT_MARK):
            continue
        sender = message.sender.lower()
        roles = {trade.buyer: "buyer", trade.seller: "seller", trade.arbitrator: "arbitrator"}
        readers = [trade.buyer, trade.seller]
        if trade.disputed_at is not None or trade.status == TradeStatus.DISPUTED.value:
            readers.append(trade.arbitrator)
        params = {
            **_title(trade, title),
            "by": roles.get(sender, ""),
            "file": message.evidence_file_id is not None,
        }
        drafts += [
            Draft(who, f"msg:{message.id}", "message", params, trade_id=trade.id)
            for who in readers
            if who != sender
        ]
    return drafts, last


def _from_chat(session: Session, cursor: int, now: datetime) -> tuple[list[Draft], int]:
    buyer, seller = aliased(User), aliased(User)
    rows = session.execute(
        select(ConversationMessage, Conversation, buyer.address, seller.address)
        .join(Conversation, ConversationMessage.conversation_id == Conversation.id)
        .join(buyer, Conversation.buyer_id == buyer.id)
        .join(seller, Conversation.seller_id == seller.id)
        .where(ConversationMessage.id > max(0, cursor - LOOKBACK["chat"]))
        .order_by(ConversationMessage.id)
    ).all()
    last = max([cursor, *(int(row[0].id) for row in rows)])
    drafts: list[Draft] = []
    for message, conversation, buyer_address, seller_address in rows:
        created = as_utc(message.created_at)
        if created and created < now - MAX_AGE:
            continue
        from_buyer = message.sender_id == conversation.buyer_id
        drafts.append(
            Draft(
                str(seller_address if from_buyer else buyer_address).lower(),
                f"chat:{message.id}",
                "chat",
                {"title": conversation.listing_title, "by": "buyer" if from_buyer else "seller"},
                conversation_id=conversation.id,
            )
        )
    return drafts, last


# ---------------------------------------------------------------------------- reminders


def trade_deadlines(trade: Trade) -> list[tuple[str, str, datetime]]:
    """(deadline kind, who can act on it, when) for the trade's current status."""
    out: list[tuple[str, str, datetime]] = []
    if trade.status == TradeStatus.FUNDED.value and (ship_by := as_utc(trade.ship_by)):
        out.append(("ship_by", trade.seller, ship_by))
    if trade.status == TradeStatus.SHIPPED.value:
        window_end = delivery_end(trade)
        if window_end is not None and trade.received_at is None:
            out.append(("delivery_by", trade.seller, window_end))
        if (end := inspection_end(trade)) is not None:
            out.append(("inspection_end", trade.buyer, end))
    if trade.status == TradeStatus.DISPUTED.value:
        ruling = as_utc(trade.ruling_deadline or trade.deadline)
        if ruling is not None:
            out.append(("ruling_by", trade.arbitrator, ruling))
    return out


def reminder_step(deadline: datetime, now: datetime, since: datetime | None = None) -> int | None:
    """The nearest reminder (hours before ``deadline``) due at ``now``; None before the first
    one or once the deadline has passed. A reminder whose moment is not after ``since`` (the
    trade's payment) is not one: a seller paid with exactly 72 hours to ship learns the
    ship-by time from the sale itself, not from a "72 hours left" at the same moment."""
    if now >= deadline:
        return None
    due = [
        hours
        for hours in REMINDER_HOURS
        if now >= deadline - timedelta(hours=hours)
        and (since is None or deadline - timedelta(hours=hours) > since)
    ]
    return min(due) if due else None


def _reminders(session: Session, now: datetime) -> list[Draft]:
    horizon = now + timedelta(hours=max(REMINDER_HOURS))
    rows = session.execute(
        select(Trade, Listing.title)
        .outerjoin(Listing, Trade.listing_id == Listing.id)
        .where(
            or_(
                and_(
                    Trade.status == TradeStatus.FUNDED.value,
                    Trade.ship_by <= horizon,
                    Trade.ship_by > now,
                ),
                # Shipped: the delivery window and the inspection end (computed below).
                Trade.status == TradeStatus.SHIPPED.value,
                and_(
                    Trade.status == TradeStatus.DISPUTED.value,
                    func.coalesce(Trade.ruling_deadline, Trade.deadline) <= horizon,
                ),
            )
        )
    ).all()
    drafts: list[Draft] = []
    for trade, title in rows:
        for kind, who, deadline in trade_deadlines(trade):
            # The ship-by clock starts with the payment; the others start later, when the
            # trade was shipped or disputed.
            since = as_utc(trade.funded_at) if kind == "ship_by" else None
            hours = reminder_step(deadline, now, since)
            if hours is None or not who:
                continue
            stamp = int(deadline.timestamp())
            drafts.append(
                Draft(
                    who.lower(),
                    f"rem:{trade.id}:{kind}:{stamp}:{hours}",
                    "remind_" + kind,
                    {**_title(trade, title), "deadline": deadline.isoformat(), "hours": hours},
                    trade_id=trade.id,
                )
            )
    return drafts


# ---------------------------------------------------------------------------- the process


def _passes(app: Any, interval: float, stop: threading.Event, once: bool) -> int:
    from escrow.db.engine import make_engine

    engine = make_engine(app.config["DATABASE_URL"])
    smtp = mailer.SmtpSettings.from_config(app.config)
    try:
        while True:
            now = datetime.now(UTC)
            try:
                with Session(engine) as session:
                    created = run_once(session, now, mail=smtp is not None)
                sent = mailer.send_due(app, engine, smtp, now) if smtp is not None else 0
                if created or sent:
                    log.info("%d notifications, %d e-mails sent", created, sent)
            except Exception:
                # A database that is busy or down, a reorganisation mid-read: the next pass
                # starts from the stored cursors and the unique keys keep it idempotent.
                log.exception("notifier pass failed; trying again in %.1f s", interval)
                if once:
                    return 1
            if once or stop.wait(interval):
                return 0
    finally:
        engine.dispose()


def main(argv: Iterable[str] | None = None) -> int:
    from webapp import create_app

    parser = argparse.ArgumentParser(prog="python -m webapp.notify", description=__doc__)
    parser.add_argument("--once", action="store_true", help="one pass, then exit")
    parser.add_argument(
        "--interval", type=float, default=None, help="seconds between passes (default: setting)"
    )
    args = parser.parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s notify %(message)s")
    app = create_app()
    interval = args.interval or float(app.config.get("NOTIFY_INTERVAL") or DEFAULT_INTERVAL)
    stop = threading.Event()

    def ask_to_stop(signum: int, _frame: Any) -> None:
        log.info("signal %d: stopping after this pass", signum)
        stop.set()

    signal.signal(signal.SIGTERM, ask_to_stop)
    signal.signal(signal.SIGINT, ask_to_stop)
    with app.app_context():
        return _passes(app, max(0.1, interval), stop, args.once)


if __name__ == "__main__":
    sys.exit(main())
