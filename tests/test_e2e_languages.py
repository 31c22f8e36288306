"""The market in Kazakh, Russian and English in a real browser (Debian's Chromium, Playwright)
against the production stack, like test_e2e_browser.py and test_e2e_checkout.py.

* A whole trade in Kazakh and in tenge, at desktop (1280) and phone (390) width: the seller's
  browser asks for Kazakh (``Accept-Language: kk``), the buyer picks Қазақша with the switch in
  the header; the price is typed as ``1 234 567,50``, paid in tKZT with a permit signed by the
  dev wallet, shipped, confirmed and rated on both sides.
* A dispute in Russian (the default for a browser that asks for none of our languages): the
  buyer opens it, the arbitrator rules.
* The switch at phone width, the language a browser asks for, and stale or hostile posts to
  ``/lang`` (a 400 page in the visitor's language, never a 500).

Button texts come from the catalogues themselves (``webapp/translations``), so a test fails
when a page shows the English text instead of its translation. Screenshots go to
build/screenshots/lang-*.png; the README's are copied to docs/screenshots/.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from babel.support import Translations
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select
from sqlalchemy.engine import Engine
from test_e2e_browser import SHOTS, TX_TIMEOUT, act, shot, trade_status
from test_e2e_checkout import (
    account,
    assert_fits,
    assert_review_readable,
    open_review,
    pay,
    view_shot,
    width_name,
)

from escrow.db.engine import make_engine, session_scope
from escrow.db.models import Listing, Trade, User
from webapp.i18n import LANGUAGES, TRANSLATIONS_DIR
from webapp.stack import LocalStack

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
DOCS_SHOTS = ROOT / "docs" / "screenshots"
WIDTHS = pytest.mark.parametrize("mobile", [False, True], ids=["desktop", "phone"])
NBSP = "\u00a0"
#: Letters only Kazakh has among the Cyrillic alphabets (docs/glossary.md).
KAZAKH_LETTERS = re.compile("[әғқңөұүһіӘҒҚҢӨҰҮҺІ]")
CYRILLIC = re.compile("[а-яё]", re.IGNORECASE)
#: Accept-Language headers: what a browser set to each language sends.
ASKS = {
    "kk": "kk-KZ,kk;q=0.9",
    "ru": "ru-RU,ru;q=0.9",
    "en": "en-US,en;q=0.9",
    "none of ours": "de-DE,de;q=0.9,fr;q=0.8",
}
#: (seller, buyer) indices into the dev chain's accounts for the Kazakh trade at each width,
#: and the buyer of the Russian dispute (8 and 9 are arbitrators; the first one rules).
KK_PEOPLE = {False: (1, 5), True: (2, 6)}
RU_BUYER = {False: 7, True: 3}
#: The Kazakh trade's price: typed as a Kazakh seller types it, stored in tiyn.
PRICE_TYPED = "1 234 567,50"
PRICE_UNITS = 123_456_750
PRICE_SHOWN = f"1{NBSP}234{NBSP}567,50{NBSP}₸"


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack(
        tmp_path_factory.mktemp("e2e-languages"),
        quiet=True,
        workers=2,
        extra_env={
            "ESCROW_SIGNIN_RATE_LIMIT": "120 per minute",
            "ESCROW_TENGE_PER_ETH": "1500000",
            "ESCROW_TENGE_PER_USD": "500",
            "ESCROW_TENGE_RATE_DATE": "2026-11-30",
        },
    ) as running:
        yield running


@pytest.fixture(scope="module")
def engine(stack: LocalStack) -> Iterator[Engine]:
    made = make_engine(stack.database_url)
    yield made
    made.dispose()


# ---------------------------------------------------------------------------- helpers

_CATALOGUES = {
    lang: Translations.load(str(TRANSLATIONS_DIR), [lang], "messages") for lang in LANGUAGES
}


def t(lang: str, message: str, **params: object) -> str:
    """``message`` as the catalogue of ``lang`` translates it (English: itself). A Kazakh or
    Russian text that is missing from its catalogue fails the test rather than matching the
    English on the page."""
    text = _CATALOGUES[lang].gettext(message) if lang != "en" else message
    if lang != "en":
        assert text != message, f"{message!r} has no {lang} translation"
    return text % params if params else text


def visitor(browser: Browser, stack: LocalStack, lang: str, *, mobile: bool) -> Page:
    """A fresh browser profile that is not signed in and asks for ``lang``."""
    viewport = {"width": 390, "height": 844} if mobile else {"width": 1280, "height": 900}
    context = browser.new_context(
        viewport=viewport,
        base_url=stack.url,
        extra_http_headers={"Accept-Language": ASKS[lang]},
    )
    context.set_default_timeout(TX_TIMEOUT)
    return context.new_page()


def open_as(browser: Browser, stack: LocalStack, address: str, *, mobile: bool = False) -> Page:
    """test_e2e_browser.open_as for any language: a fresh browser profile whose browser asks
    for English, signed in with the dev wallet as ``address``; done when the sign-out button
    shows, in whatever language the user's profile chose."""
    page = visitor(browser, stack, "en", mobile=mobile)
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto("/auth/signin")
    option = f'#dev-account option[value="{address.lower()}"]'
    page.wait_for_selector(option, state="attached")
    page.select_option("#dev-account", value=address.lower())
    page.click("button[data-signin]:not([data-use-injected])")
    page.wait_for_selector("form[action='/auth/logout'] button")
    return page


def ask_for(page: Page, lang: str) -> None:
    """From now on the browser asks for ``lang`` (a key of ``ASKS``) in every request."""
    page.context.set_extra_http_headers({"Accept-Language": ASKS[lang]})


def switch_to(page: Page, lang: str) -> None:
    """Presses the language's button in the header switch."""
    name = LANGUAGES[lang][1]
    button = page.locator(f"form.lang-switch button[value={lang}]")
    expect(button).to_have_text(name)
    with page.expect_navigation():
        button.click()
    expect(page.locator("html")).to_have_attribute("lang", lang)
    expect(page.locator(f"form.lang-switch button[value={lang}]")).to_have_attribute(
        "aria-current", "true"
    )


def assert_language(page: Page, lang: str) -> None:
    """The page is in ``lang``: ``<html lang>``, the header's words, the script of the text."""
    expect(page.locator("html")).to_have_attribute("lang", lang)
    nav = page.locator(".site-header nav")
    expect(nav).to_contain_text(t(lang, "Market"))
    text = page.locator("main").inner_text()
    if lang == "kk":
        assert KAZAKH_LETTERS.search(text), f"no Kazakh letter in the page: {text[:300]!r}"
    elif lang == "ru":
        assert CYRILLIC.search(text), f"no Cyrillic in the page: {text[:300]!r}"
        words = nav.inner_text()
        assert not KAZAKH_LETTERS.search(words), f"Kazakh in the Russian menu: {words!r}"
    else:
        chrome = page.locator(".site-header nav").inner_text()
        assert not CYRILLIC.search(chrome), f"Cyrillic in the English header: {chrome!r}"


def assert_phone_fits(page: Page) -> None:
    """Nothing scrolls sideways, and the header's switch and buttons are on the screen."""
    viewport = page.viewport_size
    assert viewport is not None
    width = page.evaluate("document.documentElement.scrollWidth")
    if width > viewport["width"]:
        # The innermost elements that reach past the screen's edge: where to look.
        wide = page.evaluate(
            """(screen) => [...document.querySelectorAll('main *')]
              .filter(el => el.getBoundingClientRect().right > screen + 0.5)
              .filter(el => ![...el.children]
                .some(c => c.getBoundingClientRect().right > screen + 0.5))
              .slice(0, 5)
              .map(el => `${el.tagName.toLowerCase()}.${[...el.classList].join('.')}`
                         + ` right=${Math.round(el.getBoundingClientRect().right)}`
                         + ` "${el.textContent.trim().slice(0, 40)}"`)""",
            viewport["width"],
        )
        raise AssertionError(f"{page.url} is {width}px wide on {viewport['width']}px: {wide}")
    assert_fits(page, "form.lang-switch")
    # Every visible button lies within the screen and is not clipped inside itself.
    clipped = page.evaluate(
        """(screen) => [...document.querySelectorAll('button, a.button')]
          .filter(b => b.offsetParent !== null)
          .map(b => [b, b.getBoundingClientRect()])
          .filter(([b, r]) => r.left < -0.5 || r.right > screen + 0.5
                              || b.scrollWidth > b.clientWidth + 1)
          .map(([b, r]) => `${b.textContent.trim()}`
                           + ` [${Math.round(r.left)}..${Math.round(r.right)}]`)""",
        viewport["width"],
    )
    assert not clipped, f"buttons cut off on {page.url}: {clipped}"


def check_width(page: Page, mobile: bool) -> None:
    if mobile:
        assert_phone_fits(page)


def docs_shot(name: str, source: str) -> None:
    """Copies build/screenshots/<source>.png to docs/screenshots/<name>.png (the README's)."""
    DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SHOTS / f"{source}.png", DOCS_SHOTS / f"{name}.png")


def trade_of(engine: Engine, listing_id: int, buyer: str) -> Trade:
    with session_scope(engine) as session:
        trades = list(session.scalars(select(Trade).where(Trade.listing_id == listing_id)))
    assert [trade.buyer for trade in trades] == [buyer.lower()], trades
    return trades[0]


def user_locale(engine: Engine, address: str) -> str | None:
    with session_scope(engine) as session:
        return session.scalar(select(User.locale).where(User.address == address.lower()))


def trade_page_times(page: Page, lang: str) -> None:
    """Every time on the trade page is in Almaty time, named in the page's language."""
    zone = {"kk": "Алматы", "ru": "Алматы", "en": "Almaty"}[lang]
    times = [text.strip() for text in page.locator("main time").all_inner_texts()]
    assert times, "the trade page shows no time"
    for text in times:
        assert text.endswith(f"({zone})"), f"{text!r} does not say {zone}"
        assert "UTC" not in text


def wait_status(stack: LocalStack, trade_pk: int, status: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while trade_status(stack, trade_pk) != status:
        assert time.monotonic() < deadline, f"trade {trade_pk} is not {status}"
        time.sleep(0.2)


def tenge_listing(engine: Engine, not_of: str) -> int:
    """A seeded active tenge listing that ``not_of`` did not put up."""
    with session_scope(engine) as session:
        user = session.scalar(select(User).where(User.address == not_of.lower()))
        assert user is not None
        listing_id = session.scalar(
            select(Listing.id)
            .where(
                Listing.currency == "KZT",
                Listing.status == "active",
                Listing.seller_id != user.id,
                Listing.quantity > 1,
            )
            .order_by(Listing.price)
        ) or session.scalar(
            select(Listing.id)
            .where(
                Listing.currency == "KZT",
                Listing.status == "active",
                Listing.seller_id != user.id,
            )
            .order_by(Listing.price)
        )
    assert listing_id is not None, "the seed has no active tenge listing"
    return int(listing_id)


# ---------------------------------------------------------------------------- 1. Kazakh trade


@WIDTHS
def test_a_whole_trade_in_kazakh_and_tenge(
    browser: Browser, stack: LocalStack, engine: Engine, mobile: bool
) -> None:
    width = width_name(mobile)
    seller, buyer = (account(stack, n) for n in KK_PEOPLE[mobile])
    title = f"Тау велосипеді Stels Navigator 700 ({width})"

    # The seller's browser asks for Kazakh.
    page = open_as(browser, stack, seller, mobile=mobile)
    ask_for(page, "kk")
    page.goto("/listings/new")
    assert_language(page, "kk")
    expect(page.locator("h1")).to_have_text(t("kk", "Sell something"))
    page.fill("#title", title)
    page.fill("#description", "Өлшемі M, қазан айында жөнделді, доңғалақтары жаңа.")
    page.select_option("#currency", "KZT")
    page.fill("#price", PRICE_TYPED)
    page.select_option("#category", "bikes")
    page.fill("#city", "Алматы")
    page.fill("#delivery_days", "5")
    # The preview understood the decimal comma and the spaces (it writes the amount in its own
    # form, "= 1 234 567.5 KZT", whatever the page's language).
    understood = page.locator("#price-understood")
    expect(understood).to_contain_text(re.compile(r"1\D234\D567[.,]50? (KZT|₸)"))
    expect(understood).not_to_have_class(re.compile("field-error"))
    shot(page, f"lang-kk-1-sell-form-{width}")
    check_width(page, mobile)
    with page.expect_navigation():
        page.get_by_role("button", name=t("kk", "Publish")).click()
    match = re.search(r"/listings/(\d+)$", page.url)
    assert match, page.url
    listing_id = int(match.group(1))
    expect(page.locator("[data-listing-price]")).to_have_text(PRICE_SHOWN)
    with session_scope(engine) as session:
        listing = session.get(Listing, listing_id)
        assert listing is not None
        assert (listing.price, listing.currency) == (PRICE_UNITS, "KZT")

    # The buyer's browser asks for English; the buyer presses Қазақша in the header.
    buyer_page = open_as(browser, stack, buyer, mobile=mobile)
    buyer_page.goto(f"/listings/{listing_id}")
    assert_language(buyer_page, "en")
    switch_to(buyer_page, "kk")
    assert buyer_page.url.endswith(f"/listings/{listing_id}"), buyer_page.url
    assert_language(buyer_page, "kk")
    assert user_locale(engine, buyer) == "kk"
    price = buyer_page.locator("[data-listing-price]")
    expect(price).to_have_text(PRICE_SHOWN)
    buy_label = buyer_page.locator("[data-buy-label]")
    expect(buy_label).to_have_text(t("kk", "Buy with escrow · %(amount)s", amount=PRICE_SHOWN))
    shot(buyer_page, f"lang-kk-2-listing-{width}")
    check_width(buyer_page, mobile)

    # The review, then the permit and the payment through the dev wallet.
    review = open_review(buyer_page)
    expect(review.locator('[data-review="amount"]')).to_have_text(PRICE_SHOWN)
    expect(review.locator("[data-review-pay]")).to_have_text(
        t("kk", "Pay %(amount)s", amount=PRICE_SHOWN)
    )
    assert KAZAKH_LETTERS.search(review.inner_text()), review.inner_text()
    view_shot(buyer_page, f"lang-kk-3-review-{width}")
    if mobile:
        # In Kazakh the review is taller than a phone's screen: it scrolls inside itself
        # (see test_the_kazakh_review_on_a_phone for what should change).
        assert_fits(buyer_page, review)
        expect(review.locator("[data-review-pay]")).to_be_in_viewport()
        expect(review.locator("[data-review-cancel]")).to_be_in_viewport()
    else:
        assert_review_readable(buyer_page, review)
    pay(buyer_page)
    assert_language(buyer_page, "kk")
    trade = trade_of(engine, listing_id, buyer)
    assert trade.amount == PRICE_UNITS
    assert stack.deployment is not None
    tenge = stack.deployment.tenge
    assert tenge is not None
    assert trade.token.lower() == str(tenge.address).lower()
    trade_url = f"/trades/{trade.id}"
    wait_status(stack, trade.id, "Funded")

    # The seller ships.
    page.goto(trade_url)
    assert_language(page, "kk")
    expect(page.locator("td.price")).to_have_text(PRICE_SHOWN)
    trade_page_times(page, "kk")
    page.fill("input[name=tracking]", "KZPOST RR123456789KZ")
    shot(page, f"lang-kk-4-trade-seller-{width}")
    check_width(page, mobile)
    act(page, t("kk", "Mark as shipped"))
    wait_status(stack, trade.id, "Shipped")

    # The buyer confirms receipt: the seller is paid.
    buyer_page.goto(trade_url)
    assert_language(buyer_page, "kk")
    trade_page_times(buyer_page, "kk")
    act(buyer_page, t("kk", "Confirm receipt"))
    wait_status(stack, trade.id, "Released")
    expect(buyer_page.locator("td.price")).to_have_text(PRICE_SHOWN)
    trade_page_times(buyer_page, "kk")
    shot(buyer_page, f"lang-kk-5-trade-released-{width}")
    check_width(buyer_page, mobile)

    # Both rate each other, in Kazakh.
    for rater, comment in (
        (buyer_page, "Велосипед сипаттамаға сай, рақмет!"),
        (page, "Төлем тез түсті, рақмет!"),
    ):
        rater.goto(trade_url)
        rater.check("input[name=score][value='5']")
        rater.fill("textarea[name=comment]", comment)
        with rater.expect_navigation():
            rater.get_by_role("button", name=t("kk", "Send rating")).click()
        assert_language(rater, "kk")
    page.goto(f"/u/{seller.lower()}")
    assert_language(page, "kk")
    expect(page.locator("main")).to_contain_text("Велосипед сипаттамаға сай, рақмет!")
    shot(page, f"lang-kk-6-seller-profile-{width}")  # too wide on a phone: see below
    if not mobile:
        docs_shot("lang-kk-trade", f"lang-kk-5-trade-released-{width}")
    page.context.close()
    buyer_page.context.close()


def test_the_kazakh_review_on_a_phone(browser: Browser, stack: LocalStack, engine: Engine) -> None:
    buyer = account(stack, 0)  # not an arbitrator: the dispute signs them in in English
    page = open_as(browser, stack, buyer, mobile=True)
    page.goto(f"/listings/{tenge_listing(engine, buyer)}")
    switch_to(page, "kk")
    review = open_review(page)
    problems = []
    text = review.inner_text()
    english = re.findall(r"\b\d+ (?:days?|hours?|minutes?)\b", text)
    if english:
        problems.append(f"English in the Kazakh review: {english}")
    for key in ("ship_by", "hold_expires"):
        shown = review.locator(f'[data-review="{key}"]').inner_text()
        if "Алматы" not in shown or re.search(r"\bM\d+\b", shown):
            problems.append(f"{key} reads {shown!r}, not a Kazakh date in Almaty time")
    try:
        assert_review_readable(page, review)
    except AssertionError as exc:
        problems.append(f"not readable without scrolling: {exc}")
    page.locator("[data-review-cancel]").click()
    page.context.close()
    assert not problems, "\n".join(problems)


def test_more_pages_fit_a_phone_in_kazakh(
    browser: Browser, stack: LocalStack, engine: Engine
) -> None:
    page = visitor(browser, stack, "kk", mobile=True)
    problems = []
    with session_scope(engine) as session:
        photographed = session.scalar(
            select(Listing.id).where(Listing.status == "active", Listing.photos != [])
        )
    for path in (f"/u/{account(stack, 2).lower()}", f"/listings/{photographed}", "/arbitrators"):
        page.goto(path)
        assert_language(page, "kk")
        try:
            assert_phone_fits(page)
        except AssertionError as exc:
            problems.append(str(exc))
    shot(page, "lang-kk-arbitrators-phone")
    page.context.close()
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------- 2. Russian dispute


@WIDTHS
def test_a_dispute_in_russian(
    browser: Browser, stack: LocalStack, engine: Engine, mobile: bool
) -> None:
    width = width_name(mobile)
    assert stack.deployment is not None
    buyer = account(stack, RU_BUYER[mobile])
    arbitrator = str(stack.deployment.arbitrators[0])
    listing_id = tenge_listing(engine, buyer)

    # The buyer's browser asks for none of our languages: the market speaks Russian.
    page = open_as(browser, stack, buyer, mobile=mobile)
    ask_for(page, "none of ours")
    page.goto(f"/listings/{listing_id}")
    assert_language(page, "ru")
    shown = page.locator("[data-listing-price]").inner_text()
    assert re.fullmatch(rf"[\d{NBSP}]+(,\d\d)?{NBSP}₸", shown), repr(shown)
    review = open_review(page)
    expect(review.locator("[data-review-pay]")).to_have_text(
        t("ru", "Pay %(amount)s", amount=shown)
    )
    pay(page)
    trade = trade_of(engine, listing_id, buyer)
    trade_url = f"/trades/{trade.id}"
    wait_status(stack, trade.id, "Funded")

    page.goto(trade_url)
    assert_language(page, "ru")
    trade_page_times(page, "ru")
    page.fill("textarea[name=statement]", "Экран разбит, а в объявлении было «как новый».")
    # (the trade page shows the listing's photo; photos scale down to the phone's width)
    shot(page, f"lang-ru-1-dispute-form-{width}")
    act(page, t("ru", "Open a dispute"))
    wait_status(stack, trade.id, "Disputed")
    assert_language(page, "ru")
    expect(page.locator("main")).to_contain_text(t("ru", "Dispute statement"))
    shot(page, f"lang-ru-2-disputed-{width}")

    # The arbitrator's browser asks for English; the arbitrator picks Русский.
    judge = open_as(browser, stack, arbitrator, mobile=mobile)
    judge.goto(f"/arbitration/{trade.id}")
    switch_to(judge, "ru")
    assert judge.url.endswith(f"/arbitration/{trade.id}"), judge.url
    assert_language(judge, "ru")
    judge.eval_on_selector(
        "#buyer-percent", "el => { el.value = 70; el.dispatchEvent(new Event('input')); }"
    )
    shot(judge, f"lang-ru-3-arbitration-case-{width}")
    act(judge, t("ru", "Rule"))
    wait_status(stack, trade.id, "Resolved")

    page.goto(trade_url)
    assert_language(page, "ru")
    outcome = page.locator("main table").inner_text()
    amounts = re.findall(rf"\d[\d{NBSP}]*(?:,\d\d)?{NBSP}₸", outcome)
    assert len(amounts) >= 4, outcome  # the price and the three shares
    assert not re.search(r"\d\.\d\d ₸|\d ₸", outcome.replace(NBSP, "~")), outcome
    trade_page_times(page, "ru")
    shot(page, f"lang-ru-4-trade-resolved-{width}")
    page.context.close()
    judge.context.close()


# ---------------------------------------------------------------------------- 3. the switch


@pytest.mark.parametrize(
    ("asks", "gets"), [("kk", "kk"), ("ru", "ru"), ("en", "en"), ("none of ours", "ru")]
)
def test_the_language_a_browser_asks_for(
    browser: Browser, stack: LocalStack, asks: str, gets: str
) -> None:
    page = visitor(browser, stack, asks, mobile=False)
    page.goto("/")
    assert_language(page, gets)
    assert page.locator(".listing-card").count() > 0
    cards = page.locator(".listing-card").all_inner_texts()
    tenge = [text for text in cards if "₸" in text]
    assert tenge, "no price in tenge on the market"
    if gets != "en":
        # Tenge prices with the locale's no-break spaces, never a plain space before ₸.
        assert all(f"{NBSP}₸" in text and " ₸" not in text for text in tenge), tenge[:3]
    if asks != "none of ours":
        shot(page, f"lang-{gets}-market-desktop")
        docs_shot(f"lang-{gets}-market", f"lang-{gets}-market-desktop")
    page.context.close()


def test_switching_on_a_phone(browser: Browser, stack: LocalStack, engine: Engine) -> None:
    page = visitor(browser, stack, "en", mobile=True)
    page.goto("/?q=велосипед")
    assert_language(page, "en")
    assert_phone_fits(page)
    for lang in ("kk", "ru", "en", "kk"):
        switch_to(page, lang)
        assert "q=" in page.url, f"the switch lost the search: {page.url}"
        assert_language(page, lang)
        assert_phone_fits(page)
        shot(page, f"lang-{lang}-phone-search")
    # The choice is kept in the session: another page, and a reload, stay in Kazakh.
    page.goto("/auth/signin")
    assert_language(page, "kk")
    assert_phone_fits(page)
    page.reload()
    assert_language(page, "kk")
    page.goto("/")
    switch_to(page, "ru")
    assert_phone_fits(page)
    view_shot(page, "lang-ru-phone-market")  # the first screen, not the whole long list
    docs_shot("lang-ru-phone-market", "lang-ru-phone-market")
    page.context.close()


def test_the_choice_of_a_signed_in_user_follows_them(
    browser: Browser, stack: LocalStack, engine: Engine
) -> None:
    """A user who picked a language gets it in another browser after signing in."""
    member = account(stack, 4)
    page = open_as(browser, stack, member)
    switch_to(page, "kk")
    assert user_locale(engine, member) == "kk"
    page.context.close()
    # A new browser that asks for English: English until the sign-in, then the profile's.
    context = browser.new_context(
        viewport={"width": 1280, "height": 900},
        base_url=stack.url,
        extra_http_headers={"Accept-Language": ASKS["en"]},
    )
    context.set_default_timeout(TX_TIMEOUT)
    page = context.new_page()
    page.goto("/auth/signin")
    assert_language(page, "en")
    page.wait_for_selector(f'#dev-account option[value="{member.lower()}"]', state="attached")
    page.select_option("#dev-account", value=member.lower())
    page.click("button[data-signin]:not([data-use-injected])")
    page.wait_for_selector(f"text={t('kk', 'Sign out')}")
    assert_language(page, "kk")
    context.close()


# ---------------------------------------------------------------------------- 4. stale, hostile


@pytest.mark.parametrize("value", ["de", "KK", "kk-KZ", "", "ru\u0000", "<script>x</script>"])
def test_a_foreign_language_is_a_400_in_the_current_language(
    browser: Browser, stack: LocalStack, value: str
) -> None:
    page = visitor(browser, stack, "en", mobile=True)
    page.goto("/")
    switch_to(page, "kk")
    # The switch's button is changed under the visitor's feet to a value we do not have.
    page.eval_on_selector("form.lang-switch button[value=ru]", "(b, v) => { b.value = v; }", value)
    with page.expect_navigation() as navigation:
        page.locator("form.lang-switch button[lang=ru]").click()
    response = navigation.value
    assert response is not None and response.status == 400, response and response.status
    assert_language(page, "kk")
    expect(page.locator("main h1")).to_have_text(t("kk", "That did not work"))
    assert "<script>x" not in page.content()
    assert_phone_fits(page)
    if value == "de":
        shot(page, "lang-kk-400-phone")
    # Nothing changed: the next page is still in Kazakh.
    page.goto("/")
    assert_language(page, "kk")
    page.context.close()


def test_stale_and_hostile_switches(browser: Browser, stack: LocalStack) -> None:
    page = visitor(browser, stack, "ru", mobile=False)
    page.goto("/")
    assert_language(page, "ru")

    # A switch form from before the session was lost: the CSRF token no longer matches.
    page.context.clear_cookies()
    with page.expect_navigation() as navigation:
        page.locator("form.lang-switch button[value=kk]").click()
    response = navigation.value
    assert response is not None and response.status == 400
    assert_language(page, "ru")
    expect(page.locator("main")).to_contain_text(
        t("ru", "The form expired or came from another site. Reload the page and try again.")
    )
    shot(page, "lang-ru-stale-switch")

    # ``next`` pointing off the site goes home instead.
    page.goto("/")
    for hostile in ("//evil.example/", "https://evil.example/", "/\\evil.example", "javascript:1"):
        page.eval_on_selector(
            "form.lang-switch input[name=next]", "(el, v) => { el.value = v; }", hostile
        )
        with page.expect_navigation():
            page.locator("form.lang-switch button[value=en]").click()
        assert page.url.startswith(stack.url), f"{hostile!r} led to {page.url}"
        assert_language(page, "en")

    # A GET of the switch, an unknown catalogue and a huge value: refused, never a 500.
    csrf = page.locator("meta[name=csrf-token]").get_attribute("content")
    assert csrf
    assert page.request.get(f"{stack.url}/lang").status == 405
    assert page.request.get(f"{stack.url}/i18n/xx.js").status == 404
    assert page.request.get(f"{stack.url}/i18n/kk.js").status == 200
    huge = page.request.post(
        f"{stack.url}/lang",
        form={"csrf_token": csrf, "lang": "kk" * 50_000, "next": "/"},
        max_redirects=0,
    )
    assert huge.status in (400, 413), huge.status
    ok = page.request.post(
        f"{stack.url}/lang", form={"csrf_token": csrf, "lang": "kk", "next": "/"}, max_redirects=0
    )
    assert ok.status in (302, 303), ok.status
    page.goto("/")
    assert_language(page, "kk")
    page.context.close()
