"""Trade rules shared by the trades, disputes and arbitration blueprints.

Who may take which action on a trade and when, the trade's terms and currency, loading a
trade for its participants, and the dispute statement kept until the wallet sends the
dispute. Blueprints import from here and never from each other.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, cast

from eth_utils import to_checksum_address
from flask import abort, current_app, request, url_for
from flask_babel import LazyString, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, select
from sqlalchemy.orm import Session
from werkzeug.routing import BuildError

from escrow.client import EscrowClient, Terms
from escrow.db.models import Message, PendingStatement, Trade, TradeStatus
from escrow.transactions import PreparedCall
from webapp import db
from webapp.auth import current_address
from webapp.chain import gateway
from webapp.views import as_utc

DAY = 24 * 3600
SHIP_WITHIN_SECONDS = 5 * DAY
#: The inspection period of new trades (the v2 contract asks for at least one day).
INSPECTION_SECONDS = 3 * DAY
MIN_INSPECTION_SECONDS = DAY
#: The days a buyer may ask to add to the inspection, once per trade (contract v2).
EXTENSION_DAYS = range(1, 8)
BPS = 10_000
OPEN_STATUSES = (TradeStatus.FUNDED.value, TradeStatus.SHIPPED.value, TradeStatus.DISPUTED.value)
STATUS_FILTERS = {
    "open": OPEN_STATUSES,
    "finished": tuple(s.value for s in TradeStatus if s.is_final),
    **{s.value.lower(): (s.value,) for s in TradeStatus if s != TradeStatus.NONE},
}
#: What people read for a trade's status (the database keeps the English value).
STATUS_WORDS: dict[str, LazyString] = {
    TradeStatus.FUNDED.value: _l("Funded"),
    TradeStatus.SHIPPED.value: _l("Shipped"),
    TradeStatus.DISPUTED.value: _l("Disputed"),
    TradeStatus.RELEASED.value: _l("Released"),
    TradeStatus.REFUNDED.value: _l("Refunded"),
    TradeStatus.SETTLED.value: _l("Settled"),
    TradeStatus.RESOLVED.value: _l("Resolved"),
}
#: The choices of the status filter of the trades page.
STATUS_FILTER_WORDS: dict[str, LazyString] = {
    "open": _l("Open"),
    "finished": _l("Finished"),
    **{value.lower(): word for value, word in STATUS_WORDS.items()},
}
#: A participant's role, as a heading or choice ("Buyer") and inside a sentence ("buyer").
ROLE_TITLES: dict[str, LazyString] = {
    "buyer": _l("Buyer"),
    "seller": _l("Seller"),
    "arbitrator": _l("Arbitrator"),
}
ROLE_WORDS: dict[str, LazyString] = {
    "buyer": _l("buyer"),
    "seller": _l("seller"),
    "arbitrator": _l("arbitrator"),
}
#: Marks the opener's statement among a trade's messages (the Dispute row is the indexer's).
DISPUTE_STATEMENT_MARK = "[Dispute statement] "


# ------------------------------------------------------------------ who may do what, when


@dataclass(frozen=True)
class Action:
    name: str
    #: What people read (label, explanation, confirm) is translated when it is shown.
    label: str | LazyString
    #: Who may ever take it: 'buyer', 'seller' or 'anyone' (any participant signed in).
    roles: frozenset[str]
    explanation: str | LazyString
    danger: bool = False
    confirm: str | LazyString | None = None


ACTIONS: dict[str, Action] = {
    a.name: a
    for a in (
        Action(
            "ship",
            _l("Mark as shipped"),
            frozenset({"seller"}),
            _l("Starts the buyer's inspection period."),
        ),
        Action(
            "confirm",
            _l("Confirm receipt"),
            frozenset({"buyer"}),
            _l("Releases the money to the seller now."),
            confirm=_l("Release the money to the seller? This cannot be undone."),
        ),
        Action(
            "release",
            _l("Release after inspection"),
            frozenset({"anyone"}),
            _l("The inspection period is over; the money goes to the seller."),
        ),
        Action(
            "refund",
            _l("Refund after missed deadline"),
            frozenset({"anyone"}),
            _l("The seller did not ship in time; the buyer gets the money back in full."),
        ),
        Action(
            "seller_refund",
            _l("Refund the buyer"),
            frozenset({"seller"}),
            _l("Gives the buyer the whole amount back."),
            danger=True,
            confirm=_l("Refund the buyer in full? This cannot be undone."),
        ),
        Action(
            "propose_split",
            _l("Propose a split"),
            frozenset({"buyer", "seller"}),
            _l("Offer to divide the money; the other party can accept it."),
        ),
        Action(
            "accept_split",
            _l("Accept the proposed split"),
            frozenset({"buyer", "seller"}),
            _l("Pays out the split the other party proposed."),
            confirm=_l("Accept this split? The money is paid out at once."),
        ),
        Action(
            "dispute",
            _l("Open a dispute"),
            frozenset({"buyer", "seller"}),
            _l("The arbitrator will decide how the money is divided."),
            danger=True,
        ),
        Action(
            "received",
            _l("I received the item"),
            frozenset({"buyer"}),
            _l("Starts your inspection period now instead of when the delivery time is over."),
        ),
        Action(
            "request_extension",
            _l("Ask for more time to inspect"),
            frozenset({"buyer"}),
            _l("You can ask once for 1 to 7 more days; the seller decides whether to give them."),
        ),
        Action(
            "grant_extension",
            _l("Give more days to inspect"),
            frozenset({"seller"}),
            _l("The buyer asked for more time to inspect the item; the inspection ends later."),
        ),
        Action(
            "cancel_split",
            _l("Withdraw my offer"),
            frozenset({"buyer", "seller"}),
            _l("Takes back your split offer; the other party can no longer accept it."),
            confirm=_l("Withdraw your split offer? The other party can no longer accept it."),
        ),
        Action(
            "resolve",
            _l("Resolve after ruling timeout"),
            frozenset({"anyone"}),
            _l(
                "The arbitrator did not rule in time: the money is split 50/50 if the item was "
                "shipped, and refunded to the buyer if it was not."
            ),
        ),
    )
}


def status_word(status: str) -> str:
    """The trade status ``status`` (a database value such as 'Funded') in words."""
    word = STATUS_WORDS.get(status)
    return str(word) if word is not None else status


def role_word(role: str | None) -> str:
    """'buyer', 'seller' or 'arbitrator' in words, for the middle of a sentence."""
    word = ROLE_WORDS.get(role or "")
    return str(word) if word is not None else (role or "")


def role_of(trade: Trade, address: str | None) -> str | None:
    """'buyer', 'seller', 'arbitrator' or None."""
    if not address:
        return None
    address = address.lower()
    if address == trade.buyer:
        return "buyer"
    if address == trade.seller:
        return "seller"
    if address == trade.arbitrator:
        return "arbitrator"
    return None


def inspection_end(trade: Trade) -> datetime | None:
    """While Shipped: when the inspection ends (the latest end for a v2 trade whose buyer has
    not marked it received, plus a granted extension)."""
    return as_utc(trade.inspection_ends_at or trade.deadline)


def is_v2(trade: Trade) -> bool:
    """Terms with a delivery window: a trade of the version 2 escrow (NULL for v1)."""
    return trade.delivery_window is not None


def delivery_end(trade: Trade) -> datetime | None:
    """When the seller's delivery window ends (v2, once shipped): the inspection starts then
    at the latest."""
    shipped = as_utc(trade.shipped_at)
    if not is_v2(trade) or shipped is None:
        return None
    return shipped + timedelta(seconds=int(trade.delivery_window or 0))


def state_timeout(trade: Trade) -> datetime | None:
    """The timeout of the trade's current state: ship-by, inspection end or ruling deadline."""
    if trade.status == TradeStatus.FUNDED.value:
        return as_utc(trade.ship_by)
    if trade.status == TradeStatus.SHIPPED.value:
        return inspection_end(trade)
    if trade.status == TradeStatus.DISPUTED.value:
        return as_utc(trade.ruling_deadline or trade.deadline)
    return None


def split_offer_live(trade: Trade, now: datetime) -> bool:
    """An open split offer that can still be accepted. A v2 offer lapses at the timeout of
    the state it was made in; a v1 offer stays until the trade moves on."""
    if trade.status not in OPEN_STATUSES or trade.proposed_buyer_bps is None:
        return False
    if not trade.split_proposer:
        return False
    if not is_v2(trade):
        return True
    timeout = state_timeout(trade)
    return timeout is not None and now < timeout


def available_actions(trade: Trade, address: str | None, now: datetime) -> list[Action]:
    """Exactly the actions ``address`` may take on ``trade`` at chain time ``now``."""
    if not address:
        return []
    role = role_of(trade, address)
    status = trade.status
    is_open = status in OPEN_STATUSES
    party = role in ("buyer", "seller")
    v2 = is_v2(trade)
    ship_by = as_utc(trade.ship_by)
    assert ship_by is not None
    inspection_over = inspection_end(trade)
    ruling_deadline = as_utc(trade.ruling_deadline or trade.deadline)
    shipped = status == TradeStatus.SHIPPED.value
    inspecting = shipped and inspection_over is not None and now < inspection_over
    before_timeout = (status == TradeStatus.FUNDED.value and now < ship_by) or inspecting
    timeout = state_timeout(trade)
    # v2: proposing and accepting a split need the current state's timeout not to have passed.
    live = is_open and (not v2 or (timeout is not None and now < timeout))
    counter_side = {"buyer": "seller", "seller": "buyer"}.get(role or "")
    window_end = delivery_end(trade)
    names = []
    if role == "seller" and status == TradeStatus.FUNDED.value and now < ship_by:
        names.append("ship")
    if role == "buyer" and is_open:
        names.append("confirm")
    if (
        v2
        and role == "buyer"
        and shipped
        and trade.received_at is None
        and window_end is not None
        and now < window_end
    ):
        names.append("received")
    if v2 and role == "buyer" and inspecting and trade.extension_days is None:
        names.append("request_extension")
    if (
        v2
        and role == "seller"
        and inspecting
        and trade.extension_days is not None
        and not trade.extension_granted
    ):
        names.append("grant_extension")
    if shipped and inspection_over is not None and now >= inspection_over:
        names.append("release")
    if status == TradeStatus.FUNDED.value and now >= ship_by:
        names.append("refund")
    if role == "seller" and is_open:
        names.append("seller_refund")
    if party and live:
        names.append("propose_split")
    if party and trade.split_proposer == counter_side and split_offer_live(trade, now):
        names.append("accept_split")
    if v2 and party and trade.split_proposer == role and split_offer_live(trade, now):
        names.append("cancel_split")
    if party and before_timeout:
        names.append("dispute")
    if (
        status == TradeStatus.DISPUTED.value
        and ruling_deadline is not None
        and now >= ruling_deadline
    ):
        names.append("resolve")
    return [ACTIONS[n] for n in names]


# ------------------------------------------------------------------ shared helpers


def chain_now() -> datetime:
    """The latest block's time: deadlines on chain are measured by it, not by our clock."""
    return datetime.fromtimestamp(gateway().chain().latest_timestamp(), UTC)


#: ``app.extensions`` key of the chain time a page last read: (monotonic seconds, time).
PAGE_TIME_KEY = "escrow_page_chain_time"
#: ``app.extensions`` key of the lock held while a worker reads the chain time in the background.
PAGE_TIME_REFRESH_KEY = "escrow_page_chain_time_refresh"
#: A kept chain time older than the cache time, but not older than this many cache times, is
#: still shown while a background thread reads the new one.
PAGE_TIME_STALE_FACTOR = 5


def page_now() -> datetime:
    """Chain time for showing a page; wall-clock time if the node does not answer.

    Read from the node at most once per ``CHAIN_TIME_CACHE_MS`` (``ESCROW_CHAIN_TIME_CACHE_MS``,
    1,000 by default) in each worker: a busy page is viewed hundreds of times a second, and a
    node round trip costs more than the rest of the page's queries. Once the kept time is
    older than that, the next view starts one background read and is shown with the kept time
    (never older than ``PAGE_TIME_STALE_FACTOR`` cache times): no view waits for the node
    while the worker reads it often enough. A page's "due" buttons may then appear a second or
    two after the block that made them due; every action is checked against ``chain_now()``
    itself when it is sent.
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    ttl = app.config.get("CHAIN_TIME_CACHE_MS", 1000) / 1000
    now = time.monotonic()
    cached = app.extensions.get(PAGE_TIME_KEY)
    if ttl > 0 and cached is not None:
        age = now - cached[0]
        if age < ttl:
            return cast(datetime, cached[1])
        if age < ttl * PAGE_TIME_STALE_FACTOR:
            _refresh_page_time(app)
            return cast(datetime, cached[1])
    try:
        value = chain_now()
    except Exception:  # a page that only reads the database must not fail with the node
        return datetime.now(UTC)
    app.extensions[PAGE_TIME_KEY] = (now, value)
    return value


def _refresh_page_time(app: Any) -> None:
    """Reads the chain time in a background thread, unless one already does."""
    lock = app.extensions.setdefault(PAGE_TIME_REFRESH_KEY, threading.Lock())
    if not lock.acquire(blocking=False):
        return

    def read() -> None:
        try:
            with app.app_context():
                started = time.monotonic()
                value = chain_now()
            app.extensions[PAGE_TIME_KEY] = (started, value)
        except Exception:
            # Not kept: the next view asks the node itself, and shows wall-clock time if the
            # node still does not answer.
            app.extensions.pop(PAGE_TIME_KEY, None)
        finally:
            lock.release()

    threading.Thread(target=read, name="page-chain-time", daemon=True).start()


def terms_of(trade: Trade) -> Terms:
    """The on-chain terms, rebuilt from the trade's row."""
    ship_by = as_utc(trade.ship_by)
    assert ship_by is not None
    return Terms(
        buyer=to_checksum_address(trade.buyer),
        seller=to_checksum_address(trade.seller),
        arbitrator=to_checksum_address(trade.arbitrator),
        token=to_checksum_address(trade.token),
        amount=int(trade.amount),
        ship_by=int(ship_by.timestamp()),
        inspection_period=int(trade.inspection_period),
        arbitrator_fee_bps=int(trade.arbitrator_fee_bps),
        platform_fee_bps=int(trade.platform_fee_bps),
        delivery_window=None if trade.delivery_window is None else int(trade.delivery_window),
    )


def client_of(trade: Trade) -> EscrowClient:
    """The client of the escrow ``trade`` lives in (an older version for its old trades):
    every action on an existing trade goes there."""
    return gateway().client_for(trade.contract_address)


def prepare_for(trade: Trade, call: PreparedCall, sender: str) -> dict[str, Any]:
    """The unsigned transaction of ``call`` to the escrow of ``trade``."""
    return gateway().prepare(call, sender, client=client_of(trade))


def currency_of(trade: Trade) -> str:
    if int(trade.token, 16) == 0:
        return "ETH"
    return gateway().currency_of(trade.token)


def load_trade(trade_pk: int) -> tuple[Trade, str]:
    """The trade and the signed-in user's role in it; 404 unknown, 403 not a participant."""
    trade = db.session().get(Trade, trade_pk)
    if trade is None:
        abort(404)
    role = role_of(trade, current_address())
    if role is None:
        abort(403, _("Only the buyer, the seller and the arbitrator of this trade can see it."))
    return trade, role


def load_trade_for_anyone(trade_pk: int) -> tuple[Trade, str | None]:
    """The trade and the signed-in user's role in it (None for a visitor); 404 unknown.

    A visitor sees what the chain shows anyway (terms, status, timeline) and may send the
    timeouts anyone may send; the conversation and the evidence stay with the participants.
    """
    trade = db.session().get(Trade, trade_pk)
    if trade is None:
        abort(404)
    return trade, role_of(trade, current_address())


#: Actions the contract lets any address send once their time has come (permissionless), and
#: the trade status each one ends.
TIMEOUT_ACTIONS = {
    "release": TradeStatus.SHIPPED.value,
    "refund": TradeStatus.FUNDED.value,
    "resolve": TradeStatus.DISPUTED.value,
}


def timeout_due_at(trade: Trade, name: str) -> datetime | None:
    """When the timeout action ``name`` becomes possible on ``trade`` in its current status,
    None if it cannot happen in this status."""
    if TIMEOUT_ACTIONS.get(name) != trade.status:
        return None
    return state_timeout(trade)


def json_body() -> dict[str, Any]:
    payload = request.get_json(silent=True)
    return payload if isinstance(payload, dict) else {}


def percent_to_bps(value: Any) -> int:
    """'40' or '12.5' (% to the buyer) -> basis points; ValueError with a user message."""
    try:
        percent = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise ValueError(_("Enter the buyer's share as a percentage from 0 to 100.")) from None
    if not percent.is_finite() or percent < 0 or percent > 100:
        raise ValueError(_("Enter the buyer's share as a percentage from 0 to 100."))
    bps = percent * 100
    if bps != bps.to_integral_value():
        raise ValueError(_("The buyer's share can have at most two decimal places."))
    return int(bps)


def _waiting(trade: Trade, sender: str) -> tuple[Any, ...]:
    """The conditions of ``sender``'s statements on ``trade`` that were not published yet."""
    return (
        PendingStatement.trade_id == trade.id,
        PendingStatement.sender == sender,
        PendingStatement.used_at.is_(None),
    )


def _waiting_statement(session: Session, trade: Trade, sender: str) -> PendingStatement | None:
    return session.scalars(
        select(PendingStatement)
        .where(*_waiting(trade, sender))
        .order_by(PendingStatement.id.desc())
        .limit(1)
    ).first()


def sync_dispute_statement(session: Session, trade: Trade) -> bool:
    """Publishes the opener's statement once the indexer has seen their ``DisputeOpened``;
    whether it did now.

    The statement waits on the server (:class:`PendingStatement`) from the moment the party
    asks to open the dispute; it becomes the dispute's statement and a message only when the
    chain shows that this party opened the dispute, and only once.
    """
    dispute = trade.dispute
    if dispute is None or dispute.statement:
        return False
    pending = _waiting_statement(session, trade, dispute.opened_by)
    if pending is None:
        return False
    pending.used_at = datetime.now(UTC)
    dispute.statement = pending.body
    session.add(
        Message(
            trade_id=trade.id, sender=pending.sender, body=DISPUTE_STATEMENT_MARK + pending.body
        )
    )
    session.commit()
    return True


def keep_statement(session_db: Session, trade: Trade, sender: str, statement: str) -> None:
    """Keeps ``sender``'s statement on the server until their dispute is on chain (replacing
    one they wrote before that was never used)."""
    session_db.execute(delete(PendingStatement).where(*_waiting(trade, sender)))
    session_db.add(PendingStatement(trade_id=trade.id, sender=sender, body=statement))
    session_db.commit()


def note_statement_sent(session_db: Session, trade: Trade, sender: str, tx_hash: Any) -> bool:
    """The wallet sent the dispute: notes its hash; False if no statement is waiting."""
    pending = _waiting_statement(session_db, trade, sender)
    if pending is None:
        return False
    if isinstance(tx_hash, str) and len(tx_hash) == 66 and tx_hash.startswith("0x"):
        pending.tx_hash = tx_hash.lower()
        session_db.commit()
    sync_dispute_statement(session_db, trade)
    return True


def deadlines(trade: Trade) -> list[tuple[str, datetime]]:
    """The deadlines that matter in the trade's current status."""
    out: list[tuple[str, datetime]] = []
    ship_by = as_utc(trade.ship_by)
    if trade.status == TradeStatus.FUNDED.value and ship_by is not None:
        out.append((_("Seller must ship by"), ship_by))
    window_end = delivery_end(trade)
    if (
        trade.status == TradeStatus.SHIPPED.value
        and window_end is not None
        and trade.received_at is None
    ):
        out.append((_("Delivery promised by"), window_end))
    end = inspection_end(trade)
    if trade.status == TradeStatus.SHIPPED.value and end is not None:
        out.append((_("Inspection ends"), end))
    ruling = as_utc(trade.ruling_deadline or trade.deadline)
    if trade.status == TradeStatus.DISPUTED.value and ruling is not None:
        out.append((_("Arbitrator must rule by"), ruling))
    return out


def milestones(trade: Trade) -> list[tuple[str, datetime]]:
    """For the timeline of a shipped v2 trade: when delivery was promised by and when the
    inspection ends (or ended), including a receipt and a granted extension."""
    if trade.status != TradeStatus.SHIPPED.value:
        return []
    out: list[tuple[str, datetime]] = []
    window_end = delivery_end(trade)
    # Once the buyer has the item, the delivery window no longer decides anything.
    if window_end is not None and trade.received_at is None:
        out.append((_("Delivery window ends"), window_end))
    end = inspection_end(trade)
    if end is not None:
        if trade.extension_granted and trade.extension_days:
            label = ngettext(
                "Inspection ends (with %(num)d more day given by the seller)",
                "Inspection ends (with %(num)d more days given by the seller)",
                int(trade.extension_days),
            )
        else:
            label = _("Inspection ends")
        out.append((label, end))
    return sorted(out, key=lambda item: item[1])


def listing_url(listing_id: int | None) -> str | None:
    if listing_id is None:
        return None
    try:
        return url_for("listings.detail", listing_id=listing_id)
    except BuildError:  # the listings pages are not there (yet)
        return None
