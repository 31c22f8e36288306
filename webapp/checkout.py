"""Checkout: what a buyer is quoted, the hold that keeps the item for them, and its end.

A checkout is bound to what the page showed. The buy request carries the amount, the currency
and the listing version the buyer saw; anything else is refused with the current terms
(:class:`QuoteChanged`), and the page asks the buyer to confirm the new price.

Holds keep a single item for one buyer while they pay, and nobody can keep items locked:

* ``wallet``: while the wallet is open, at most :data:`WALLET_HOLD_SECONDS`. The page ends it
  at once when the wallet refuses, the tab closes or the buyer signs out.
* ``payment``: once the page reports a transaction hash that the node knows as this buyer's
  funding of this listing, for at most :data:`PAYMENT_HOLD_SECONDS`. It ends when the indexer
  sees the trade (``funded``), when the transaction fails, or when it is not mined in time.
* A buyer has one open hold at a time; a new checkout ends their previous wallet hold.
* A buyer who left :data:`ABANDON_LIMIT` checkouts unfinished within
  :data:`ABANDON_WINDOW_SECONDS` must wait before the next one.

An item on hold stays listed, shown as "on hold until HH:MM". While any hold of a listing is
open or one of its trades is open, its price and currency cannot change.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from eth_utils import to_checksum_address
from flask import current_app, g
from flask_babel import LazyString, lazy_ngettext, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from escrow.client import ETH
from escrow.db.models import (
    ArbitratorProfile,
    ArbitratorStats,
    CheckoutHold,
    HoldState,
    Listing,
    ListingStatus,
    Trade,
    User,
)
from escrow.errors import EscrowError
from webapp import db, trust
from webapp.auth import current_address, signed_out
from webapp.chain import gateway
from webapp.trade_rules import (
    DAY,
    INSPECTION_SECONDS,
    MIN_INSPECTION_SECONDS,
    OPEN_STATUSES,
    SHIP_WITHIN_SECONDS,
    page_now,
)
from webapp.views import as_utc, bps_percent, format_amount, short_address

#: A transaction hash as the wallet reports it.
TX_HASH = re.compile(r"^0x[0-9a-fA-F]{64}$")
WALLET_HOLD_SECONDS = 120
PAYMENT_HOLD_SECONDS = 600
ABANDON_LIMIT = 5
ABANDON_WINDOW_SECONDS = 30 * 60
#: End reasons that count as a checkout left unfinished.
ABANDONED = ("refused", "closed", "signed_out", "expired", "replaced")
OPEN_STATES = (HoldState.WALLET.value, HoldState.PAYMENT.value)
END_REASONS = frozenset({*ABANDONED, "failed", "funded"})
#: The delivery time a seller promises in a listing (days after shipping): the trade's
#: delivery window. The buyer agrees to it, so changing it makes a new listing version.
MIN_DELIVERY_DAYS = 1
MAX_DELIVERY_DAYS = 30
DEFAULT_DELIVERY_DAYS = 10


class CheckoutRefused(Exception):
    """The checkout cannot go on; ``status`` and the message are for the buyer (a lazy
    translation: it is put into words in the buyer's language when it is shown)."""

    def __init__(self, status: int, message: str | LazyString, **payload: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.payload = payload


class QuoteChanged(CheckoutRefused):
    """What the buyer saw is no longer what the listing asks; ``payload['terms']`` is current."""


def now_utc() -> datetime:
    return datetime.now(UTC)


def _setting(name: str, default: int) -> int:
    return int(current_app.config.get(name, default))


# ---------------------------------------------------------------------------- quotes


def delivery_days_of(listing: Listing) -> int:
    """The delivery days a listing promises, within what the market allows."""
    days = int(listing.delivery_days or DEFAULT_DELIVERY_DAYS)
    return min(max(days, MIN_DELIVERY_DAYS), MAX_DELIVERY_DAYS)


def ship_within_seconds() -> int:
    """How long after the payment the seller has to ship: the trade's ship-by is the payment
    block's time plus this."""
    return _setting("SHIP_WITHIN_SECONDS", SHIP_WITHIN_SECONDS)


def inspection_seconds() -> int:
    """The inspection period of new trades: the market's setting, never below the contract's
    minimum of one day."""
    return max(_setting("INSPECTION_SECONDS", INSPECTION_SECONDS), MIN_INSPECTION_SECONDS)


def delivery_window_of(listing: Listing) -> int:
    """The delivery window the seller promised in the listing, in seconds."""
    return delivery_days_of(listing) * DAY


def platform_fee_of(price: int, platform_fee_bps: int) -> int:
    """The platform fee the escrow takes from the seller's payout of ``price`` (as the contract
    computes it when the money is released)."""
    return price * platform_fee_bps // 10_000


def days_text(days: int) -> str:
    return ngettext("%(num)d day", "%(num)d days", days)


def listing_terms(listing: Listing) -> dict[str, Any]:
    """What a page shows a buyer and sends back with the buy request."""
    return {
        "listing": listing.id,
        "title": listing.title,
        "amount": str(int(listing.price)),
        "currency": listing.currency,
        "version": int(listing.version or 1),
        "amount_text": format_amount(int(listing.price), listing.currency),
        "delivery_days": delivery_days_of(listing),
    }


#: Seconds a platform fee read from the escrow is reused for listing pages (the buy request
#: reads it again, and the escrow refuses a fee above the one the buyer reviewed).
FEE_CACHE_SECONDS = 30


def current_platform_fee_bps() -> int | None:
    """The escrow's platform fee in basis points, None when the chain does not answer."""
    try:
        client = gateway().client()
        key = client.address.lower()
        fee_cache: dict[str, tuple[float, int]] = current_app.extensions.setdefault(
            "listing_platform_fee", {}
        )
        cached = fee_cache.get(key)
        if cached is not None and time.monotonic() - cached[0] < FEE_CACHE_SECONDS:
            return cached[1]
        bps = int(client.platform_fee()[1])
    except Exception:  # a listing page says "unknown" rather than failing with the node
        current_app.logger.info("platform fee unavailable", exc_info=True)
        return None
    fee_cache[key] = (time.monotonic(), bps)
    return bps


@dataclass(frozen=True)
class OfferTerms:
    """What a buyer of a listing agrees to, from the settings the buy request signs with."""

    ship_within: int  # seconds after the payment
    ship_by: datetime  # if paid now
    delivery_days: int
    inspection_seconds: int
    platform_fee_bps: int | None
    platform_fee: int | None  # smallest units, for the listing's price
    currency: str
    token: str | None  # None for ETH and for a currency this chain has no token for
    test_token: bool


def offer_terms(listing: Listing) -> OfferTerms:
    """The terms a purchase of ``listing`` would carry if the buyer paid now."""
    fee_bps = current_platform_fee_bps()
    token: str | None = None
    test_token = False
    if listing.currency != "ETH":
        try:
            address = gateway().token_of(listing.currency)
        except Exception:  # the currency is still named; its token is unknown without the chain
            address = None
        token = to_checksum_address(address) if address else None
        test_token = token is not None and gateway().is_dev_chain()
    return OfferTerms(
        ship_within=ship_within_seconds(),
        ship_by=page_now() + timedelta(seconds=ship_within_seconds()),
        delivery_days=delivery_days_of(listing),
        inspection_seconds=inspection_seconds(),
        platform_fee_bps=fee_bps,
        platform_fee=None if fee_bps is None else platform_fee_of(int(listing.price), fee_bps),
        currency=listing.currency,
        token=token,
        test_token=test_token,
    )


@dataclass(frozen=True)
class Quote:
    amount: int
    currency: str
    version: int
    #: The platform fee the buyer reviewed (None before the review): the most they accept.
    platform_fee_bps: int | None = None


def read_quote(body: dict[str, Any]) -> Quote | None:
    """The quote from the request body (``amount``, ``currency``, ``version``), or None."""
    raw = body.get("quote")
    source = raw if isinstance(raw, dict) else body
    amount, currency, version = (
        source.get("amount"),
        source.get("currency"),
        source.get("version"),
    )
    if amount is None and currency is None and version is None:
        return None
    try:
        amount_int = int(str(amount))
        version_int = int(str(version))
    except ValueError:
        raise CheckoutRefused(400, _l("The price on the page is malformed; reload it.")) from None
    if amount_int < 0 or amount_int >= 2**256 or not isinstance(currency, str):
        raise CheckoutRefused(400, _l("The price on the page is malformed; reload it."))
    fee = source.get("platform_fee_bps")
    fee_bps: int | None = None
    if fee is not None:
        text = str(fee).strip()
        if isinstance(fee, bool) or not text.isdigit() or len(text) > 5 or int(text) > 10_000:
            raise CheckoutRefused(400, _l("The fee on the page is malformed; reload it."))
        fee_bps = int(text)
    return Quote(amount_int, currency, version_int, fee_bps)


def check_quote(listing: Listing, quote: Quote | None) -> None:
    """Refuses (409 with the current terms) unless the buyer saw exactly the listing's terms."""
    terms = listing_terms(listing)
    if quote is None:
        raise QuoteChanged(
            409,
            _l("The page did not say which price you agreed to. Check the price and buy again."),
            terms=terms,
        )
    if (
        quote.amount != int(listing.price)
        or quote.currency != listing.currency
        or quote.version != int(listing.version or 1)
    ):
        message: LazyString
        if quote.amount == int(listing.price) and quote.currency == listing.currency:
            message = _l("The seller changed this listing since you opened it. Check it again.")
        else:
            message = _l(
                "The price changed from %(shown)s to %(price)s. Confirm the new price to buy.",
                shown=format_amount(quote.amount, quote.currency),
                price=terms["amount_text"],
            )
        raise QuoteChanged(409, message, terms=terms)


# ---------------------------------------------------------------------------- holds


def _open_clause(now: datetime) -> Any:
    return and_(CheckoutHold.state.in_(OPEN_STATES), CheckoutHold.expires_at > now)


def open_hold_of(session: Session, buyer: str, now: datetime | None = None) -> CheckoutHold | None:
    now = now or now_utc()
    return session.scalars(
        select(CheckoutHold)
        .where(CheckoutHold.buyer == buyer, _open_clause(now))
        .order_by(CheckoutHold.id.desc())
        .limit(1)
    ).first()


def listing_is_held(session: Session, listing_id: int, now: datetime | None = None) -> bool:
    now = now or now_utc()
    return (
        session.scalar(
            select(func.count(CheckoutHold.id)).where(
                CheckoutHold.listing_id == listing_id, _open_clause(now)
            )
        )
        or 0
    ) > 0


def terms_locked(session: Session, listing: Listing) -> str | None:
    """Why the listing's price and currency cannot change now, or None if they can."""
    if listing_is_held(session, listing.id):
        return _("A buyer is paying for this item right now.")
    open_trades = session.scalar(
        select(func.count(Trade.id)).where(
            Trade.listing_id == listing.id, Trade.status.in_(OPEN_STATUSES)
        )
    )
    if open_trades:
        return _("This item has an open trade.")
    return None


def abandoned_recently(session: Session, buyer: str, now: datetime) -> tuple[int, datetime | None]:
    """How many checkouts ``buyer`` left unfinished in the window, and when they may go on."""
    since = now - timedelta(seconds=_setting("ABANDON_WINDOW_SECONDS", ABANDON_WINDOW_SECONDS))
    ended_at = func.coalesce(CheckoutHold.ended_at, CheckoutHold.expires_at)
    rows = list(
        session.scalars(
            select(ended_at)
            .where(
                CheckoutHold.buyer == buyer,
                or_(
                    and_(
                        CheckoutHold.state == HoldState.ENDED.value,
                        CheckoutHold.end_reason.in_(ABANDONED),
                        CheckoutHold.ended_at > since,
                    ),
                    and_(
                        CheckoutHold.state.in_(OPEN_STATES),
                        CheckoutHold.expires_at <= now,
                        CheckoutHold.expires_at > since,
                    ),
                ),
            )
            .order_by(ended_at)
        )
    )
    limit = _setting("ABANDON_LIMIT", ABANDON_LIMIT)
    if len(rows) < limit:
        return len(rows), None
    oldest_counted = as_utc(rows[len(rows) - limit])
    assert oldest_counted is not None
    return len(rows), oldest_counted + timedelta(
        seconds=_setting("ABANDON_WINDOW_SECONDS", ABANDON_WINDOW_SECONDS)
    )


def _free_listing(session: Session, listing_id: int, buyer: str) -> None:
    session.execute(
        update(Listing)
        .where(Listing.id == listing_id, Listing.reserved_by == buyer)
        .values(reserved_by=None, reserved_until=None)
        .execution_options(synchronize_session=False)
    )


def end_hold(session: Session, hold: CheckoutHold, reason: str) -> bool:
    """Ends an open hold and frees its item (the caller commits); False if it had ended.

    A conditional UPDATE: the indexer may have ended it as 'funded' a moment ago, in another
    process, and that must not be overwritten.
    """
    assert reason in END_REASONS, reason
    now = now_utc()
    result = session.execute(
        update(CheckoutHold)
        .where(CheckoutHold.id == hold.id, CheckoutHold.state.in_(OPEN_STATES))
        .values(state=HoldState.ENDED.value, end_reason=reason, ended_at=now)
        .execution_options(synchronize_session=False)
    )
    session.expire(hold)
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    _free_listing(session, hold.listing_id, hold.buyer)
    return True


def start(
    session: Session,
    listing: Listing,
    buyer: str,
    *,
    token: str,
    arbitrator: str,
    quote: Quote | None,
    hold_id: Any = None,
) -> CheckoutHold:
    """Checks the quote and returns the buyer's hold of ``listing`` (reused or new).

    Raises :class:`CheckoutRefused` when the buyer cannot check out now.
    """
    check_quote(listing, quote)
    now = now_utc()
    current = open_hold_of(session, buyer, now)
    if current is not None and current.listing_id == listing.id:
        if hold_id is not None and str(hold_id) != str(current.id):
            raise CheckoutRefused(
                409, _l("This checkout was replaced by a newer one; start again.")
            )
        if current.state == HoldState.PAYMENT.value:
            raise CheckoutRefused(
                409,
                _l(
                    "Your payment for this item is being confirmed. Wait for it on your trades "
                    "page."
                ),
            )
        if current.arbitrator != arbitrator.lower() or current.token != token.lower():
            end_hold(session, current, "replaced")
            session.commit()
        else:
            return current
    elif hold_id is not None:
        raise CheckoutRefused(
            409,
            _l("Your hold on this item ended (it lasts two minutes). Start the purchase again."),
        )
    elif current is not None and current.state == HoldState.PAYMENT.value:
        held = session.get(Listing, current.listing_id)
        raise CheckoutRefused(
            409,
            _l(
                "Your payment for “%(title)s” is still being confirmed. You can buy again once "
                "it is.",
                title=held.title,
            )
            if held
            else _l(
                "Your payment for another item is still being confirmed. You can buy again once "
                "it is."
            ),
        )
    elif current is not None:
        end_hold(session, current, "replaced")
        session.commit()

    count, retry_at = abandoned_recently(session, buyer, now)
    if retry_at is not None:
        raise CheckoutRefused(
            429,
            lazy_ngettext(
                "You left %(num)d purchase unfinished in the last %(minutes)d minutes, so items "
                "are not held for you for a while. Try again later.",
                "You left %(num)d purchases unfinished in the last %(minutes)d minutes, so items "
                "are not held for you for a while. Try again later.",
                count,
                minutes=_setting("ABANDON_WINDOW_SECONDS", ABANDON_WINDOW_SECONDS) // 60,
            ),
            retry_at=retry_at.isoformat(),
        )

    expires = now + timedelta(seconds=_setting("WALLET_HOLD_SECONDS", WALLET_HOLD_SECONDS))
    if listing.quantity == 1 and not _reserve(session, listing, buyer, expires, now):
        session.rollback()
        other = session.get(Listing, listing.id)
        until = as_utc(other.reserved_until) if other is not None else None
        raise CheckoutRefused(
            409,
            _l(
                "Someone else is buying this item right now. If they do not pay, it is free "
                "again within a few minutes."
            ),
            held_until=until.isoformat() if until else None,
        )
    seller = session.get(User, listing.seller_id)
    assert seller is not None
    hold = CheckoutHold(
        listing_id=listing.id,
        buyer=buyer,
        seller=seller.address,
        token=token.lower(),
        amount=int(listing.price),
        currency=listing.currency,
        listing_version=int(listing.version or 1),
        arbitrator=arbitrator.lower(),
        state=HoldState.WALLET.value,
        created_at=now,
        expires_at=expires,
        listing_snapshot=snapshot_of(listing),
    )
    session.add(hold)
    session.commit()
    return hold


def _reserve(
    session: Session, listing: Listing, buyer: str, until: datetime, now: datetime
) -> bool:
    """Holds a single item for ``buyer``; only one buyer at a time can win this UPDATE."""
    result = session.execute(
        update(Listing)
        .where(
            Listing.id == listing.id,
            Listing.status.in_((ListingStatus.ACTIVE.value, ListingStatus.RESERVED.value)),
            or_(
                Listing.reserved_by.is_(None),
                Listing.reserved_until.is_(None),
                Listing.reserved_until <= now,
                Listing.reserved_by == buyer,
            ),
        )
        .values(status=ListingStatus.ACTIVE.value, reserved_by=buyer, reserved_until=until)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def hold_for(session: Session, hold_id: int, buyer: str) -> CheckoutHold | None:
    hold = session.get(CheckoutHold, hold_id)
    if hold is None or hold.buyer != buyer:
        return None
    return hold


def release(session: Session, hold: CheckoutHold, reason: str) -> bool:
    """The buyer let go (wallet refused, tab closed): ends a wallet hold. False if too late."""
    if hold.state != HoldState.WALLET.value:
        return False
    ended = end_hold(session, hold, reason)
    session.commit()
    return ended


def release_all(session: Session, buyer: str, reason: str = "signed_out") -> int:
    """Ends every wallet hold of ``buyer`` (sign-out); payments in flight keep theirs."""
    holds = list(
        session.scalars(
            select(CheckoutHold).where(
                CheckoutHold.buyer == buyer, CheckoutHold.state == HoldState.WALLET.value
            )
        )
    )
    for hold in holds:
        end_hold(session, hold, reason)
    session.commit()
    return len(holds)


def mark_paid(
    session: Session, hold: CheckoutHold, tx_hash: str, found: dict[str, Any] | None, escrow: str
) -> datetime:
    """Turns a wallet hold into a payment hold for ``tx_hash``; returns its end.

    ``found`` is the transaction as the node knows it (None while the node has not seen it):
    it must come from the buyer, go to the escrow and name this listing. A transaction the
    node does not know yet keeps the short hold; one that does not match is refused and the
    hold is not extended.
    """
    now = now_utc()
    if hold.state == HoldState.PAYMENT.value and hold.tx_hash == tx_hash:
        expires = as_utc(hold.expires_at)
        assert expires is not None
        return expires
    if hold.state == HoldState.ENDED.value and hold.end_reason == "funded":
        return now  # the indexer saw the payment before the page reported it
    if hold.state != HoldState.WALLET.value or (as_utc(hold.expires_at) or now) <= now:
        raise CheckoutRefused(409, _l("This hold has already ended."))
    if found is not None:
        listing = session.get(Listing, hold.listing_id)
        ref = (listing.ref[2:] if listing else "").lower()
        data = found.get("input") or found.get("data") or ""
        data_hex = (data.hex() if isinstance(data, bytes | bytearray) else str(data)).lower()
        if (
            str(found.get("from", "")).lower() != hold.buyer
            or str(found.get("to", "")).lower() != escrow.lower()
            or not ref
            or ref not in data_hex
        ):
            # The hold is not extended; it ends by itself when its two minutes are over.
            raise CheckoutRefused(400, _l("That transaction is not the payment for this item."))
        seconds = _setting("PAYMENT_HOLD_SECONDS", PAYMENT_HOLD_SECONDS)
    else:
        seconds = _setting("WALLET_HOLD_SECONDS", WALLET_HOLD_SECONDS)
    expires = now + timedelta(seconds=seconds)
    # Conditional: the indexer (another process) may end the hold as 'funded' at any moment.
    result = session.execute(
        update(CheckoutHold)
        .where(CheckoutHold.id == hold.id, CheckoutHold.state == HoldState.WALLET.value)
        .values(state=HoldState.PAYMENT.value, tx_hash=tx_hash, expires_at=expires)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        session.refresh(hold)
        if hold.state == HoldState.ENDED.value and hold.end_reason == "funded":
            return now
        raise CheckoutRefused(409, _l("This hold has already ended."))
    session.execute(
        update(Listing)
        .where(Listing.id == hold.listing_id, Listing.reserved_by == hold.buyer)
        .values(reserved_until=expires)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    session.expire(hold)
    return expires


def transaction_failed(session: Session, tx_hash: str) -> None:
    """A reported payment failed on chain: its hold ends and the item is free again."""
    for hold in session.scalars(
        select(CheckoutHold).where(
            CheckoutHold.tx_hash == tx_hash, CheckoutHold.state == HoldState.PAYMENT.value
        )
    ):
        end_hold(session, hold, "failed")
    session.commit()


def review(
    listing: Listing,
    seller: User,
    hold: CheckoutHold,
    *,
    arbitrator: User | None,
    arbitrator_address: str,
    arbitrator_fee_bps: int,
    platform_fee_bps: int,
    ship_by: int,
    inspection_period: int,
    delivery_window: int,
) -> dict[str, Any]:
    """Everything the buyer reviews before any signature, in words and exact numbers."""
    expires = as_utc(hold.expires_at)
    assert expires is not None
    delivery_days = delivery_window // 86400
    inspection_days = inspection_period / 86400
    inspection_words = (
        days_text(int(inspection_days))
        if inspection_days == int(inspection_days)
        else ngettext("%(num)d hour", "%(num)d hours", inspection_period // 3600)
    )
    return {
        "hold": hold.id,
        "hold_expires": expires.isoformat(),
        "title": listing.title,
        "amount": str(int(hold.amount)),
        "amount_text": format_amount(int(hold.amount), hold.currency),
        "currency": hold.currency,
        "token": to_checksum_address(hold.token) if int(hold.token, 16) else ETH,
        "seller": {"address": seller.address, "name": seller.display_name or ""},
        "arbitrator": {
            "address": arbitrator_address.lower(),
            "name": (arbitrator.display_name or "") if arbitrator else "",
            "fee_bps": arbitrator_fee_bps,
        },
        "platform_fee_bps": platform_fee_bps,
        "ship_by": datetime.fromtimestamp(ship_by, UTC).isoformat(),
        "inspection_seconds": inspection_period,
        "delivery_seconds": delivery_window,
        "delivery_days": delivery_days,
        "delivery_text": _(
            "Seller promises delivery within %(delivery)s after shipping; you then have "
            "%(inspection)s to inspect.",
            delivery=days_text(delivery_days),
            inspection=inspection_words,
        ),
        "version": hold.listing_version,
    }


def held_until(listing: Listing, now: datetime | None = None) -> datetime | None:
    """When the hold on ``listing`` ends, if a buyer holds it now."""
    until = as_utc(listing.reserved_until)
    if not listing.reserved_by or until is None or until <= (now or now_utc()):
        return None
    return until


@signed_out.connect
def _let_go_on_sign_out(sender: Any, address: str = "", **_: Any) -> None:
    """Signing out mid-payment ends the wallet holds at once (payments already sent go on)."""
    if address:
        release_all(db.session(), address.lower(), "signed_out")


# ---------------------------------------------------------------------------- what was bought


def snapshot_of(listing: Listing) -> dict[str, Any]:
    """The listing as a buyer sees it now: kept with the hold, shown with the trade later."""
    return {
        "version": int(listing.version or 1),
        "title": listing.title,
        "description": listing.description or "",
        "category": listing.category,
        "city": listing.city,
        "photos": list(listing.photos or []),
    }


def bought_snapshots(session: Session, trades: list[Trade]) -> dict[int, dict[str, Any]]:
    """For each trade bought through a checkout, the listing as its buyer saw it (by trade id).

    The hold that the trade ended (``funded``) carries it; a trade's own funding transaction
    picks its hold when the buyer bought the same listing more than once.
    """
    linked = [t for t in trades if t.listing_id is not None]
    if not linked:
        return {}
    holds = session.scalars(
        select(CheckoutHold)
        .where(
            CheckoutHold.listing_id.in_({t.listing_id for t in linked}),
            CheckoutHold.buyer.in_({t.buyer for t in linked}),
            CheckoutHold.end_reason == "funded",
            CheckoutHold.listing_snapshot.is_not(None),
        )
        .order_by(CheckoutHold.id)
    ).all()
    found: dict[int, dict[str, Any]] = {}
    for trade in linked:
        mine = [
            h
            for h in holds
            if h.listing_id == trade.listing_id
            and h.buyer == trade.buyer
            and int(h.amount) == int(trade.amount)
            and h.token == trade.token
        ]
        exact = [h for h in mine if h.tx_hash and h.tx_hash == trade.funded_tx]
        candidates = exact or mine
        if candidates and candidates[-1].listing_snapshot:
            found[trade.id] = dict(candidates[-1].listing_snapshot)
    return found


def kept_photos(session: Session, listing_id: int) -> set[str]:
    """Photo names that a buyer of ``listing_id`` saw (open or paid checkouts): never deleted."""
    names: set[str] = set()
    for snapshot in session.scalars(
        select(CheckoutHold.listing_snapshot).where(
            CheckoutHold.listing_id == listing_id,
            or_(CheckoutHold.state.in_(OPEN_STATES), CheckoutHold.end_reason == "funded"),
        )
    ):
        if snapshot:
            names.update(str(n) for n in snapshot.get("photos") or [])
    return names


# ------------------------------------------------------------------ arbitrators offered


REGISTERED_ARBITRATORS = (
    select(ArbitratorProfile)
    .where(ArbitratorProfile.onchain_registered.is_(True))
    .order_by(ArbitratorProfile.id)
)
#: The arbitrators a listing page offers (registered on chain), with the names they chose and
#: their figures, in one statement built once: plain rows of the columns the page uses.
BUY_ARBITRATORS = (
    select(
        ArbitratorProfile.address,
        ArbitratorProfile.fee_bps,
        ArbitratorProfile.onchain_max_fee_bps,
        User.display_name,
        ArbitratorStats.cases,
        ArbitratorStats.resolved,
        ArbitratorStats.by_timeout,
    )
    .outerjoin(User, User.address == ArbitratorProfile.address)
    .outerjoin(ArbitratorStats, ArbitratorStats.address == ArbitratorProfile.address)
    .where(ArbitratorProfile.onchain_registered.is_(True))
    .order_by(ArbitratorProfile.id)
)


def _arbitrator_order(indexed: Iterable[str], exclude: set[str]) -> list[str]:
    """The addresses a buyer may choose among: the deployment's arbitrators first, then the
    other ``indexed`` ones (in their order), without ``exclude``."""
    order = [a.lower() for a in gateway().deployment().arbitrators]
    order += [a for a in indexed if a not in order]
    return [a for a in order if a not in exclude]


def registered_arbitrators(
    session: Session, exclude: set[str], *, ask_chain: bool = True
) -> list[ArbitratorProfile]:
    """Arbitrators a buyer may choose (registered on chain), the deployment's first.

    The indexer's profiles say who is registered; ``ask_chain`` also asks the contract about
    the deployment's arbitrators the indexer has not seen yet.
    """
    profiles = {p.address: p for p in session.scalars(REGISTERED_ARBITRATORS)}
    chosen = []
    for address in _arbitrator_order(profiles, exclude):
        profile = profiles.get(address)
        if profile is None:
            if not ask_chain:
                continue
            info = gateway().client().arbitrator_info(address)
            if not info.registered:
                continue
            profile = ArbitratorProfile(
                address=address,
                onchain_registered=True,
                onchain_max_fee_bps=info.max_fee_bps,
                languages=[],
            )
        chosen.append(profile)
    return chosen


def arbitrator_fee(profile: ArbitratorProfile) -> int:
    cap = profile.onchain_max_fee_bps
    if cap is None:
        cap = gateway().client().arbitrator_info(profile.address).max_fee_bps
    return min(profile.fee_bps, cap) if profile.fee_bps is not None else cap


@dataclass(frozen=True)
class ArbitratorChoice:
    address: str
    fee_bps: int
    name: str | None = None
    #: Disputes this arbitrator was given, and how many they ruled (not left to time out).
    cases: int = 0
    ruled: int = 0

    @property
    def label(self) -> str:
        """The line of the Buy form's menu: name, fee and record."""
        return _(
            "%(name)s · fee %(fee)s · %(record)s",
            name=self.name or short_address(self.address),
            fee=bps_percent(self.fee_bps),
            record=ngettext("%(num)d case ruled", "%(num)d cases ruled", self.ruled),
        )


#: ``g`` key of the arbitrators a listing page offers, worked out once (:func:`page_arbitrators`).
PAGE_ARBITRATORS = "_page_arbitrators"


def buy_arbitrators(listing: Listing) -> list[ArbitratorChoice]:
    """The arbitrators a buyer of ``listing`` may pick (for the Buy form); [] on trouble.

    Only the database is read (one statement), so a listing page never waits for the chain
    node. On a page that called :func:`page_arbitrators`, the choices it worked out.
    """
    kept: tuple[int, list[ArbitratorChoice]] | None = g.get(PAGE_ARBITRATORS)
    if kept is not None and kept[0] == listing.id:
        return kept[1]
    me = current_address() or ""
    session = db.session()
    try:
        seller = session.get(User, listing.seller_id)
        exclude = {me, seller.address if seller else ""}
        rows = {row.address: row for row in session.execute(BUY_ARBITRATORS)}
        order = [a for a in _arbitrator_order(rows, exclude) if a in rows]
    except EscrowError:
        return []
    # The names are also kept for the page's ``party()`` links.
    trust.remember_party_names(session, (), known={a: rows[a].display_name for a in order})
    choices = []
    for address in order:
        row = rows[address]
        # Indexed profiles of registered arbitrators carry their cap: no chain call here. The
        # row has the profile's address and fee columns, all that arbitrator_fee reads.
        choices.append(
            ArbitratorChoice(
                address,
                arbitrator_fee(cast(ArbitratorProfile, row)),
                row.display_name,
                row.cases or 0,  # NULL: no figures yet
                (row.resolved - row.by_timeout) if row.resolved is not None else 0,
            )
        )
    return choices


def page_arbitrators(listing: Listing) -> list[ArbitratorChoice]:
    """:func:`buy_arbitrators` for the listing page, kept for the rest of the request: the
    page's terms and its Buy form both show them."""
    choices = buy_arbitrators(listing)
    g.setdefault(PAGE_ARBITRATORS, (listing.id, choices))
    return choices
