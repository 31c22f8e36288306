"""Arbitration: the arbitrator's queue of disputes, the case file and the ruling."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from flask import Blueprint, abort, jsonify, render_template, request, url_for
from flask_babel import gettext as _
from markupsafe import Markup
from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import contains_eager, selectinload

from escrow.db.models import (
    Dispute,
    EvidenceFile,
    Listing,
    Message,
    Trade,
    TradeEvent,
    TradeStatus,
)
from webapp import checkout, db, trust
from webapp.auth import current_address, login_required
from webapp.errors import render_error
from webapp.trade_rules import (
    BPS,
    DISPUTE_STATEMENT_MARK,
    chain_now,
    client_of,
    currency_of,
    json_body,
    page_now,
    prepare_for,
    status_word,
    sync_dispute_statement,
    terms_of,
)
from webapp.views import (
    as_utc,
    counted_page,
    format_amount,
    is_arbitrator,
    iso,
    link,
    party,
    title_of,
    when,
)

bp = Blueprint("arbitration", __name__)

PAST_RULINGS = 50
#: Open cases per page of the queue (the most urgent first).
QUEUE_PAGE = 25


@dataclass(frozen=True)
class SplitAmounts:
    buyer: int
    seller: int
    arbitrator_fee: int
    platform_fee: int


def ruling_amounts(
    amount: int, arbitrator_fee_bps: int, platform_fee_bps: int, buyer_bps: int
) -> SplitAmounts:
    """What ``rule(buyerBps)`` pays, computed exactly as the contract does."""
    fee = amount * arbitrator_fee_bps // BPS
    pot = amount - fee
    buyer = pot * buyer_bps // BPS
    seller_gross = pot - buyer
    platform = seller_gross * platform_fee_bps // BPS
    return SplitAmounts(buyer, seller_gross - platform, fee, platform)


def load_case(trade_pk: int) -> Trade:
    trade = db.session().get(Trade, trade_pk)
    if trade is None:
        abort(404)
    if trade.arbitrator != current_address():
        abort(403, _("Only the arbitrator of this trade can open its case file."))
    return trade


# The queue's statements, built once (building costs more than SQLite's answer).
OPEN_CASES = (Trade.arbitrator == bindparam("me"), Trade.status == TradeStatus.DISPUTED.value)
OPEN_COUNT = select(func.count(Trade.id)).where(*OPEN_CASES)


class OpenCase(NamedTuple):
    """An open case as the queue reads it: a plain row of what its line, its currency and its
    checkout snapshot (``checkout.bought_snapshots``) need, not an ORM object of 43 columns."""

    id: int
    buyer: str
    seller: str
    token: str
    amount: int
    deadline: datetime | None
    ruling_deadline: datetime | None
    listing_id: int | None
    funded_tx: str | None
    listing_title: str | None


OPEN_PAGE = (
    select(
        Trade.id,
        Trade.buyer,
        Trade.seller,
        Trade.token,
        Trade.amount,
        Trade.deadline,
        Trade.ruling_deadline,
        Trade.listing_id,
        Trade.funded_tx,
        Listing.title,
    )
    .outerjoin(Listing, Listing.id == Trade.listing_id)
    .where(*OPEN_CASES)
    .order_by(Trade.ruling_deadline, Trade.id)
    .limit(bindparam("take"))
    .offset(bindparam("skip"))
)
OPEN_PAGE_COUNTED = OPEN_PAGE.add_columns(
    OPEN_COUNT.correlate(None).scalar_subquery().label("total")
)
PAST = (
    select(Trade)
    .join(Dispute, Dispute.trade_id == Trade.id)
    .where(Trade.arbitrator == bindparam("me"), Trade.status == TradeStatus.RESOLVED.value)
    # Each row says how the case ended (its dispute) and names the listing.
    .options(contains_eager(Trade.dispute), selectinload(Trade.listing))
    .order_by(Trade.finished_block.desc())
    .limit(PAST_RULINGS)
)


@bp.get("/arbitration")
@login_required
def index() -> str:
    me = current_address()
    assert me is not None
    session = db.session()
    if not is_arbitrator(session, me):
        abort(403, _("This console is for arbitrators."))
    # The page of cases and the number of all open cases in one statement.
    paged = counted_page(
        request.args.get("page", 1, type=int) or 1,
        QUEUE_PAGE,
        lambda skip: session.execute(
            OPEN_PAGE_COUNTED, {"me": me, "take": QUEUE_PAGE, "skip": skip}
        ).all(),
        lambda skip: session.execute(OPEN_PAGE, {"me": me, "take": QUEUE_PAGE, "skip": skip}).all(),
        lambda: session.scalar(OPEN_COUNT, {"me": me}),
    )
    queue = [OpenCase._make(row[:10]) for row in paged.rows]
    page, pages = paged.page, paged.pages
    past = list(session.scalars(PAST, {"me": me}))
    cases: list[Any] = [*queue, *past]  # the queue's plain rows have what these read
    currency = {t.id: currency_of(t) for t in cases}
    # The queue names both parties of each case: one query for all of them (and the header).
    trust.remember_party_names(session, [me, *(a for t in queue for a in (t.buyer, t.seller))])
    bought = checkout.bought_snapshots(session, cases)
    return render_template(
        "arbitration/index.html",
        queue=_queue_rows(queue, currency, bought, page_now()),
        page=page,
        pages=pages,
        past=past,
        currency=currency,
        bought=bought,
    )


@dataclass(frozen=True)
class QueueRow:
    """One case of the queue as the page shows it (worked out here: a template doing the same
    per row costs several times more on a page of 25)."""

    case_url: str
    title: str
    buyer: Markup
    seller: Markup
    amount: str
    deadline_iso: str
    deadline_text: str
    over: bool


def _queue_rows(
    queue: list[OpenCase], currency: dict[int, str], bought: dict[int, Any], now: datetime
) -> list[QueueRow]:
    as_buyer, as_seller = _("buyer"), _("seller")
    rows = []
    for trade in queue:
        deadline = as_utc(trade.ruling_deadline or trade.deadline)
        rows.append(
            QueueRow(
                case_url=link("arbitration.case", trade_pk=trade.id),
                title=title_of(trade.id, bought.get(trade.id), trade.listing_title),
                buyer=party(trade.buyer, as_buyer),
                seller=party(trade.seller, as_seller),
                amount=format_amount(trade.amount, currency[trade.id]),
                deadline_iso=iso(deadline),
                deadline_text=when(deadline),
                over=deadline is not None and deadline <= now,
            )
        )
    return rows


@bp.get("/arbitration/<int:trade_pk>")
@login_required
def case(trade_pk: int) -> str:
    trade = load_case(trade_pk)
    session = db.session()
    sync_dispute_statement(session, trade)
    evidence = list(
        session.scalars(
            select(EvidenceFile).where(EvidenceFile.trade_id == trade.id).order_by(EvidenceFile.id)
        )
    )
    committed = {
        str(args.get("contentHash", "")).lower().removeprefix("0x")
        for args in session.scalars(
            select(TradeEvent.args).where(
                TradeEvent.trade_id == trade.id, TradeEvent.event == "EvidenceSubmitted"
            )
        )
    }
    onchain = {e.id: bool(e.onchain_tx_hash) or e.sha256 in committed for e in evidence}
    messages = list(
        session.scalars(select(Message).where(Message.trade_id == trade.id).order_by(Message.id))
    )
    currency = currency_of(trade)
    splits = []
    for percent in range(101):
        split = ruling_amounts(
            int(trade.amount), trade.arbitrator_fee_bps, trade.platform_fee_bps, percent * 100
        )
        splits.append({k: format_amount(v, currency) for k, v in split.__dict__.items()})
    now = page_now()
    ruling_deadline = as_utc(trade.ruling_deadline or trade.deadline)
    may_rule = (
        trade.status == TradeStatus.DISPUTED.value
        and ruling_deadline is not None
        and now < ruling_deadline
    )
    return render_template(
        "arbitration/case.html",
        trade=trade,
        evidence=evidence,
        onchain=onchain,
        messages=messages,
        currency=currency,
        splits=splits,
        splits_json=json.dumps(splits),
        may_rule=may_rule,
        ruling_deadline=ruling_deadline,
        now=now,
        may_message=trade.dispute is not None,
        statement_mark=DISPUTE_STATEMENT_MARK,
        bought=checkout.bought_snapshots(session, [trade]).get(trade.id),
        back=url_for("arbitration.case", trade_pk=trade.id),
        status_word=status_word,
    )


@bp.post("/arbitration/<int:trade_pk>/rule")
@login_required
def rule(trade_pk: int) -> Any:
    trade = load_case(trade_pk)
    if trade.status != TradeStatus.DISPUTED.value:
        return render_error(409, _("This trade is not in dispute any more."))
    ruling_deadline = as_utc(trade.ruling_deadline or trade.deadline)
    if ruling_deadline is None or chain_now() >= ruling_deadline:
        return render_error(
            409,
            _("The time to rule is over; anyone can now resolve the dispute by the timeout rule."),
        )
    raw = json_body().get("buyer_percent")
    try:
        percent = int(str(raw).strip())
    except ValueError:
        percent = -1
    if not 0 <= percent <= 100:
        return render_error(400, _("Choose the buyer's share: a whole percentage from 0 to 100."))
    me = current_address()
    assert me is not None
    call = client_of(trade).calls.rule(int(trade.onchain_id), terms_of(trade), percent * 100)
    tx = prepare_for(trade, call, me)
    return jsonify(tx=tx, redirect=url_for("arbitration.index"))
