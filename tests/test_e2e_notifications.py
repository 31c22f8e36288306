"""Notifications in Chromium at desktop (1280x900) and phone (390x844) width against the
production stack (gunicorn, anvil, the indexer, the notifier process): the seller's header count
rises while their page stays open when a buyer pays; the buyer's trade page shows the seller's
shipping without a reload; a buyer who is typing is not interrupted but offered a reload.

The stack's notifier runs every second; the test also calls ``run_once`` on the stack's
database, as the indexer is driven elsewhere, so that nothing waits for its next pass.
Screenshots go to /tmp/notify/ (``notify-*``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from test_e2e_browser import TX_TIMEOUT, act, open_as, trade_status
from test_e2e_checkout import buy, new_listing

from escrow.db.engine import make_engine
from escrow.db.models import Notification, Trade
from webapp.notify import run_once
from webapp.stack import LocalStack

pytestmark = pytest.mark.e2e

SHOTS = Path("/tmp/notify")
WIDTHS = pytest.mark.parametrize("mobile", [False, True], ids=["desktop", "phone"])
#: Seeded accounts (1-4 sellers, 5-7 buyers): each width has its own pair.
PAIRS = {False: (3, 7), True: (4, 5)}
#: live.js polls every 5 s; a change shows within two polls.
LIVE_TIMEOUT = 15_000


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack(
        tmp_path_factory.mktemp("e2e-notify"),
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


def notify_now(engine: Engine) -> None:
    with Session(engine) as session:
        run_once(session)


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def bell_count(page: Page) -> int:
    badge = page.locator("[data-notifications-count]")
    return int(badge.inner_text() or 0) if badge.is_visible() else 0


def open_menu(page: Page, mobile: bool) -> None:
    """On a phone the navigation (with the bell) is behind the menu button."""
    if mobile and page.locator(".menu-toggle").get_attribute("aria-expanded") != "true":
        page.locator(".menu-toggle").click()


def mark_page(page: Page) -> None:
    """A value that only survives while the page is not reloaded."""
    page.evaluate("window.__sameDocument = 'yes'")


def same_document(page: Page) -> bool:
    return bool(page.evaluate("window.__sameDocument === 'yes'"))


def fits(page: Page) -> None:
    viewport = page.viewport_size
    assert viewport is not None
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= viewport["width"], f"{page.url} is {width}px wide on {viewport['width']}px"


@WIDTHS
def test_seller_is_told_live_and_the_buyers_trade_page_follows(
    browser: Browser, stack: LocalStack, engine: Engine, mobile: bool
) -> None:
    assert stack.chain is not None
    width = "phone" if mobile else "desktop"
    seller, buyer = (stack.chain.accounts[i] for i in PAIRS[mobile])
    title = f"Түйе жүнінен көрпе {width} " + "ұзынсөз" * 12
    listing_id = new_listing(engine, seller, title, 10**16)

    # The seller looks at the market; their count is whatever it is now.
    seller_page = open_as(browser, stack, seller, mobile=mobile)
    seller_page.goto("/")
    notify_now(engine)
    seller_page.reload()
    before = bell_count(seller_page)
    mark_page(seller_page)

    # The buyer pays in their own browser.
    buyer_page = open_as(browser, stack, buyer, mobile=mobile)
    buy(buyer_page, listing_id, "0.01 ETH")
    notify_now(engine)
    with Session(engine) as session:
        trade = session.scalars(select(Trade).where(Trade.listing_id == listing_id)).one()
        sold = session.scalars(
            select(Notification).where(
                Notification.trade_id == trade.id, Notification.kind == "sold"
            )
        ).all()
        assert [n.recipient for n in sold] == [seller.lower()]
    trade_pk = trade.id

    # Without reloading, the seller's header shows one more.
    badge = seller_page.locator("[data-notifications-count]")
    expect(badge).to_have_text(str(before + 1), timeout=LIVE_TIMEOUT)
    assert same_document(seller_page)
    link = seller_page.locator("[data-notifications-link]")
    assert link.get_attribute("aria-label") == f"Notifications, {before + 1} unread"
    open_menu(seller_page, mobile)
    fits(seller_page)
    shot(seller_page, f"notify-{width}-1-seller-count-rose")

    # The centre lists the sale first, unread, and leads to the trade.
    seller_page.goto("/notifications")
    first = seller_page.locator("[data-notification]").first
    expect(first).to_contain_text("You sold")
    expect(first).to_have_attribute("data-unread", "")
    fits(seller_page)
    shot(seller_page, f"notify-{width}-2-centre")
    with seller_page.expect_navigation():
        first.locator("a").click()
    assert re.search(rf"/trades/{trade_pk}$", seller_page.url)

    # The buyer keeps the trade page open; the seller ships in their browser.
    buyer_page.goto(f"/trades/{trade_pk}")
    expect(buyer_page.locator("h1 .badge")).to_have_text("Funded")
    mark_page(buyer_page)
    act(seller_page, "Mark as shipped")
    notify_now(engine)
    expect(buyer_page.locator("h1 .badge")).to_have_text("Shipped", timeout=LIVE_TIMEOUT)
    assert same_document(buyer_page)
    expect(buyer_page.locator("[data-live-announce]")).to_have_text("This trade was updated.")
    expect(buyer_page.locator("[data-notifications-count]")).not_to_have_text(
        "0", timeout=LIVE_TIMEOUT
    )
    fits(buyer_page)
    shot(buyer_page, f"notify-{width}-3-buyer-page-updated")

    # The updated page's actions work: the wallet binds the new buttons, or the first click
    # reloads the page, where they are bound.
    act(buyer_page, "Confirm receipt")
    if trade_status(stack, trade_pk) != "Released":
        act(buyer_page, "Confirm receipt")
    assert trade_status(stack, trade_pk) == "Released"


@WIDTHS
def test_a_buyer_who_is_typing_is_offered_a_reload_instead(
    browser: Browser, stack: LocalStack, engine: Engine, mobile: bool
) -> None:
    assert stack.chain is not None
    width = "phone" if mobile else "desktop"
    seller, buyer = (stack.chain.accounts[i] for i in PAIRS[mobile])
    listing_id = new_listing(engine, seller, f"Kettle {width}", 10**16)
    buyer_page = open_as(browser, stack, buyer, mobile=mobile)
    buy(buyer_page, listing_id, "0.01 ETH")
    with Session(engine) as session:
        trade_pk = session.scalars(select(Trade.id).where(Trade.listing_id == listing_id)).one()
    buyer_page.goto(f"/trades/{trade_pk}")
    box = buyer_page.locator("main textarea").first
    box.fill("Could you wrap it well, please?")
    mark_page(buyer_page)

    seller_page = open_as(browser, stack, seller, mobile=mobile)
    seller_page.goto(f"/trades/{trade_pk}")
    act(seller_page, "Mark as shipped")
    notice = buyer_page.locator("[data-live-stale]")
    expect(notice).to_contain_text("This trade has changed.", timeout=LIVE_TIMEOUT)
    # Nothing the buyer wrote was lost, and the page was not replaced.
    assert same_document(buyer_page)
    expect(box).to_have_value("Could you wrap it well, please?")
    expect(buyer_page.locator("h1 .badge")).to_have_text("Funded")
    fits(buyer_page)
    shot(buyer_page, f"notify-{width}-4-typing-offered-reload")
    with buyer_page.expect_navigation(timeout=TX_TIMEOUT):
        notice.get_by_role("button", name="Reload").click()
    expect(buyer_page.locator("h1 .badge")).to_have_text("Shipped")


@WIDTHS
def test_email_settings_refuse_a_bad_address_then_save(
    browser: Browser, stack: LocalStack, mobile: bool
) -> None:
    assert stack.chain is not None
    width = "phone" if mobile else "desktop"
    seller, _buyer = (stack.chain.accounts[i] for i in PAIRS[mobile])
    page = open_as(browser, stack, seller, mobile=mobile)
    page.goto("/notifications/settings")
    # The stack sends no e-mail (no SMTP server): the page says so.
    expect(page.locator("[data-mail-off]")).to_be_visible()
    page.fill("#email", "seller at example dot kz")
    page.check("input[name=email_enabled]")
    with page.expect_navigation():
        page.get_by_role("button", name="Save").click()
    error = page.locator("#email-error")
    expect(error).to_contain_text("is not an e-mail address")
    expect(page.locator("#email")).to_have_value("seller at example dot kz")
    fits(page)
    shot(page, f"notify-{width}-5-settings-refused")
    page.fill("#email", "seller@example.kz")
    with page.expect_navigation():
        page.get_by_role("button", name="Save").click()
    expect(page.locator(".flash")).to_contain_text("Your notification settings are saved.")
    expect(page.locator("#email")).to_have_value("seller@example.kz")
    expect(page.locator("input[name=email_enabled]")).to_be_checked()
    fits(page)
    shot(page, f"notify-{width}-6-settings-saved")
