"""Chat before buying in Chromium, at desktop and phone width, against the production stack: a
buyer asks about a listing (with a 200-character word), the seller, reading in Kazakh, sees the
unread count and replies with a fake delivery link, and the buyer, reading in Russian, sees the
link masked behind a warning in Russian, reveals it on purpose as plain text, never a link.

Screenshots go to build/screenshots/ (``msg-*``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from babel.support import Translations
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select
from sqlalchemy.engine import Engine
from test_e2e_browser import TX_TIMEOUT, shot

from escrow.db.engine import make_engine, session_scope
from escrow.db.models import Listing, User
from webapp.i18n import TRANSLATIONS_DIR
from webapp.stack import LocalStack

pytestmark = pytest.mark.e2e

WIDTHS = pytest.mark.parametrize("mobile", [False, True], ids=["desktop", "phone"])
ASKS = {"kk": "kk-KZ,kk;q=0.9", "ru": "ru-RU,ru;q=0.9", "en": "en-US,en;q=0.9"}
#: The buyer at each width (8 and 9 are the demo arbitrators).
BUYER = {False: 5, True: 6}
LONG_WORD = "Ұ" + "қ" * 198 + "!"
SCAM = "Жеткізу ақысын мына сілтеме арқылы төлеңіз: olx-kz.delivery-pay.com/pay"
_CATALOGUES = {lang: Translations.load(str(TRANSLATIONS_DIR), [lang], "messages") for lang in ASKS}


def t(lang: str, message: str) -> str:
    text = _CATALOGUES[lang].gettext(message) if lang != "en" else message
    assert lang == "en" or text != message, f"{message!r} has no {lang} translation"
    return text


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack(tmp_path_factory.mktemp("e2e-messages"), quiet=True, workers=1) as running:
        yield running


@pytest.fixture(scope="module")
def engine(stack: LocalStack) -> Iterator[Engine]:
    made = make_engine(stack.database_url)
    yield made
    made.dispose()


def open_as(browser: Browser, stack: LocalStack, address: str, lang: str, mobile: bool) -> Page:
    """A fresh profile whose browser asks for ``lang``, signed in with the dev wallet."""
    viewport = {"width": 390, "height": 844} if mobile else {"width": 1280, "height": 900}
    context = browser.new_context(
        viewport=viewport, base_url=stack.url, extra_http_headers={"Accept-Language": ASKS[lang]}
    )
    context.set_default_timeout(TX_TIMEOUT)
    page = context.new_page()
    page.goto("/auth/signin")
    page.wait_for_selector(f'#dev-account option[value="{address.lower()}"]', state="attached")
    page.select_option("#dev-account", value=address.lower())
    page.click("button[data-signin]:not([data-use-injected])")
    page.wait_for_selector("form[action='/auth/logout'] button")
    return page


def listing_to_ask(engine: Engine, buyer: str) -> tuple[int, str]:
    """An active seeded listing the buyer did not put up, and its seller's address."""
    with session_scope(engine) as session:
        row = session.execute(
            select(Listing.id, User.address)
            .join(User, Listing.seller_id == User.id)
            .where(Listing.status == "active", User.address != buyer.lower())
            .order_by(Listing.id)
        ).first()
    assert row is not None, "the seed has no active listing"
    return int(row[0]), str(row[1])


def fits(page: Page) -> None:
    viewport = page.viewport_size
    assert viewport is not None
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= viewport["width"], f"{page.url} is {width}px wide on {viewport['width']}px"


@WIDTHS
def test_buyer_asks_seller_replies_scam_link_masked(
    browser: Browser, stack: LocalStack, engine: Engine, mobile: bool
) -> None:
    assert stack.chain is not None
    buyer = stack.chain.accounts[BUYER[mobile]]
    listing, seller = listing_to_ask(engine, buyer)
    width = "phone" if mobile else "desktop"
    # Each width has its own buyer, so its own conversation about the same listing.

    # The buyer (English) asks on the listing page.
    buyer_page = open_as(browser, stack, buyer, "en", mobile)
    buyer_page.goto(f"/listings/{listing}")
    form = buyer_page.locator("[data-ask-form]")
    expect(form).to_be_visible()
    form.locator("textarea").fill(f"Hello! Is it still for sale? {LONG_WORD}")
    fits(buyer_page)
    shot(buyer_page, f"msg-{width}-0-listing-ask")
    with buyer_page.expect_navigation():
        form.get_by_role("button", name="Send to the seller").click()
    assert "/messages/" in buyer_page.url
    conversation_url = buyer_page.url.split("#")[0]
    expect(buyer_page.locator(".chat-message")).to_have_count(1)
    fits(buyer_page)
    shot(buyer_page, f"msg-{width}-1-buyer-asked")

    # The seller (Kazakh) sees one unread message, opens the inbox and replies with a scam.
    seller_page = open_as(browser, stack, seller, "kk", mobile)
    expect(seller_page.locator("[data-unread-total]")).to_have_text("1")
    if mobile:  # on a phone the links are behind the menu button
        seller_page.click(".menu-toggle")
    seller_page.click("[data-messages-link]")
    expect(seller_page.locator("h1")).to_have_text(t("kk", "Messages"))
    fits(seller_page)
    shot(seller_page, f"msg-{width}-2-seller-inbox")
    seller_page.locator(".inbox-row a").first.click()
    expect(seller_page.locator("[data-unread-total]")).to_have_count(0)
    seller_page.fill("#reply textarea", SCAM)
    with seller_page.expect_navigation():
        seller_page.get_by_role("button", name=t("kk", "Send")).click()
    # The seller's own view warns in Kazakh too.
    expect(seller_page.locator(".phishing-warning").last).to_contain_text(
        t("kk", "Careful: this message may be a scam.")
    )
    fits(seller_page)
    shot(seller_page, f"msg-{width}-3-seller-replied")

    # The buyer now reads in Russian: the link is masked behind a Russian warning.
    buyer_page.context.set_extra_http_headers({"Accept-Language": ASKS["ru"]})
    buyer_page.goto("/messages")
    expect(buyer_page.locator("[data-unread-total]")).to_have_text("1")
    buyer_page.goto(conversation_url)
    warning = buyer_page.locator(".phishing-warning")
    expect(warning).to_contain_text(t("ru", "Careful: this message may be a scam."))
    masked = buyer_page.locator(".masked")
    expect(masked).to_contain_text(t("ru", "link to another site"))
    expect(buyer_page.locator("main")).not_to_contain_text("delivery-pay")
    assert buyer_page.locator("main a[href*='delivery-pay']").count() == 0
    fits(buyer_page)
    shot(buyer_page, f"msg-{width}-4-buyer-sees-masked")

    # A deliberate click shows the address, as plain text.
    masked.get_by_role("button", name=t("ru", "Show")).click()
    expect(masked.locator(".revealed")).to_have_text("olx-kz.delivery-pay.com/pay")
    assert buyer_page.locator("main a[href*='delivery-pay']").count() == 0
    fits(buyer_page)
    shot(buyer_page, f"msg-{width}-5-buyer-revealed")


def test_without_javascript_the_link_stays_masked(
    browser: Browser, stack: LocalStack, engine: Engine
) -> None:
    """The seller's view of the desktop conversation, with scripts off: no Show button."""
    with session_scope(engine) as session:
        buyer = session.scalar(
            select(User.address).where(User.address == stack.chain.accounts[BUYER[False]].lower())
        )
    assert buyer, "run after the desktop conversation"
    context = browser.new_context(java_script_enabled=False, base_url=stack.url)
    page = context.new_page()
    # Without scripts the dev wallet cannot sign in: read the page as served to the buyer by
    # signing in with scripts on, then reloading the same session with them off.
    signed = open_as(browser, stack, buyer, "en", False)
    cookies = signed.context.cookies()
    signed.context.close()
    context.add_cookies(cookies)
    page.goto("/messages")
    page.locator(".inbox-row a").first.click()
    masked = page.locator(".masked")
    expect(masked).to_contain_text("link to another site")
    expect(masked.locator("button")).to_be_hidden()
    expect(page.locator("main")).not_to_contain_text("delivery-pay")
    context.close()
