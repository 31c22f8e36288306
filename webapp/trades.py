"""Trades: buying a listing, the buyer's/seller's/arbitrator's trade pages and trade actions.

Trade state comes from the database (the indexer's projection of the chain). Actions return
unsigned transactions that the browser wallet signs; the contract re-checks every rule, so the
checks here only spare people a transaction that would fail.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from eth_utils import is_address, to_checksum_address
from flask import (
    Blueprint,
    abort,
    current_app,
    jsonify,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from hexbytes import HexBytes
from sqlalchemy import bindparam, exists, or_, select
from sqlalchemy.orm import Session, joinedload
from web3.exceptions import TransactionNotFound

from escrow.client import ETH, ZERO_REF
from escrow.db.models import (
    EvidenceFile,
    Listing,
    ListingStatus,
    Message,
    Trade,
    TradeEvent,
    User,
)
from escrow.errors import ChainUnavailable, ContractRevert
from escrow.transactions import PreparedCall
from webapp import checkout, db, trust
from webapp.auth import current_address, login_required, wants_json
from webapp.chain import gateway
from webapp.errors import describe_revert, render_error
from webapp.trade_rules import (
    ACTIONS,
    DISPUTE_STATEMENT_MARK,
    EXTENSION_DAYS,
    OPEN_STATUSES,
    ROLE_TITLES,
    STATUS_FILTER_WORDS,
    STATUS_FILTERS,
    TIMEOUT_ACTIONS,
    available_actions,
    chain_now,
    client_of,
    currency_of,
    deadlines,
    json_body,
    keep_statement,
    listing_url,
    load_trade_for_anyone,
    milestones,
    page_now,
    percent_to_bps,
    prepare_for,
    role_of,
    role_word,
    split_offer_live,
    status_word,
    sync_dispute_statement,
    terms_of,
    timeout_due_at,
)
from webapp.views import bps_percent, when

bp = Blueprint("trades", __name__)

PERMIT_SECONDS = 3600
EVENT_WORDS = {
    "TradeFunded": _l("Paid into escrow"),
    "TradeShipped": _l("Marked as shipped"),
    "TradeReleased": _l("Money released to the seller"),
    "TradeRefunded": _l("Money refunded to the buyer"),
    "TradeReceived": _l("Buyer received the item: inspection started"),
    "InspectionExtensionRequested": _l("Buyer asked for more time to inspect"),
    "InspectionExtended": _l("Seller gave more time to inspect"),
    "SplitProposed": _l("Split proposed"),
    "SplitCleared": _l("Split offer dropped: the trade moved on"),
    "TradeSettled": _l("Settled by agreed split"),
    "DisputeOpened": _l("Dispute opened"),
    "EvidenceSubmitted": _l("Evidence recorded on chain"),
    "DisputeResolved": _l("Dispute resolved"),
}


# ------------------------------------------------------------------ buying


class PermitError(ValueError):
    """A permit the page sent that cannot be used; the message is for the buyer."""


def _split_signature(signature: Any) -> tuple[int, bytes, bytes]:
    try:
        raw = HexBytes(signature)
    except (TypeError, ValueError):
        raw = HexBytes(b"")
    if len(raw) != 65:
        raise PermitError(_("The permit signature is malformed; sign it again."))
    v = raw[64] if raw[64] >= 27 else raw[64] + 27
    return v, bytes(raw[:32]), bytes(raw[32:64])


def _stringify_numbers(typed: dict[str, Any]) -> dict[str, Any]:
    # uint256 values can exceed what JavaScript numbers hold exactly; wallets accept strings.
    message = {k: str(v) if isinstance(v, int) else v for k, v in typed["message"].items()}
    return {**typed, "message": message}


bp.add_app_template_global(checkout.buy_arbitrators, "buy_arbitrators")


@bp.app_template_global("held_until")
def held_until(listing: Listing) -> datetime | None:
    return checkout.held_until(listing)


@bp.app_template_global("listing_terms")
def listing_terms(listing: Listing) -> dict[str, Any]:
    return checkout.listing_terms(listing)


@bp.post("/listings/<int:listing_id>/buy")
@login_required
def buy(listing_id: int) -> Any:
    """Starts or continues a checkout: checks the quote, holds the item, prepares the payment.

    The body carries what the page showed (``quote``: amount, currency, listing version); a
    different price or version is refused with 409 and the current ``terms``. The answer has
    the ``review`` the page shows before any signature, and either the ``tx`` to send or, for
    dollars, the EIP-2612 ``permit`` to sign first; the second request (with ``hold`` and
    ``permit: {signature, deadline}``) returns the ``fundWithPermit`` transaction.
    """
    session = db.session()
    buyer = current_address()
    assert buyer is not None
    listing = session.get(Listing, listing_id)
    if listing is None:
        abort(404)
    seller = session.get(User, listing.seller_id)
    assert seller is not None
    if seller.address == buyer:
        return render_error(409, _("This is your own listing; you cannot buy it."))
    if listing.status not in (ListingStatus.ACTIVE.value, ListingStatus.RESERVED.value):
        return render_error(409, _("This listing is no longer for sale."))
    if listing.quantity < 1 or listing.price <= 0:
        return render_error(409, _("This listing is not available to buy."))
    body = json_body()

    arbitrators = checkout.registered_arbitrators(session, exclude={buyer, seller.address})
    if not arbitrators:
        return render_error(503, _("No arbitrator is available right now; try again later."))
    wanted = body.get("arbitrator")
    if wanted:
        if not isinstance(wanted, str) or not is_address(wanted):
            return render_error(400, _("Choose an arbitrator from the list."))
        matches = [a for a in arbitrators if a.address == wanted.lower()]
        if not matches:
            return render_error(400, _("That arbitrator is not available for this trade."))
        arbitrator = matches[0]
    else:
        arbitrator = arbitrators[0]

    token = ETH
    if listing.currency != "ETH":
        coin = gateway().token_of(listing.currency)
        if coin is None:
            if listing.currency == "KZT":
                return render_error(409, _("Tenge payments are not available on this chain."))
            return render_error(409, _("Dollar payments are not available on this chain."))
        token = to_checksum_address(coin)
    permit = body.get("permit")
    if permit is not None and not isinstance(permit, dict):
        return render_error(400, _("The permit signature is malformed; sign it again."))

    try:
        quote = checkout.read_quote(body)
        hold = checkout.start(
            session,
            listing,
            buyer,
            token=token,
            arbitrator=arbitrator.address,
            quote=quote,
            hold_id=body.get("hold"),
        )
    except checkout.CheckoutRefused as exc:
        return checkout_refusal(exc)
    try:
        client = gateway().client()
        now = client.chain.latest_timestamp()
        fee_bps = checkout.arbitrator_fee(arbitrator)
        platform_fee_bps = client.platform_fee()[1]
        shown_fee = quote.platform_fee_bps if quote is not None else None
        if shown_fee is not None and platform_fee_bps > shown_fee:
            # The buyer reviewed a lower fee: they must see the new one before paying.
            checkout.release(session, hold, "failed")
            return render_error(409, fee_raised_message(shown_fee, platform_fee_bps))
        common: dict[str, Any] = dict(
            seller=seller.address,
            arbitrator=arbitrator.address,
            amount=int(hold.amount),
            ship_by=now + checkout.ship_within_seconds(),
            inspection_period=inspection_seconds(),
            delivery_window=delivery_window_of(listing),
            arbitrator_fee_bps=fee_bps,
            # The fee the buyer was shown is the most the escrow may charge: a fee raised
            # before the payment is mined makes it revert instead of charging more.
            max_platform_fee_bps=platform_fee_bps if shown_fee is None else shown_fee,
            listing_ref=bytes.fromhex(listing.ref[2:]),
            lane=client.free_lane(buyer),
        )
        review = checkout.review(
            listing,
            seller,
            hold,
            arbitrator=session.scalar(select(User).where(User.address == arbitrator.address)),
            arbitrator_address=arbitrator.address,
            arbitrator_fee_bps=fee_bps,
            platform_fee_bps=platform_fee_bps,
            ship_by=common["ship_by"],
            inspection_period=common["inspection_period"],
            delivery_window=common["delivery_window"],
        )
        answer: dict[str, Any] = {
            "review": review,
            "hold": hold.id,
            "arbitrator": arbitrator.address,
            "redirect": url_for("trades.index", role="buyer"),
            "release_url": url_for("trades.release_hold", hold_id=hold.id),
            "paid_url": url_for("trades.hold_paid", hold_id=hold.id),
            "failed_url": url_for("trades.hold_failed", hold_id=hold.id),
        }
        call: PreparedCall
        if token == ETH:
            call = client.calls.fund(token=token, **common)
        elif permit is None:
            allowance = int(
                client.token(token)
                .functions.allowance(to_checksum_address(buyer), client.address)
                .call()
            )
            if allowance < hold.amount:
                deadline = now + PERMIT_SECONDS
                typed = client.permit_typed_data(token, buyer, int(hold.amount), deadline)
                return jsonify(permit=_stringify_numbers(typed), permit_deadline=deadline, **answer)
            call = client.calls.fund(token=token, **common)
        else:
            try:
                v, r, s = _split_signature(permit.get("signature"))
                deadline = int(permit.get("deadline", ""))
                if not now < deadline < 2**256:
                    raise PermitError(_("The permit has expired or its deadline is malformed."))
            except (TypeError, ValueError, OverflowError) as exc:
                checkout.release(session, hold, "refused")
                message = (
                    str(exc) if isinstance(exc, PermitError) else _("The permit is malformed.")
                )
                return render_error(400, message)
            call = client.calls.fund_with_permit(
                token=token, permit_deadline=deadline, v=v, r=r, s=s, **common
            )
        tx = gateway().prepare(call, buyer)
    except Exception as exc:  # whatever went wrong, the item must not stay held
        session.rollback()
        checkout.release(session, hold, "failed")
        if isinstance(exc, (ConnectionError, OSError)):
            raise ChainUnavailable(f"the chain node did not answer: {exc}") from exc
        raise
    if int(tx.get("value", "0x0"), 16) != (int(hold.amount) if token == ETH else 0):
        checkout.release(session, hold, "failed")  # never hand out a payment of another amount
        return render_error(409, _("The payment could not be prepared; nothing was sent."))
    return jsonify(tx=tx, **answer)


def inspection_seconds() -> int:
    return checkout.inspection_seconds()


def delivery_window_of(listing: Listing) -> int:
    return checkout.delivery_window_of(listing)


def fee_raised_message(shown_bps: int, now_bps: int) -> str:
    return _(
        "The platform fee went up from %(shown)s to %(now)s since you reviewed this purchase. "
        "Nothing was paid. Buy again to review the new fee.",
        shown=bps_percent(shown_bps),
        now=bps_percent(now_bps),
    )


def checkout_refusal(exc: checkout.CheckoutRefused) -> Any:
    if wants_json():
        return jsonify(error=str(exc.message), **exc.payload), exc.status
    return render_error(exc.status, str(exc.message))


def _own_hold(hold_id: int) -> checkout.CheckoutHold:
    me = current_address()
    assert me is not None
    hold = checkout.hold_for(db.session(), hold_id, me)
    if hold is None:
        abort(404)
    return hold


@bp.post("/checkout/<int:hold_id>/release")
@login_required
def release_hold(hold_id: int) -> Any:
    """The page lets the item go: the wallet refused, the tab closed or the buyer cancelled."""
    hold = _own_hold(hold_id)
    source = request.form if request.form else json_body()
    reason = source.get("reason")
    reason = reason if reason in ("refused", "closed") else "refused"
    released = checkout.release(db.session(), hold, reason)
    return jsonify(released=released)


@bp.post("/checkout/<int:hold_id>/paid")
@login_required
def hold_paid(hold_id: int) -> Any:
    """The wallet sent the payment: the hold lasts until it is mined and indexed, or fails."""
    hold = _own_hold(hold_id)
    tx_hash = json_body().get("tx_hash")
    if not isinstance(tx_hash, str) or not checkout.TX_HASH.match(tx_hash):
        return render_error(400, _("Send the payment's transaction hash."))
    tx_hash = tx_hash.lower()
    try:
        found: dict[str, Any] | None = dict(
            gateway().chain().w3.eth.get_transaction(HexBytes(tx_hash))
        )
    except TransactionNotFound:
        found = None
    try:
        until = checkout.mark_paid(
            db.session(), hold, tx_hash, found, gateway().deployment().escrow.address
        )
    except checkout.CheckoutRefused as exc:
        return checkout_refusal(exc)
    return jsonify(held_until=until.isoformat())


@bp.post("/checkout/<int:hold_id>/failed")
@login_required
def hold_failed(hold_id: int) -> Any:
    """The payment was reverted on chain: why, in words (``error``), and the item is let go.

    The payment is replayed against the chain as it is now: a platform fee raised after the
    buyer's review (the payment's fee cap) or paused funding give their own message.
    """
    hold = _own_hold(hold_id)
    tx_hash = json_body().get("tx_hash")
    if not isinstance(tx_hash, str) or not checkout.TX_HASH.match(tx_hash):
        return render_error(400, _("Send the payment's transaction hash."))
    w3 = gateway().chain().w3
    try:
        receipt = w3.eth.get_transaction_receipt(HexBytes(tx_hash))
        sent: dict[str, Any] = dict(w3.eth.get_transaction(HexBytes(tx_hash)))
    except TransactionNotFound:
        return render_error(409, _("That payment is not mined yet."))
    if receipt["status"] == 1:
        return render_error(409, _("That payment went through."))
    if str(sent.get("from", "")).lower() != hold.buyer:
        return render_error(400, _("That transaction is not your payment."))
    checkout.transaction_failed(db.session(), tx_hash.lower())
    message = _("The payment was reverted on chain; nothing was paid. Try again.")
    to = str(sent.get("to") or "")
    if to.lower() in gateway().escrow_addresses():
        data = sent.get("input") or sent.get("data") or b""
        params: dict[str, Any] = {
            "from": to_checksum_address(str(sent["from"])),
            "to": to_checksum_address(to),
            "data": HexBytes(data).to_0x_hex(),
            "value": int(sent.get("value") or 0),
        }
        try:
            gateway().client_for(to).sender.estimate_gas(params)  # type: ignore[arg-type]
        except ContractRevert as exc:
            message = describe_revert(exc)
        except Exception:  # the explanation is a help; the generic message stays
            current_app.logger.info("could not replay failed payment %s", tx_hash)
    return jsonify(error=message)


# ------------------------------------------------------------------ pages


@bp.get("/trades")
@login_required
def index() -> str:
    me = current_address()
    session = db.session()
    status = request.args.get("status", "")
    role = request.args.get("role", "")
    query = select(Trade)
    if role == "buyer":
        query = query.where(Trade.buyer == me)
    elif role == "seller":
        query = query.where(Trade.seller == me)
    elif role == "arbitrator":
        query = query.where(Trade.arbitrator == me)
    else:
        role = ""
        query = query.where(or_(Trade.buyer == me, Trade.seller == me, Trade.arbitrator == me))
    if status in STATUS_FILTERS:
        query = query.where(Trade.status.in_(STATUS_FILTERS[status]))
    else:
        status = ""
    raw_page = request.args.get("page", "1")
    page = int(raw_page) if raw_page.isdigit() and 0 < int(raw_page) < 10**6 else 1
    size = int(current_app.config["PAGE_SIZE"])
    rows = list(
        session.scalars(
            query.order_by(Trade.funded_block.desc(), Trade.id.desc())
            .offset((page - 1) * size)
            .limit(size + 1)
        )
    )
    trades = rows[:size]
    return render_template(
        "trades/index.html",
        trades=trades,
        status=status,
        role=role,
        page=page,
        has_next=len(rows) > size,
        filters=list(STATUS_FILTERS),
        filter_words=STATUS_FILTER_WORDS,
        role_titles=ROLE_TITLES,
        status_word=status_word,
        role_word=role_word,
        me=me,
        currency={t.id: currency_of(t) for t in trades},
        role_of=role_of,
        bought=checkout.bought_snapshots(session, trades),
    )


def _risk_signals(session: Session, trade: Trade, row: Any) -> list[Any]:
    """The warnings about the trade's seller, whose record is in ``row`` (``TRADE_PAGE``'s)."""
    try:
        record = trust.record_from_row(trade.seller, row)
        return list(trust.risk_signals_for_trade(session, trade, record=record))
    except Exception:  # warnings are a help, never a reason for the page to fail
        current_app.logger.exception("risk signals failed for trade %s", trade.id)
        return []


def _name_of(address: Any) -> Any:
    """The name the person at ``address`` chose (NULL: none, or no account), as a column."""
    return select(User.display_name).where(User.address == address).scalar_subquery()


# The trade page's statements, built once (building costs more than SQLite's answer).
#: The trade with its dispute, the names its parties chose, the title of the listing its
#: reference names (shown only when the trade is not linked to it), whether it has evidence and
#: messages (most trades have neither, and then neither is read) and the seller's record (for
#: the warnings), in one statement.
TRADE_PAGE = (
    select(
        Trade,
        _name_of(Trade.buyer),
        _name_of(Trade.seller),
        _name_of(Trade.arbitrator),
        select(Listing.title).where(Listing.ref == Trade.listing_ref).scalar_subquery(),
        exists().where(EvidenceFile.trade_id == Trade.id).label("has_evidence"),
        exists().where(Message.trade_id == Trade.id).label("has_messages"),
        *trust.record_columns(Trade.seller),
    )
    .options(joinedload(Trade.dispute))
    .where(Trade.id == bindparam("trade_pk"))
)
# The timeline, evidence and messages are read as plain rows of the columns the page shows
# (the templates read them like the ORM's objects): no ORM objects to build and track.
TRADE_EVENTS = (
    select(
        TradeEvent.event,
        TradeEvent.args,
        TradeEvent.block_time,
        TradeEvent.block_number,
        TradeEvent.tx_hash,
    )
    .where(TradeEvent.trade_id == bindparam("trade_id"))
    .order_by(TradeEvent.block_number, TradeEvent.log_index)
)
TRADE_EVIDENCE = (
    select(
        EvidenceFile.id,
        EvidenceFile.uploaded_by,
        EvidenceFile.original_name,
        EvidenceFile.content_type,
        EvidenceFile.size_bytes,
        EvidenceFile.sha256,
        EvidenceFile.onchain_tx_hash,
    )
    .where(EvidenceFile.trade_id == bindparam("trade_id"))
    .order_by(EvidenceFile.id)
)
TRADE_MESSAGES = (
    select(Message.sender, Message.body, Message.evidence_file_id, Message.created_at)
    .where(Message.trade_id == bindparam("trade_id"))
    .order_by(Message.id)
)


def _rows(session: Session, statement: Any, trade: Trade) -> list[Any]:
    """The rows of one of the page's column statements about ``trade`` (read on the session's
    connection: the ORM has nothing to add to plain columns)."""
    return list(session.connection().execute(statement, {"trade_id": trade.id}))


@bp.get("/trades/<int:trade_pk>")
@login_required
def show(trade_pk: int) -> str:
    session = db.session()
    row = session.execute(TRADE_PAGE, {"trade_pk": trade_pk}).first()
    if row is None:
        abort(404)
    trade, buyer_name, seller_name, arbitrator_name, listing_title = row[:5]
    me = current_address()
    role = role_of(trade, me)
    trust.remember_party_names(
        session,
        (me,),
        known={
            trade.buyer: buyer_name,
            trade.seller: seller_name,
            trade.arbitrator: arbitrator_name,
        },
    )
    if role is None:
        return _visitor_page(trade)
    published = sync_dispute_statement(session, trade)
    now = page_now()
    events = _rows(session, TRADE_EVENTS, trade)
    evidence = _rows(session, TRADE_EVIDENCE, trade) if row.has_evidence else []
    # A statement published just now is a message the statement above did not see.
    messages = _rows(session, TRADE_MESSAGES, trade) if row.has_messages or published else []
    may_message = role in ("buyer", "seller") or (
        role == "arbitrator" and trade.dispute is not None
    )
    return render_template(
        "trades/show.html",
        trade=trade,
        role=role,
        status_word=status_word,
        now=now,
        events=events,
        event_words=EVENT_WORDS,
        event_label=event_label,
        actions=available_actions(trade, me, now),
        deadlines=deadlines(trade),
        milestones=milestones(trade),
        offer_live=split_offer_live(trade, now),
        extension_days=list(EXTENSION_DAYS),
        risk_signals=_risk_signals(session, trade, row),
        evidence=evidence,
        messages=messages,
        may_message=may_message,
        currency=currency_of(trade),
        is_open=trade.status in OPEN_STATUSES,
        statement_mark=DISPUTE_STATEMENT_MARK,
        listing_url=listing_url(trade.listing_id),
        unlinked_title=_unlinked_title(trade, listing_title),
        bought=checkout.bought_snapshots(session, [trade]).get(trade.id),
    )


def _visitor_page(trade: Trade) -> str:
    """The trade as someone outside it sees it: what the chain shows anyway, and the timeouts
    anyone may send once they are due. No conversation, evidence or statement."""
    session = db.session()
    now = page_now()
    events = _rows(session, TRADE_EVENTS, trade)
    me = current_address()
    actions = [a for a in available_actions(trade, me, now) if a.name in TIMEOUT_ACTIONS]
    upcoming = [
        (ACTIONS[name], due)
        for name in TIMEOUT_ACTIONS
        if (due := timeout_due_at(trade, name)) is not None and now < due
    ]
    return render_template(
        "trades/show.html",
        trade=trade,
        role=None,
        status_word=status_word,
        now=now,
        events=events,
        event_words=EVENT_WORDS,
        event_label=event_label,
        actions=actions,
        deadlines=deadlines(trade),
        milestones=milestones(trade),
        offer_live=split_offer_live(trade, now),
        extension_days=list(EXTENSION_DAYS),
        risk_signals=[],
        evidence=[],
        messages=[],
        may_message=False,
        currency=currency_of(trade),
        is_open=trade.status in OPEN_STATUSES,
        statement_mark=DISPUTE_STATEMENT_MARK,
        listing_url=listing_url(trade.listing_id),
        unlinked_title=None,
        bought=checkout.bought_snapshots(session, [trade]).get(trade.id),
        upcoming_timeouts=upcoming,
    )


def event_label(event: Any) -> str:
    """What a timeline entry says, with the details some events carry (``event``: a
    :class:`TradeEvent` or a row with its ``event`` and ``args``)."""
    args = event.args if isinstance(event.args, dict) else {}
    if event.event == "SplitCleared" and args.get("byCancel"):
        return _("Split offer withdrawn by its proposer")
    days = args.get("extraDays")
    if event.event == "InspectionExtensionRequested" and days:
        return ngettext(
            "Buyer asked for %(num)d more day to inspect",
            "Buyer asked for %(num)d more days to inspect",
            int(days),
        )
    if event.event == "InspectionExtended" and days:
        return ngettext(
            "Seller gave %(num)d more day to inspect",
            "Seller gave %(num)d more days to inspect",
            int(days),
        )
    word = EVENT_WORDS.get(event.event)
    return str(word) if word is not None else event.event


def _unlinked_title(trade: Trade, title: str | None) -> str | None:
    """The title of the listing a trade quotes by reference without matching its terms (so not
    linked), given the title of the listing with the trade's reference."""
    if trade.listing_id is not None or int(trade.listing_ref, 16) == 0:
        return None
    return title


# ------------------------------------------------------------------ actions


@bp.post("/trades/<int:trade_pk>/actions/<name>")
@login_required
def act(trade_pk: int, name: str) -> Any:
    action = ACTIONS.get(name)
    if action is None:
        abort(404)
    trade, role = load_trade_for_anyone(trade_pk)
    me = current_address()
    assert me is not None
    if role is None and name not in TIMEOUT_ACTIONS:
        return render_error(
            403, _("Only the buyer, the seller and the arbitrator of this trade can do this.")
        )
    if "anyone" not in action.roles and role not in action.roles:
        if action.roles == {"buyer"}:
            refusal = _("Only the buyer can do this.")
        elif action.roles == {"seller"}:
            refusal = _("Only the seller can do this.")
        else:
            refusal = _("Only the buyer or the seller can do this.")
        return render_error(403, refusal)
    now = chain_now()
    if action not in available_actions(trade, me, now):
        due = timeout_due_at(trade, name)
        if due is not None and now < due:
            return render_error(
                409,
                _(
                    "“%(action)s” is not due yet: it becomes possible at %(time)s. Reload the "
                    "page to see the trade as it is now.",
                    action=action.label,
                    time=when(due),
                ),
            )
        return render_error(
            409,
            _(
                "“%(action)s” is not possible now: the trade is %(status)s. Reload the page to "
                "see what you can do.",
                action=action.label,
                status=status_word(trade.status).lower(),
            ),
        )
    body = json_body()
    calls = client_of(trade).calls
    terms = terms_of(trade)
    trade_id = int(trade.onchain_id)
    after_send = None
    call: PreparedCall
    if name == "ship":
        tracking = str(body.get("tracking") or "").strip()
        if len(tracking) > 200:
            return render_error(400, _("The tracking reference is too long."))
        ref = hashlib.sha256(tracking.encode()).digest() if tracking else ZERO_REF
        call = calls.mark_shipped(trade_id, terms, ref)
    elif name == "confirm":
        call = calls.confirm_receipt(trade_id, terms)
    elif name == "received":
        call = calls.mark_received(trade_id, terms)
    elif name == "request_extension":
        raw = str(body.get("extra_days", "")).strip()
        days = int(raw) if raw.isdigit() and len(raw) <= 2 else 0
        if days not in EXTENSION_DAYS:
            return render_error(400, _("Choose how many more days you need: 1 to 7."))
        call = calls.request_inspection_extension(trade_id, terms, days)
    elif name == "grant_extension":
        call = calls.grant_inspection_extension(trade_id, terms)
    elif name == "cancel_split":
        call = calls.cancel_split(trade_id, terms)
    elif name == "release":
        call = calls.release_after_inspection(trade_id, terms)
    elif name == "refund":
        call = calls.refund_after_deadline(trade_id, terms)
    elif name == "seller_refund":
        call = calls.refund_by_seller(trade_id, terms)
    elif name == "propose_split":
        try:
            bps = percent_to_bps(body.get("buyer_percent", ""))
        except ValueError as exc:
            return render_error(400, str(exc))
        call = calls.propose_split(trade_id, terms, bps)
    elif name == "accept_split":
        assert trade.proposed_buyer_bps is not None
        call = calls.accept_split(trade_id, terms, int(trade.proposed_buyer_bps))
    elif name == "dispute":
        statement = str(body.get("statement") or "").strip()
        if not 1 <= len(statement) <= 2000:
            return render_error(
                400, _("Explain the problem for the arbitrator (1 to 2,000 characters).")
            )
        keep_statement(db.session(), trade, me, statement)
        call = calls.open_dispute(trade_id, terms)
        after_send = url_for("disputes.statement_sent", trade_pk=trade.id)
    else:  # resolve
        call = calls.resolve_after_ruling_timeout(trade_id, terms)
    tx = prepare_for(trade, call, me)
    payload: dict[str, Any] = {"tx": tx, "redirect": url_for("trades.show", trade_pk=trade.id)}
    if after_send:
        payload["after_send"] = after_send
    return jsonify(payload)


def participant_filter(address: str) -> Any:
    return or_(Trade.buyer == address, Trade.seller == address, Trade.arbitrator == address)
