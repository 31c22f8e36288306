"""The market in a real browser: Debian's Chromium driven by Playwright against the production
stack (gunicorn, anvil, the indexer, SQLite), with the dev wallet signing for demo accounts.

Screenshots go to build/screenshots/.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from escrow.db.engine import make_engine, session_scope
from escrow.db.models import Listing, Trade
from webapp.stack import LocalStack

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "build" / "screenshots"
TX_TIMEOUT = 60_000  # ms: a transaction is mined and indexed within a second or two


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack(tmp_path_factory.mktemp("e2e"), quiet=True, workers=2) as running:
        yield running


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    # Photos below the fold load lazily, only when scrolled to: load them all for a
    # full-page picture.
    page.evaluate(
        """() => Promise.race([
             new Promise((done) => setTimeout(done, 5000)),
             Promise.all([...document.images].map((img) => {
               img.loading = 'eager';
               return img.complete ? null : new Promise((done) => {
                 img.addEventListener('load', done); img.addEventListener('error', done);
               });
             })),
           ])"""
    )
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def open_as(browser: Browser, stack: LocalStack, address: str, *, mobile: bool = False) -> Page:
    """A fresh browser profile, signed in with the dev wallet as ``address``."""
    viewport = {"width": 390, "height": 844} if mobile else {"width": 1280, "height": 900}
    context = browser.new_context(viewport=viewport, base_url=stack.url)
    context.set_default_timeout(TX_TIMEOUT)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto("/auth/signin")
    option = f'#dev-account option[value="{address.lower()}"]'
    page.wait_for_selector(option, state="attached")
    page.select_option("#dev-account", value=address.lower())
    page.click("button[data-signin]:not([data-use-injected])")
    page.wait_for_selector("text=Sign out")
    return page


def wait_for_tx(page: Page) -> None:
    """After an action the wallet script sends the transaction, waits until it is mined and
    indexed, then reloads or redirects; an error stays in the status line."""
    page.wait_for_load_state("load")
    page.wait_for_load_state("networkidle")
    status = page.locator("#tx-status.error")
    assert status.count() == 0 or not status.is_visible(), status.inner_text()


def act(page: Page, label: str) -> None:
    with page.expect_navigation(timeout=TX_TIMEOUT):
        page.get_by_role("button", name=label).click()
    wait_for_tx(page)


def trade_status(stack: LocalStack, trade_pk: int) -> str:
    engine = make_engine(stack.database_url)
    try:
        with session_scope(engine) as session:
            return str(session.scalar(select(Trade.status).where(Trade.id == trade_pk)))
    finally:
        engine.dispose()


def test_list_buy_ship_confirm_and_rate(browser: Browser, stack: LocalStack) -> None:
    assert stack.chain is not None
    seller, buyer = stack.chain.accounts[2], stack.chain.accounts[6]

    # The seller lists an item.
    page = open_as(browser, stack, seller)
    page.goto("/listings/new")
    page.fill("#title", "Trek Marlin 5 mountain bike")
    page.fill("#description", "Size M, serviced in October, new tyres.")
    page.fill("#price", "0.35")
    page.select_option("#currency", "ETH")
    page.select_option("#category", "bikes")
    page.fill("#city", "Almaty")
    page.fill("#delivery_days", "7")
    shot(page, "01-seller-new-listing")
    with page.expect_navigation():
        page.get_by_role("button", name="Publish").click()
    assert "/listings/" in page.url
    listing_url = page.url
    expect(page.locator("body")).to_contain_text("Trek Marlin 5")

    # The buyer finds it and pays into escrow with the dev wallet.
    buyer_page = open_as(browser, stack, buyer)
    buyer_page.goto("/?q=Trek")
    shot(buyer_page, "02-market-search")
    buyer_page.click("text=Trek Marlin 5 mountain bike")
    # The click returns once the listing page starts loading: wait for its text, not a snapshot
    # of a document still being parsed.
    expect(buyer_page.locator("body")).to_contain_text("delivery within 7 days after shipping")
    shot(buyer_page, "03-listing-page")
    buyer_page.get_by_role("button", name="Buy with escrow · 0.35 ETH").click()
    delivery = buyer_page.locator('[data-review="delivery"]')
    delivery.wait_for()
    assert delivery.inner_text().startswith("Seller promises delivery within 7 days")
    with buyer_page.expect_navigation(url="**/trades**", timeout=TX_TIMEOUT):
        buyer_page.click("[data-review-pay]")  # the review opens before the wallet
    wait_for_tx(buyer_page)
    buyer_page.click("a[href^='/trades/']")
    trade_url = buyer_page.url
    trade_pk = int(trade_url.rstrip("/").rsplit("/", 1)[1])
    assert trade_status(stack, trade_pk) == "Funded"
    shot(buyer_page, "04-trade-funded")

    # A second visitor sees the single item is gone.
    engine = make_engine(stack.database_url)
    with session_scope(engine) as session:
        status = session.scalar(select(Listing.status).where(Listing.title.like("Trek%")))
    engine.dispose()
    assert status == "sold"

    # The seller ships.
    page.goto(trade_url)
    page.fill("input[name=tracking]", "KZPOST RR123456789KZ")
    act(page, "Mark as shipped")
    assert trade_status(stack, trade_pk) == "Shipped"

    # The parcel arrives: the buyer starts the inspection and asks for two more days, which
    # the seller gives.
    buyer_page.goto(trade_url)
    assert "Delivery window ends" in buyer_page.content()
    shot(buyer_page, "05a-trade-shipped-buyer")
    act(buyer_page, "I received the item")
    assert "I received the item" not in buyer_page.content()
    buyer_page.select_option("select[name=extra_days]", "2")
    act(buyer_page, "Ask for more time to inspect")
    page.goto(trade_url)
    shot(page, "05b-trade-extension-asked-seller")
    act(page, "Give 2 more days")
    expect(page.locator("body")).to_contain_text("given by the seller")

    # The buyer confirms receipt: the seller is paid.
    buyer_page.goto(trade_url)
    act(buyer_page, "Confirm receipt")
    assert trade_status(stack, trade_pk) == "Released"
    shot(buyer_page, "05-trade-released")

    # Both rate each other.
    for rater_page, comment in (
        (buyer_page, "Bike exactly as described."),
        (page, "Quick payment, thanks!"),
    ):
        rater_page.goto(trade_url)
        rater_page.check("input[name=score][value='5']")
        rater_page.fill("textarea[name=comment]", comment)
        with rater_page.expect_navigation():
            rater_page.get_by_role("button", name="Send rating").click()
        assert comment in rater_page.content() or "rated" in rater_page.content().lower()
    page.goto(f"/u/{seller.lower()}")
    expect(page.locator("body")).to_contain_text("Bike exactly as described.")
    shot(page, "06-seller-profile")
    assert listing_url


def test_dispute_with_evidence_and_ruling(
    browser: Browser, stack: LocalStack, tmp_path: Path
) -> None:
    assert stack.chain is not None and stack.deployment is not None
    buyer = stack.chain.accounts[7]
    arbitrator = stack.deployment.arbitrators[0]
    engine = make_engine(stack.database_url)
    with session_scope(engine) as session:
        listing_id = session.scalar(
            select(Listing.id)
            .where(Listing.currency == "ETH", Listing.status == "active")
            .order_by(Listing.id)
        )
    engine.dispose()
    assert listing_id is not None

    page = open_as(browser, stack, buyer)
    page.goto(f"/listings/{listing_id}")
    page.get_by_role("button", name="Buy with escrow").click()
    with page.expect_navigation(url="**/trades**", timeout=TX_TIMEOUT):
        page.click("[data-review-pay]")
    wait_for_tx(page)
    page.click("a[href^='/trades/']")
    trade_url = page.url
    trade_pk = int(trade_url.rstrip("/").rsplit("/", 1)[1])

    # The buyer opens a dispute with a statement, then adds a photo as evidence.
    page.fill("textarea[name=statement]", "The screen is cracked, the listing said mint.")
    act(page, "Open a dispute")
    assert trade_status(stack, trade_pk) == "Disputed"
    photo = tmp_path / "cracked-screen.png"
    photo.write_bytes(
        bytes.fromhex(
            "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
            "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
        )
    )
    page.set_input_files("input[type=file][name=file]", str(photo))
    page.fill("textarea[name=note]", "Photo taken at pick-up.")
    act(page, "Add evidence")
    expect(page.locator("body")).to_contain_text("cracked-screen.png")
    shot(page, "07-dispute-evidence")

    # The arbitrator reviews the case and rules 70% to the buyer.
    judge = open_as(browser, stack, arbitrator)
    judge.goto("/arbitration")
    shot(judge, "08-arbitration-queue")
    judge.click(f"a[href='/arbitration/{trade_pk}']")
    judge.wait_for_url(f"**/arbitration/{trade_pk}")
    judge.wait_for_selector("#buyer-percent")
    judge.eval_on_selector(
        "#buyer-percent", "el => { el.value = 70; el.dispatchEvent(new Event('input')); }"
    )
    shot(judge, "09-arbitration-case")
    act(judge, "Rule")
    assert trade_status(stack, trade_pk) == "Resolved"
    page.goto(trade_url)
    shot(page, "10-trade-resolved")


def test_phone_width_market(browser: Browser, stack: LocalStack) -> None:
    assert stack.chain is not None
    page = open_as(browser, stack, stack.chain.accounts[5], mobile=True)
    page.goto("/")
    assert page.locator(".listing-card").count() > 0
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width}px wide on a 390px screen"
    shot(page, "11-phone-market")
