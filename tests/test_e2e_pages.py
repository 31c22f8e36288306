"""The listing, trade, case and arbitrator pages in Chromium at 1280x900 and 390x844, against the
production stack (gunicorn, anvil, the indexer; no keeper, so that a visitor sends the due
timeout): the terms stated before buying, parties named with links to their profiles, the fees
in the outcome, no page wider than a phone, a visitor refunding a trade whose seller missed the
ship-by date (and a stale tab told why not), and a message sent from the case file staying there.

Screenshots go to /tmp/pages/ (``pages-*``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect
from sqlalchemy import select
from sqlalchemy.engine import Engine

from escrow.client import EscrowClient, Funded
from escrow.db.engine import make_engine, session_scope
from escrow.db.models import Listing, Trade, User
from webapp.stack import LocalStack

pytestmark = pytest.mark.e2e

SHOTS = Path("/tmp/pages")
TX_TIMEOUT = 60_000
DAY = 24 * 3600
#: A one-pixel PNG: an evidence photo.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)
WIDTHS = pytest.mark.parametrize("mobile", [False, True], ids=["desktop", "phone"])
#: The buyer at each width (accounts 1-7 are the demo's people, 8 and 9 its arbitrators).
BUYER = {False: 5, True: 6}
VISITOR = {False: 3, True: 4}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack(
        tmp_path_factory.mktemp("e2e-pages"),
        quiet=True,
        workers=1,
        keeper=False,
        # These tests move chain time and look at the page at once.
        extra_env={"ESCROW_CHAIN_TIME_CACHE_MS": "0"},
    ) as running:
        yield running


@pytest.fixture(scope="module")
def engine(stack: LocalStack) -> Iterator[Engine]:
    made = make_engine(stack.database_url)
    yield made
    made.dispose()


def shot(page: Page, name: str, mobile: bool) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    width = "phone" if mobile else "desktop"
    page.screenshot(path=str(SHOTS / f"pages-{name}-{width}.png"), full_page=True)


def open_as(browser: Browser, stack: LocalStack, address: str, mobile: bool) -> Page:
    """A fresh profile signed in with the dev wallet as ``address``; dialogs are accepted."""
    viewport: ViewportSize = (
        {"width": 390, "height": 844} if mobile else {"width": 1280, "height": 900}
    )
    context = browser.new_context(
        viewport=viewport, base_url=stack.url, extra_http_headers={"Accept-Language": "en"}
    )
    context.set_default_timeout(TX_TIMEOUT)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto("/auth/signin")
    page.wait_for_selector(f'#dev-account option[value="{address.lower()}"]', state="attached")
    page.select_option("#dev-account", value=address.lower())
    page.click("button[data-signin]:not([data-use-injected])")
    page.wait_for_selector("form[action='/auth/logout'] button")
    return page


def assert_no_overflow(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    viewport = page.viewport_size
    assert viewport is not None
    assert width <= viewport["width"], f"{page.url} is {width}px wide on {viewport['width']}px"
    # Two-column tables of terms fit their box too: nothing hidden behind a scroll bar.
    hidden = page.evaluate(
        """() => [...document.querySelectorAll('.table-scroll')]
            .filter((box) => box.querySelector('table.terms-table'))
            .filter((box) => box.scrollWidth > box.clientWidth + 1).length"""
    )
    assert hidden == 0, f"{page.url}: a terms table is wider than its box"


def account(stack: LocalStack, index: int) -> str:
    assert stack.chain is not None
    return str(stack.chain.accounts[index])


def client_of(stack: LocalStack) -> EscrowClient:
    assert stack.chain is not None and stack.deployment is not None
    return stack.deployment.client(stack.chain)


def listing_of_another(engine: Engine, buyer: str, currency: str = "ETH") -> tuple[int, str]:
    with session_scope(engine) as session:
        row = session.execute(
            select(Listing.id, User.address)
            .join(User, Listing.seller_id == User.id)
            .where(
                Listing.status == "active",
                Listing.currency == currency,
                Listing.quantity > 1,
                User.address != buyer.lower(),
            )
            .order_by(Listing.id)
        ).first()
        if row is None:
            row = session.execute(
                select(Listing.id, User.address)
                .join(User, Listing.seller_id == User.id)
                .where(
                    Listing.status == "active",
                    Listing.currency == currency,
                    User.address != buyer.lower(),
                )
                .order_by(Listing.id.desc())
            ).first()
    assert row is not None, f"the seed has no active {currency} listing"
    return int(row[0]), str(row[1])


def fund(stack: LocalStack, buyer: str, seller: str, *, ship_within: int = 5 * DAY) -> Funded:
    """A trade paid on chain by ``buyer`` (as the Buy button's transaction would)."""
    assert stack.chain is not None and stack.deployment is not None
    client = client_of(stack)
    return client.fund(
        seller=seller,
        arbitrator=stack.deployment.arbitrators[-1],
        amount=10**16,
        ship_by=stack.chain.latest_timestamp() + ship_within,
        inspection_period=DAY,
        arbitrator_fee_bps=200,
        delivery_window=3 * DAY,
        sender=buyer,
    )


def trade_pk(stack: LocalStack, engine: Engine, funded: Funded) -> int:
    stack.wait_indexed()
    with session_scope(engine) as session:
        pk = session.scalar(select(Trade.id).where(Trade.onchain_id == funded.trade_id))
    assert pk is not None
    return int(pk)


def trade_status(engine: Engine, pk: int) -> str:
    with session_scope(engine) as session:
        return str(session.scalar(select(Trade.status).where(Trade.id == pk)))


@WIDTHS
def test_listing_page_states_the_terms(
    browser: Browser, stack: LocalStack, engine: Engine, mobile: bool
) -> None:
    buyer = account(stack, BUYER[mobile])
    listing_id, _ = listing_of_another(engine, buyer)
    page = open_as(browser, stack, buyer, mobile)
    page.goto(f"/listings/{listing_id}")
    terms = page.locator("[data-offer-terms]")
    expect(terms).to_be_visible()
    expect(terms.locator('[data-offer="currency"]')).to_contain_text("ETH (ether)")
    expect(terms.locator('[data-offer="ship-by"]')).to_contain_text("must ship within 5 days")
    expect(terms.locator('[data-offer="inspection"]')).to_contain_text("3 days from receipt")
    fee = terms.locator('[data-offer="platform-fee"]')
    expect(fee).to_contain_text(re.compile(r"1% of what the seller receives: [0-9.]+ ETH"))
    arbitrators = terms.locator('[data-offer="arbitrators"] a.party')
    assert arbitrators.count() == 2  # the demo's two arbitrators, by name
    assert all(not text.startswith("0x") for text in arbitrators.all_inner_texts()), (
        "arbitrators shown as bare addresses"
    )
    expect(terms.locator('[data-offer="arbitrators"]')).to_contain_text("cases ruled")
    assert_no_overflow(page)
    shot(page, "listing-terms", mobile)

    # A dollar listing names its token, marked as a test token on the local chain.
    usd_id, _ = listing_of_another(engine, buyer, "USD")
    page.goto(f"/listings/{usd_id}")
    token = page.locator('[data-offer="token"]')
    expect(token).to_have_text(re.compile(r"^0x[0-9a-fA-F]{40}$"))
    expect(page.locator('[data-offer="test-token"]')).to_be_visible()
    assert_no_overflow(page)
    shot(page, "listing-usd-terms", mobile)


@WIDTHS
def test_trade_page_names_parties_and_the_outcome_names_the_fees(
    browser: Browser, stack: LocalStack, engine: Engine, mobile: bool
) -> None:
    buyer = account(stack, BUYER[mobile])
    _, seller = listing_of_another(engine, buyer)
    funded = fund(stack, buyer, seller)
    pk = trade_pk(stack, engine, funded)
    page = open_as(browser, stack, buyer, mobile)
    page.goto(f"/trades/{pk}")
    seller_link = page.locator('[data-party="seller"] a.party')
    expect(seller_link).to_have_attribute("href", f"/u/{seller.lower()}")
    expect(seller_link).to_have_attribute("title", seller.lower())
    assert not seller_link.inner_text().startswith("0x"), "the seeded seller has a name"
    expect(page.locator('[data-party="arbitrator"] a.party')).to_be_visible()
    assert_no_overflow(page)
    shot(page, "trade-funded", mobile)

    # The buyer confirms receipt: the outcome line names the platform fee.
    with page.expect_navigation(timeout=TX_TIMEOUT):
        page.get_by_role("button", name="Confirm receipt").click()
    page.wait_for_load_state("networkidle")
    assert trade_status(engine, pk) == "Released"
    page.goto(f"/trades/{pk}")
    outcome = page.locator("[data-outcome]")
    expect(outcome).to_contain_text(
        re.compile(r"Buyer received 0 ETH, seller [0-9.]+ ETH, platform fee [0-9.]+ ETH")
    )
    assert_no_overflow(page)
    shot(page, "trade-released", mobile)
    # The link goes to the seller's profile.
    page.locator('[data-party="seller"] a.party').click()
    page.wait_for_url(f"**/u/{seller.lower()}")


@WIDTHS
def test_a_visitor_refunds_a_trade_past_its_ship_by_date(
    browser: Browser, stack: LocalStack, engine: Engine, mobile: bool
) -> None:
    assert stack.chain is not None
    buyer = account(stack, BUYER[mobile])
    _, seller = listing_of_another(engine, buyer)
    funded = fund(stack, buyer, seller, ship_within=DAY)
    pk = trade_pk(stack, engine, funded)
    stale = fund(stack, buyer, seller, ship_within=DAY)
    stale_pk = trade_pk(stack, engine, stale)
    visitor = open_as(browser, stack, account(stack, VISITOR[mobile]), mobile)
    visitor.goto(f"/trades/{pk}")
    expect(visitor.locator("[data-visitor]")).to_be_visible()
    refund = visitor.get_by_role("button", name="Refund after missed deadline")
    expect(refund).to_have_count(0)  # not due yet
    expect(visitor.locator("#messages")).to_have_count(0)

    stack.chain.increase_time(DAY + 60)
    stack.wait_indexed()
    visitor.goto(f"/trades/{pk}")
    expect(refund).to_be_visible()
    assert_no_overflow(visitor)
    shot(visitor, "visitor-timeout-due", mobile)
    with visitor.expect_navigation(timeout=TX_TIMEOUT):
        refund.click()
    visitor.wait_for_load_state("networkidle")
    assert trade_status(engine, pk) == "Refunded"
    expect(visitor.locator("[data-outcome]")).to_contain_text("Buyer received")

    # A stale tab: somebody else refunded the second trade after the page was shown.
    visitor.goto(f"/trades/{stale_pk}")
    expect(refund).to_be_visible()
    client = client_of(stack)
    terms, _ = client.terms_of(stale.trade_id)
    client.refund_after_deadline(stale.trade_id, terms, sender=buyer)
    stack.wait_indexed()
    refund.click()
    error = visitor.locator("#tx-status.error")
    expect(error).to_contain_text("not possible now")
    shot(visitor, "visitor-stale-tab", mobile)


@WIDTHS
def test_case_file_message_stays_and_pages_fit_a_phone(
    browser: Browser, stack: LocalStack, engine: Engine, mobile: bool, tmp_path: Path
) -> None:
    assert stack.deployment is not None
    buyer = account(stack, BUYER[mobile])
    _, seller = listing_of_another(engine, buyer)
    funded = fund(stack, buyer, seller)
    client = client_of(stack)
    terms, _ = client.terms_of(funded.trade_id)
    client.open_dispute(funded.trade_id, terms, sender=buyer)
    pk = trade_pk(stack, engine, funded)
    judge = open_as(browser, stack, stack.deployment.arbitrators[-1], mobile)
    judge.goto(f"/arbitration/{pk}")
    expect(judge.locator('[data-party="buyer"] a.party')).to_be_visible()
    judge.fill("#messages textarea[name=body]", "Please both send photos of the item.")
    with judge.expect_navigation():
        judge.locator("#messages button[type=submit]").click()
    assert re.search(rf"/arbitration/{pk}(#messages)?$", judge.url), judge.url
    expect(judge.locator("#messages")).to_contain_text("Please both send photos of the item.")
    # "(arbitrator)" stays on one line.
    role = judge.locator("#messages .party-role").last
    box = role.bounding_box()
    assert box is not None
    line = judge.evaluate(
        "el => parseFloat(getComputedStyle(el).lineHeight) || 20", role.element_handle()
    )
    assert box["height"] <= line * 1.5, "the role breaks over lines"
    # The slider's caption takes at most two lines.
    caption = judge.locator(".split-caption")
    caption_box = caption.bounding_box()
    assert caption_box is not None
    caption_line = judge.evaluate(
        "el => parseFloat(getComputedStyle(el).lineHeight) || 20", caption.element_handle()
    )
    assert caption_box["height"] <= caption_line * 2.5
    assert_no_overflow(judge)
    shot(judge, "case-file", mobile)

    for path, name in (
        ("/arbitration", "arbitration-queue"),
        ("/trades", "trade-list"),
        ("/arbitrators", "arbitrators"),
        (f"/trades/{pk}", "trade-disputed"),
        (f"/u/{stack.deployment.arbitrators[-1].lower()}", "arbitrator-profile"),
    ):
        judge.goto(path)
        assert_no_overflow(judge)
        shot(judge, name, mobile)
    expect(judge.locator("[data-arbitration-figures]")).to_be_visible()

    # The buyer's evidence form on the disputed trade fits the phone too, and so do the
    # evidence lists once a file with a long name is in (a careless user's file name).
    buyer_page = open_as(browser, stack, buyer, mobile)
    buyer_page.goto(f"/trades/{pk}")
    expect(buyer_page.locator(".evidence-form")).to_be_visible()
    assert_no_overflow(buyer_page)
    photo = tmp_path / ("photo-of-the-cracked-screen-taken-at-pick-up-" * 3 + ".png")
    photo.write_bytes(PNG)
    buyer_page.set_input_files(".evidence-form input[type=file]", str(photo))
    buyer_page.fill(".evidence-form textarea[name=note]", "Cracked screen")
    with buyer_page.expect_navigation(timeout=TX_TIMEOUT):
        buyer_page.locator(".evidence-form button[type=submit]").click()
    buyer_page.wait_for_load_state("networkidle")
    expect(buyer_page.locator("#evidence table")).to_contain_text("photo-of-the-cracked")
    expect(buyer_page.locator("#evidence table .party-role")).to_have_text("(buyer)")
    assert_no_overflow(buyer_page)
    shot(buyer_page, "trade-evidence", mobile)
    judge.goto(f"/arbitration/{pk}")
    expect(judge.locator("[aria-labelledby=case-evidence-h] table")).to_contain_text(
        "photo-of-the-cracked"
    )
    assert_no_overflow(judge)
    shot(judge, "case-file-evidence", mobile)
