"""Checkout in a real browser: the buyer pays the price the page showed, reviews every term
before the wallet is asked for anything, and an item held for one buyer is free again the
moment that buyer cancels, signs out or closes the tab.

Each scenario runs at desktop (1280x900) and phone (390x844) width against the production
stack, like test_e2e_browser.py, and on listings of its own. Screenshots go to
build/screenshots/checkout-*.png.

A buyer may leave ABANDON_LIMIT (5) checkouts unfinished per 30 minutes (webapp/checkout.py),
so the accounts that cancel on purpose differ between the two widths (see ``PEOPLE``).
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from eth_utils import to_checksum_address
from hexbytes import HexBytes
from playwright.sync_api import Browser, Locator, Page, expect
from playwright.sync_api import Error as PlaywrightError
from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from test_e2e_browser import (
    SHOTS,
    TX_TIMEOUT,
    act,
    open_as,
    shot,
    wait_for_tx,
)

from escrow.db.engine import make_engine, session_scope
from escrow.db.models import CheckoutHold, Listing, ListingStatus, Trade, User
from webapp.stack import LocalStack

pytestmark = pytest.mark.e2e

ETH = 10**18
ETH_TOKEN = "0x" + "00" * 20
WIDTHS = pytest.mark.parametrize("mobile", [False, True], ids=["desktop", "phone"])
REVIEW = "dialog[data-checkout-review]"


@dataclass(frozen=True)
class People:
    """Indices into the dev chain's accounts for one width (seeded: 1-4 sellers, 5-7 buyers,
    8-9 arbitrators, who may buy too). ``leaver`` and ``canceller`` abandon three checkouts
    each; ``buyer`` and ``second`` always pay."""

    buyer: int
    second: int
    leaver: int
    canceller: int


PEOPLE = {
    False: People(buyer=5, second=7, leaver=5, canceller=8),
    True: People(buyer=6, second=5, leaver=6, canceller=9),
}


def width_name(mobile: bool) -> str:
    return "phone" if mobile else "desktop"


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    # The browser signs in about 30 times a minute, always from 127.0.0.1, and both workers
    # count sign-ins against one limit (20 per minute by default).
    with LocalStack(
        tmp_path_factory.mktemp("e2e-checkout"),
        quiet=True,
        workers=2,
        extra_env={"ESCROW_SIGNIN_RATE_LIMIT": "120 per minute"},
    ) as running:
        yield running


@pytest.fixture(scope="module")
def engine(stack: LocalStack) -> Iterator[Engine]:
    made = make_engine(stack.database_url)
    yield made
    made.dispose()


# ---------------------------------------------------------------------------- helpers


def account(stack: LocalStack, index: int) -> str:
    assert stack.chain is not None
    return str(stack.chain.accounts[index])


def balance(stack: LocalStack, address: str) -> int:
    assert stack.chain is not None
    return int(stack.chain.w3.eth.get_balance(to_checksum_address(address)))


def new_listing(engine: Engine, seller: str, title: str, price: int) -> int:
    """An ETH listing of one item, straight into the database (the sell form has its test)."""
    with session_scope(engine) as session:
        user = session.scalar(select(User).where(User.address == seller.lower()))
        assert user is not None, f"{seller} is not a seeded member"
        listing = Listing(
            ref="0x" + secrets.token_hex(32),
            seller_id=user.id,
            title=title,
            description="Picked up in person or sent by post.",
            price=price,
            currency="ETH",
            quantity=1,
            category="bikes",
            city="Almaty",
            photos=[],
            status=ListingStatus.ACTIVE.value,
        )
        session.add(listing)
        session.flush()
        return int(listing.id)


def holds_of(engine: Engine, listing_id: int, buyer: str | None = None) -> list[CheckoutHold]:
    with session_scope(engine) as session:
        query = select(CheckoutHold).where(CheckoutHold.listing_id == listing_id)
        if buyer is not None:
            query = query.where(CheckoutHold.buyer == buyer.lower())
        return list(session.scalars(query.order_by(CheckoutHold.id)))


def open_hold(engine: Engine, listing_id: int) -> CheckoutHold:
    held = [h for h in holds_of(engine, listing_id) if h.state in ("wallet", "payment")]
    assert len(held) == 1, f"expected one open hold of listing {listing_id}, got {held}"
    return held[0]


def wait_hold_ended(engine: Engine, hold_id: int, timeout: float = 5.0) -> str:
    """The reason the hold ended, once it has (the page's beacon is sent asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        with session_scope(engine) as session:
            hold = session.get(CheckoutHold, hold_id)
            assert hold is not None
            if hold.state == "ended":
                return str(hold.end_reason)
        if time.monotonic() > deadline:
            raise AssertionError(f"hold {hold_id} is still {hold.state} after {timeout}s")
        time.sleep(0.1)


def trades_of(engine: Engine, listing_id: int) -> list[Trade]:
    with session_scope(engine) as session:
        return list(session.scalars(select(Trade).where(Trade.listing_id == listing_id)))


def the_trade(engine: Engine, listing_id: int, buyer: str) -> Trade:
    trades = trades_of(engine, listing_id)
    assert [t.buyer for t in trades] == [buyer.lower()], trades
    return trades[0]


def paid_transaction(stack: LocalStack, engine: Engine, listing_id: int, buyer: str) -> Any:
    """The transaction the buyer's wallet sent for the listing (reported to the hold)."""
    assert stack.chain is not None
    holds = holds_of(engine, listing_id, buyer)
    paid = [h for h in holds if h.tx_hash]
    if paid:
        assert len(paid) == 1, paid
        assert paid[0].end_reason == "funded", paid[0].end_reason
        tx_hash = str(paid[0].tx_hash)
    else:
        # The indexer saw the payment mined before the page reported it: the wallet's hold
        # ended as funded without the hash, and the trade names the transaction.
        assert [h.end_reason for h in holds][-1:] == ["funded"], holds
        tx_hash = str(the_trade(engine, listing_id, buyer).funded_tx)
    return stack.chain.w3.eth.get_transaction(HexBytes(tx_hash))


def status_error(page: Page) -> str | None:
    box = page.locator("#tx-status.error")
    try:
        if box.count() and box.is_visible():
            return box.inner_text()
    except PlaywrightError:
        pass  # the page is navigating away
    return None


def open_review(page: Page) -> Locator:
    """Clicks Buy and returns the review dialog, open before any wallet prompt."""
    page.locator("[data-buy-label]").click()
    review = page.locator(REVIEW)
    expect(review).to_be_visible()
    return review


def pay(page: Page) -> None:
    """Pays from the open review, then waits for the buyer's trades page (mined and indexed).
    A checkout error fails at once with its message instead of waiting for a navigation."""
    page.locator("[data-review-pay]").click()
    deadline = time.monotonic() + TX_TIMEOUT / 1000
    while "/trades" not in page.url:
        error = status_error(page)
        if error:
            pytest.fail(f"the checkout failed: {error}")
        if time.monotonic() > deadline:
            pytest.fail(f"no trades page after paying; still on {page.url}")
        page.wait_for_timeout(100)
    wait_for_tx(page)


def buy(page: Page, listing_id: int, amount_text: str) -> None:
    page.goto(f"/listings/{listing_id}")
    review = open_review(page)
    expect(review.locator('[data-review="amount"]')).to_have_text(amount_text)
    pay(page)


def cancel(page: Page) -> None:
    page.locator("[data-review-cancel]").click()
    expect(page.locator(REVIEW)).to_be_hidden()
    expect(page.locator("#tx-status")).to_contain_text("Purchase cancelled")


def view_shot(page: Page, name: str) -> None:
    """What the screen shows now (a modal dialog sits over the visible part of the page)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def assert_fits(page: Page, target: Locator | str) -> None:
    """``target`` lies within the viewport's width and does not scroll sideways."""
    locator = page.locator(target) if isinstance(target, str) else target
    viewport = page.viewport_size
    assert viewport is not None
    box = locator.bounding_box()
    assert box is not None, f"{target} is not shown"
    assert box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"] + 0.5, (
        f"{target} spans x={box['x']:.0f}..{box['x'] + box['width']:.0f} "
        f"on a {viewport['width']}px screen"
    )
    overflow = locator.evaluate("el => el.scrollWidth - el.clientWidth")
    assert overflow <= 0, f"{target} scrolls sideways by {overflow}px"
    page_width = page.evaluate("document.documentElement.scrollWidth")
    assert page_width <= viewport["width"], f"the page is {page_width}px wide"


def assert_review_readable(page: Page, review: Locator) -> None:
    """Every term is filled in; the title and both buttons are on screen without scrolling."""
    assert_fits(page, review)
    for key in (
        "title",
        "amount",
        "token",
        "seller",
        "arbitrator",
        "arbitrator_fee",
        "platform_fee",
        "ship_by",
        "delivery",
        "inspection",
        "hold_expires",
    ):
        text = review.locator(f'[data-review="{key}"]').inner_text().strip()
        assert text, f"the review shows no {key}"
    viewport = page.viewport_size
    assert viewport is not None
    for part in ("h2", "[data-review-pay]", "[data-review-cancel]"):
        box = review.locator(part).bounding_box()
        assert box is not None
        assert 0 <= box["y"] and box["y"] + box["height"] <= viewport["height"], (
            f"{part} is off screen at y={box['y']:.0f}"
        )
        assert box["x"] + box["width"] <= viewport["width"], f"{part} is cut off"


ALMATY = ZoneInfo("Asia/Almaty")


def hh_mm(value: datetime, zone: tzinfo = UTC) -> str:
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return aware.astimezone(zone).strftime("%H:%M")


# ---------------------------------------------------------------------------- 1. stale price


@WIDTHS
def test_stale_price_is_refused_then_paid_at_the_new_price(
    browser: Browser, stack: LocalStack, engine: Engine, mobile: bool
) -> None:
    width = width_name(mobile)
    seller, buyer = account(stack, 1), account(stack, PEOPLE[mobile].buyer)
    listing_id = new_listing(engine, seller, f"Kick scooter Ninebot E25 ({width})", ETH * 3 // 40)

    page = open_as(browser, stack, buyer, mobile=mobile)
    page.goto(f"/listings/{listing_id}")
    stale_buy = page.get_by_role("button", name="Buy with escrow · 0.075 ETH")
    expect(stale_buy).to_be_visible()

    # Meanwhile the seller raises the price, typing it with a decimal comma.
    seller_page = open_as(browser, stack, seller, mobile=mobile)
    seller_page.goto(f"/listings/{listing_id}/edit")
    seller_page.fill("#price", "7,5")
    with seller_page.expect_navigation():
        seller_page.get_by_role("button", name="Save").click()
    expect(seller_page.locator("[data-listing-price]")).to_have_text("7.5 ETH")
    seller_page.context.close()

    before = balance(stack, buyer)
    buy_posts: list[str] = []
    page.on(
        "request",
        lambda r: (
            buy_posts.append(r.url)
            if r.method == "POST" and r.url.endswith(f"/listings/{listing_id}/buy")
            else None
        ),
    )
    stale_buy.click()
    alert = page.locator("[data-price-changed]")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text("from 0.075 ETH to 7.5 ETH")
    expect(page.locator(REVIEW)).to_be_hidden()
    shot(page, f"checkout-1-price-changed-{width}")
    assert_fits(page, alert)
    # Nothing was held, signed or sent.
    assert holds_of(engine, listing_id) == []
    assert trades_of(engine, listing_id) == []
    assert balance(stack, buyer) == before

    alert.get_by_role("button", name="Continue at 7.5 ETH").click()
    expect(alert).to_have_count(0)
    expect(page.locator("[data-listing-price]")).to_have_text("7.5 ETH")
    new_buy = page.get_by_role("button", name="Buy with escrow · 7.5 ETH")
    expect(new_buy).to_be_visible()

    # A double click starts one checkout and opens one review.
    sent_before = len(buy_posts)
    new_buy.dblclick()
    review = page.locator(REVIEW)
    expect(review).to_be_visible()
    expect(review.locator('[data-review="amount"]')).to_have_text("7.5 ETH")
    expect(review.locator("[data-review-pay]")).to_have_text("Pay 7.5 ETH")
    page.wait_for_timeout(300)  # a second request would have gone out by now
    assert page.locator("dialog[open]").count() == 1
    assert len(buy_posts) - sent_before == 1, buy_posts
    assert len(holds_of(engine, listing_id)) == 1
    view_shot(page, f"checkout-1-review-{width}")
    assert_review_readable(page, review)

    pay(page)
    trade = the_trade(engine, listing_id, buyer)
    assert trade.amount == 75 * ETH // 10
    assert trade.token == ETH_TOKEN
    sent = paid_transaction(stack, engine, listing_id, buyer)
    assert sent["value"] == 75 * ETH // 10
    assert stack.chain is not None
    receipt = stack.chain.w3.eth.get_transaction_receipt(sent["hash"])
    assert before - balance(stack, buyer) == sent["value"] + (
        receipt["gasUsed"] * receipt["effectiveGasPrice"]
    )
    page.context.close()


# ---------------------------------------------------------------------------- 2. decimal comma


@WIDTHS
def test_price_typed_with_a_decimal_comma(
    browser: Browser, stack: LocalStack, engine: Engine, mobile: bool
) -> None:
    width = width_name(mobile)
    seller, buyer = account(stack, 2), account(stack, PEOPLE[mobile].second)
    title = f"Folding bike Stels Pilot 410 ({width})"

    page = open_as(browser, stack, seller, mobile=mobile)
    page.goto("/listings/new")
    page.fill("#title", title)
    page.fill("#description", "20-inch wheels, folds into a car boot.")
    page.select_option("#currency", "ETH")
    page.fill("#price", "1,5")
    page.select_option("#category", "bikes")
    page.fill("#city", "Karaganda")
    expect(page.locator("#price-understood")).to_contain_text("1.5 ETH")
    shot(page, f"checkout-2-sell-form-{width}")
    with page.expect_navigation():
        page.get_by_role("button", name="Publish").click()
    match = re.search(r"/listings/(\d+)$", page.url)
    assert match, page.url
    listing_id = int(match.group(1))
    expect(page.locator("[data-listing-price]")).to_have_text("1.5 ETH")
    with session_scope(engine) as session:
        assert (
            session.scalar(select(Listing.price).where(Listing.id == listing_id)) == 15 * ETH // 10
        )
    page.context.close()

    buyer_page = open_as(browser, stack, buyer, mobile=mobile)
    buyer_page.goto(f"/listings/{listing_id}")
    expect(buyer_page.locator("[data-listing-price]")).to_have_text("1.5 ETH")
    expect(buyer_page.locator("[data-buy-label]")).to_have_text("Buy with escrow · 1.5 ETH")
    shot(buyer_page, f"checkout-2-listing-{width}")
    buy(buyer_page, listing_id, "1.5 ETH")
    assert the_trade(engine, listing_id, buyer).amount == 15 * ETH // 10
    assert paid_transaction(stack, engine, listing_id, buyer)["value"] == 15 * ETH // 10
    buyer_page.context.close()


# ---------------------------------------------------------------------------- 3. holds


@WIDTHS
def test_hold_shown_to_others_and_cancel_frees_it(
    browser: Browser, stack: LocalStack, engine: Engine, mobile: bool
) -> None:
    width = width_name(mobile)
    people = PEOPLE[mobile]
    seller = account(stack, 3)
    leaver, second = account(stack, people.leaver), account(stack, people.second)
    title = f"Balance bike Puky LR M ({width})"
    listing_id = new_listing(engine, seller, title, ETH // 40)

    page = open_as(browser, stack, leaver, mobile=mobile)
    page.goto(f"/listings/{listing_id}")
    review = open_review(page)
    view_shot(page, f"checkout-3-review-{width}")
    assert_review_readable(page, review)
    hold = open_hold(engine, listing_id)
    until = f"{hh_mm(hold.expires_at, ALMATY)} (Almaty)"  # the market's default zone
    expect(review.locator('[data-review="hold_expires"]')).to_contain_text(until)

    # Another buyer sees the item on hold, on its page and on the market, and cannot buy it.
    other = open_as(browser, stack, second, mobile=mobile)
    other.goto(f"/listings/{listing_id}")
    badge = other.locator("[data-on-hold]")
    expect(badge).to_have_text(f"On hold until {until}")
    expect(other.locator("[data-buy-label]")).to_have_count(0)
    shot(other, f"checkout-3-on-hold-listing-{width}")
    assert_fits(other, badge)
    other.goto(f"/?q={title.split(' (')[0]}")
    card = other.locator(".listing-card", has_text=title)
    expect(card).to_contain_text(f"On hold until {until}")
    shot(other, f"checkout-3-on-hold-card-{width}")
    assert_fits(other, card)

    # The seller cannot change the price under the buyer's feet.
    seller_page = open_as(browser, stack, seller, mobile=mobile)
    seller_page.goto(f"/listings/{listing_id}/edit")
    seller_page.fill("#price", "0.5")
    seller_page.get_by_role("button", name="Save").click()
    expect(seller_page.locator(".field-error")).to_contain_text("cannot change")
    seller_page.context.close()
    with session_scope(engine) as session:
        assert session.scalar(select(Listing.price).where(Listing.id == listing_id)) == ETH // 40

    # Cancel lets the item go at once: the other buyer buys it.
    cancel(page)
    assert wait_hold_ended(engine, hold.id, timeout=0) == "refused"
    page.context.close()
    buy(other, listing_id, "0.025 ETH")
    the_trade(engine, listing_id, second)
    other.context.close()


@WIDTHS
def test_signing_out_or_closing_the_tab_frees_the_item(
    browser: Browser, stack: LocalStack, engine: Engine, mobile: bool
) -> None:
    width = width_name(mobile)
    people = PEOPLE[mobile]
    seller = account(stack, 3)
    leaver, second = account(stack, people.leaver), account(stack, people.second)
    signed_out = new_listing(engine, seller, f"Kids bike Forward 16 ({width})", ETH // 50)
    closed = new_listing(engine, seller, f"Bike trailer Thule ({width})", ETH // 20)
    other = open_as(browser, stack, second, mobile=mobile)

    # The buyer has the review open and signs out in another tab.
    page = open_as(browser, stack, leaver, mobile=mobile)
    page.goto(f"/listings/{signed_out}")
    open_review(page)
    hold = open_hold(engine, signed_out)
    tab = page.context.new_page()
    tab.goto("/trades")
    with tab.expect_navigation():
        tab.get_by_role("button", name="Sign out").click()
    assert wait_hold_ended(engine, hold.id, timeout=0) == "signed_out"
    buy(other, signed_out, "0.02 ETH")
    the_trade(engine, signed_out, second)
    page.context.close()

    # The buyer has the review open and closes the tab.
    page = open_as(browser, stack, leaver, mobile=mobile)
    page.goto(f"/listings/{closed}")
    open_review(page)
    hold = open_hold(engine, closed)
    page.close()
    assert wait_hold_ended(engine, hold.id) == "closed"
    buy(other, closed, "0.05 ETH")
    the_trade(engine, closed, second)
    other.context.close()


@WIDTHS
def test_buy_and_cancel_in_a_row_leaves_every_item_buyable(
    browser: Browser, stack: LocalStack, engine: Engine, mobile: bool
) -> None:
    width = width_name(mobile)
    people = PEOPLE[mobile]
    seller = account(stack, 3)
    canceller, second = account(stack, people.canceller), account(stack, people.second)
    listings = [
        new_listing(engine, seller, f"Bike lock Abus {n} ({width})", ETH // 100 * n)
        for n in (1, 2, 3)
    ]

    page = open_as(browser, stack, canceller, mobile=mobile)
    for listing_id in listings:
        page.goto(f"/listings/{listing_id}")
        open_review(page)
        hold = open_hold(engine, listing_id)
        cancel(page)
        assert wait_hold_ended(engine, hold.id, timeout=0) == "refused"
    page.context.close()

    other = open_as(browser, stack, second, mobile=mobile)
    for n, listing_id in enumerate(listings, start=1):
        buy(other, listing_id, f"0.0{n} ETH")
        the_trade(engine, listing_id, second)
    other.context.close()


# ---------------------------------------------------------------------------- 4. buy again


@WIDTHS
def test_buy_again_right_after_a_trade_ends(
    browser: Browser, stack: LocalStack, engine: Engine, mobile: bool
) -> None:
    assert stack.chain is not None
    width = width_name(mobile)
    seller, buyer = account(stack, 4), account(stack, PEOPLE[mobile].buyer)
    first = new_listing(engine, seller, f"Bike pump Topeak ({width})", ETH // 200)
    again = new_listing(engine, seller, f"Bike computer Garmin ({width})", ETH // 25)

    page = open_as(browser, stack, buyer, mobile=mobile)
    buy(page, first, "0.005 ETH")
    trade = the_trade(engine, first, buyer)
    page.goto(f"/trades/{trade.id}")
    act(page, "Confirm receipt")
    with session_scope(engine) as session:
        assert session.scalar(select(Trade.status).where(Trade.id == trade.id)) == "Released"
    ended_in = int(stack.chain.w3.eth.block_number)

    page.go_back()
    buy(page, again, "0.04 ETH")
    expect(page.locator("#tx-status")).not_to_contain_text("still being confirmed")
    assert the_trade(engine, again, buyer).amount == ETH // 25
    sent = paid_transaction(stack, engine, again, buyer)
    # The new trade was prepared while the first one's end was the latest block.
    assert sent["blockNumber"] == ended_in + 1
    shot(page, f"checkout-4-bought-again-{width}")
    page.context.close()


# ---------------------------------------------------------------------------- a hold that ran out


def test_pay_after_the_hold_ran_out_sends_nothing(
    browser: Browser, stack: LocalStack, engine: Engine
) -> None:
    """The review stays open longer than the hold (two minutes: here its end is moved into the
    past), another buyer buys the single item, then the first buyer presses Pay: nothing may be
    sent, or two buyers pay for one item."""
    seller, late, other = account(stack, 1), account(stack, 7), account(stack, 6)
    listing_id = new_listing(engine, seller, "Road bike Merida Scultura 400", ETH // 10)
    page = open_as(browser, stack, late)
    page.goto(f"/listings/{listing_id}")
    open_review(page)
    hold = open_hold(engine, listing_id)
    past = datetime.now(UTC) - timedelta(seconds=1)
    with session_scope(engine) as session:
        session.execute(
            update(CheckoutHold).where(CheckoutHold.id == hold.id).values(expires_at=past)
        )
        session.execute(update(Listing).where(Listing.id == listing_id).values(reserved_until=past))
    other_page = open_as(browser, stack, other)
    buy(other_page, listing_id, "0.1 ETH")
    other_page.context.close()

    before = balance(stack, late)
    page.locator("[data-review-pay]").click()
    deadline = time.monotonic() + 20
    while "/trades" not in page.url and not status_error(page) and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    shot(page, "checkout-5-pay-after-hold-ended-desktop")
    assert [t.buyer for t in trades_of(engine, listing_id)] == [other.lower()]
    assert balance(stack, late) == before
    page.context.close()
