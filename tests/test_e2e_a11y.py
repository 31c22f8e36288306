"""Accessibility in a real browser: axe-core's WCAG 2.1 A/AA rules on every kind of page at
1280x900 and 390x844, signed in as the person who would see it, and a purchase made with the
keyboard only, the focus visible at every step.

A page passes with no serious or critical violation; the others (moderate, minor) are printed
and written to build/a11y/<page>-<width>.json. The trades shown are made on the chain
directly (funded, shipped, disputed, released) and indexed by the stack's own indexer.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from a11y import axe_violations, blocking, focus_is_visible
from playwright.sync_api import Browser, BrowserContext, Page, expect
from sqlalchemy import select
from sqlalchemy.engine import Engine
from test_e2e_browser import TX_TIMEOUT, open_as, shot

from escrow.client import Terms
from escrow.db.engine import make_engine, session_scope
from escrow.db.models import Conversation, Listing, ListingStatus, Trade, User
from webapp.stack import LocalStack

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "build" / "a11y"
ETH = 10**18
DAY = 24 * 3600
WIDTHS = {"desktop": False, "phone": True}


@dataclass(frozen=True)
class World:
    """What the pages show: people, a listing, trades in four states, a conversation."""

    seller: str
    buyer: str
    arbitrator: str
    listing: int
    funded: int
    shipped: int
    disputed: int
    released: int
    conversation: int


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack(
        tmp_path_factory.mktemp("e2e-a11y"),
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


def listing_of(engine: Engine, seller: str, title: str, price: int) -> tuple[int, str]:
    """An ETH listing of one item (id, ref), straight into the database."""
    with session_scope(engine) as session:
        user = session.scalar(select(User).where(User.address == seller.lower()))
        assert user is not None, f"{seller} is not a seeded member"
        listing = Listing(
            ref="0x" + secrets.token_hex(32),
            seller_id=user.id,
            title=title,
            description="Picked up in person in Almaty or sent by Kazpost.",
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
        return int(listing.id), str(listing.ref)


def trade_pk(engine: Engine, onchain_id: int) -> int:
    with session_scope(engine) as session:
        pk = session.scalar(select(Trade.id).where(Trade.onchain_id == onchain_id))
    assert pk is not None, f"trade {onchain_id} is not indexed"
    return int(pk)


@pytest.fixture(scope="module")
def world(stack: LocalStack, engine: Engine, browser: Browser) -> World:
    assert stack.chain is not None and stack.deployment is not None
    accounts = [str(a).lower() for a in stack.chain.accounts]
    seller, buyer = accounts[2], accounts[5]
    arbitrator = str(stack.deployment.arbitrators[0]).lower()
    chain = stack.chain
    client = stack.deployment.client(chain)
    shown, _ = listing_of(engine, seller, "Stels Navigator 500 city bike", ETH // 10)

    def fund(title: str) -> tuple[int, Terms]:
        _, ref = listing_of(engine, seller, title, ETH // 20)
        funded = client.fund(
            seller=seller,
            arbitrator=arbitrator,
            amount=ETH // 20,
            ship_by=chain.latest_timestamp() + 3 * DAY,
            inspection_period=2 * DAY,
            arbitrator_fee_bps=100,
            listing_ref=bytes.fromhex(ref[2:]),
            sender=buyer,
        )
        assert funded.terms is not None
        return funded.trade_id, funded.terms

    funded, _terms = fund("Bike pump Topeak")
    shipped, terms = fund("Shimano pedals")
    client.mark_shipped(shipped, terms, sender=seller)
    disputed, terms = fund("Kids scooter Micro")
    client.open_dispute(disputed, terms, sender=buyer)
    released, terms = fund("Bike lights set")
    client.mark_shipped(released, terms, sender=seller)
    client.confirm_receipt(released, terms, sender=buyer)
    stack.wait_indexed()

    # The buyer asks the seller about the listing: the inbox and the conversation.
    page = open_as(browser, stack, buyer)
    page.goto(f"/listings/{shown}")
    form = page.locator("[data-ask-form]")
    form.locator("textarea").fill("Is the frame size M? Can I see it in Almaty on Saturday?")
    with page.expect_navigation():
        form.locator("button[type=submit]").click()
    page.context.close()
    with session_scope(engine) as session:
        conversation = session.scalar(
            select(Conversation.id).where(Conversation.listing_id == shown)
        )
    assert conversation is not None
    return World(
        seller=seller,
        buyer=buyer,
        arbitrator=arbitrator,
        listing=shown,
        funded=trade_pk(engine, funded),
        shipped=trade_pk(engine, shipped),
        disputed=trade_pk(engine, disputed),
        released=trade_pk(engine, released),
        conversation=int(conversation),
    )


# Each page kind: (name, who looks at it, path with {fields} of World).
PAGES = [
    ("market", None, "/"),
    ("search", None, "/?q=bike"),
    ("listing", None, "/listings/{listing}"),
    ("listing-signed-in", "buyer", "/listings/{listing}"),
    ("sign-in", None, "/auth/signin"),
    ("status", None, "/status"),
    ("not-found", None, "/no-such-page"),
    ("arbitrators", None, "/arbitrators"),
    ("profile", None, "/u/{seller}"),
    ("sell-form", "seller", "/listings/new"),
    ("my-listings", "seller", "/listings/mine"),
    ("my-profile", "buyer", "/me"),
    ("trades", "buyer", "/trades"),
    ("trade-funded-buyer", "buyer", "/trades/{funded}"),
    ("trade-funded-seller", "seller", "/trades/{funded}"),
    ("trade-shipped", "buyer", "/trades/{shipped}"),
    ("trade-disputed", "buyer", "/trades/{disputed}"),
    ("trade-released", "buyer", "/trades/{released}"),
    ("arbitration-queue", "arbitrator", "/arbitration"),
    ("arbitration-case", "arbitrator", "/arbitration/{disputed}"),
    ("messages", "buyer", "/messages"),
    ("conversation", "seller", "/messages/{conversation}"),
    ("notifications", "buyer", "/notifications"),
]

_contexts: dict[tuple[str | None, bool], BrowserContext] = {}


def page_for(
    browser: Browser, stack: LocalStack, world: World, who: str | None, mobile: bool
) -> Page:
    """A page of a browser profile signed in as ``who`` (reused across the module)."""
    key = (who, mobile)
    context = _contexts.get(key)
    if context is None or not context.pages:
        if who is None:
            viewport = {"width": 390, "height": 844} if mobile else {"width": 1280, "height": 900}
            context = browser.new_context(viewport=viewport, base_url=stack.url)  # type: ignore[arg-type]
            context.set_default_timeout(TX_TIMEOUT)
            context.new_page()
        else:
            context = open_as(browser, stack, getattr(world, who), mobile=mobile).context
        _contexts[key] = context
    return context.pages[0]


@pytest.fixture(scope="module", autouse=True)
def _close_contexts(browser: Browser) -> Iterator[None]:
    yield
    for context in _contexts.values():
        context.close()
    _contexts.clear()


@pytest.mark.parametrize("width", list(WIDTHS))
@pytest.mark.parametrize(("name", "who", "path"), PAGES, ids=[p[0] for p in PAGES])
def test_page_has_no_serious_violations(
    browser: Browser,
    stack: LocalStack,
    world: World,
    name: str,
    who: str | None,
    path: str,
    width: str,
) -> None:
    page = page_for(browser, stack, world, who, WIDTHS[width])
    response = page.goto(path.format(**world.__dict__))
    assert response is not None
    # The status page answers 503 while something is down; it is still a page to read.
    allowed = {"not-found": (404,), "status": (200, 503)}.get(name, (200,))
    assert response.status in allowed, f"{path}: {response.status}"
    page.wait_for_load_state("networkidle")
    check(page, name, width)


def check(page: Page, name: str, width: str) -> None:
    """Runs axe on the page as it is now: writes every violation to build/a11y/, prints the
    moderate and minor ones and fails on a serious or critical one."""
    found = axe_violations(page)
    REPORTS.mkdir(parents=True, exist_ok=True)
    (REPORTS / f"{name}-{width}.json").write_text(
        json.dumps([v.__dict__ for v in found], ensure_ascii=False, indent=1)
    )
    serious = blocking(found)
    for violation in found:
        if violation not in serious:
            print(f"{name} ({width}): {violation}")
    assert not serious, f"{name} ({width}):\n" + "\n".join(f"{v}\n    {v.summary}" for v in serious)


@pytest.mark.parametrize("width", list(WIDTHS))
def test_page_states_have_no_serious_violations(
    browser: Browser, stack: LocalStack, world: World, width: str
) -> None:
    """What appears after an action: the purchase review, the sell form's errors, a wallet
    error in the status line, the phone menu opened."""
    mobile = WIDTHS[width]
    page = page_for(browser, stack, world, "buyer", mobile)
    page.goto(f"/listings/{world.listing}")
    page.locator("form[data-checkout-url] button[type=submit]").click()
    review = page.locator("dialog[data-checkout-review]")
    expect(review).to_be_visible()
    check(page, "review-dialog", width)
    review.get_by_role("button", name="Cancel").click()
    expect(review).to_be_hidden()

    page = page_for(browser, stack, world, "seller", mobile)
    page.goto("/listings/new")
    page.fill("#title", "Road bike")
    page.fill("#description", "Size M.")
    page.fill("#price", "abc")  # the browser lets it through; the server refuses it
    page.select_option("#category", "bikes")
    page.fill("#city", "Almaty")
    page.fill("#delivery_days", "7")
    with page.expect_navigation():
        page.get_by_role("button", name="Publish").click()
    expect(page.locator(".field-error").first).to_be_visible()
    check(page, "sell-form-errors", width)

    page = page_for(browser, stack, world, None, mobile)
    page.goto("/auth/signin")
    page.evaluate("localStorage.clear()")
    page.reload()
    page.locator("button[data-signin]:not([data-use-injected])").click()
    expect(page.locator("#tx-status.error")).to_be_visible()
    check(page, "sign-in-error", width)

    if mobile:
        page = page_for(browser, stack, world, "buyer", mobile)
        page.goto("/trades")
        page.locator(".menu-toggle").click()
        expect(page.locator(".menu-toggle")).to_have_attribute("aria-expanded", "true")
        check(page, "menu-open", width)


@pytest.mark.parametrize("lang", ["kk", "ru"])
def test_kazakh_and_russian_pages_have_no_serious_violations(
    browser: Browser, stack: LocalStack, world: World, lang: str
) -> None:
    """The same pages in Kazakh and Russian (longer words, the page's lang attribute), at
    phone width, where long words wrap the most."""
    page = open_as(browser, stack, world.buyer, mobile=True)
    page.context.set_extra_http_headers({"Accept-Language": f"{lang}-KZ,{lang};q=0.9"})
    try:
        for name, path in (
            ("market", "/"),
            ("listing", f"/listings/{world.listing}"),
            ("trade-shipped", f"/trades/{world.shipped}"),
            ("trades", "/trades"),
        ):
            page.goto(path)
            assert page.evaluate("document.documentElement.lang").startswith(lang)
            check(page, f"{name}-{lang}", "phone")
    finally:
        page.context.close()


def test_axe_finds_a_planted_violation(browser: Browser, stack: LocalStack, world: World) -> None:
    """The checks can fail: a picture without a text and an unlabelled field put into a real
    page are reported as critical, and a focus without a ring is seen."""
    page = page_for(browser, stack, world, None, False)
    page.goto("/")
    page.evaluate(
        """() => document.querySelector('main').insertAdjacentHTML('beforeend',
             '<img src="/static/favicon.svg" data-planted><input type="text" data-planted>')"""
    )
    found = {v.rule: v for v in blocking(axe_violations(page))}
    assert {"image-alt", "label"} <= set(found), found
    assert len(found["image-alt"].targets) == 1
    assert "data-planted" in found["image-alt"].targets[0]
    # And the focus check: a field whose focus ring is taken away is caught.
    page.evaluate(
        """() => { const field = document.querySelector('input[data-planted]');
                   field.style.outline = 'none'; field.style.boxShadow = 'none'; field.focus(); }"""
    )
    assert focus_is_visible(page)["visible"] is False
    page.reload()


# ---------------------------------------------------------------------------- keyboard only


def tab_to(page: Page, test: str, *, limit: int = 120, backwards: bool = False) -> str:
    """Presses Tab (Shift+Tab) until the focused element passes ``test`` (a JS function of the
    element); every element the focus passes must show it. Returns what got focus."""
    seen: list[str] = []
    for _ in range(limit):
        page.keyboard.press("Shift+Tab" if backwards else "Tab")
        focus = focus_is_visible(page)
        seen.append(str(focus["element"]))
        assert focus["element"] is None or focus["visible"], (
            f"the focus on {focus['element']} is not visible ({page.url})"
        )
        if page.evaluate(f"() => ({test})(document.activeElement)"):
            return str(focus["element"])
    raise AssertionError(f"no element passing {test} after {limit} Tabs: {seen[-15:]}")


def has_text(text: str) -> str:
    return f"((el) => el && (el.innerText || el.value || '').includes({json.dumps(text)}))"


@pytest.mark.parametrize("width", list(WIDTHS))
def test_buy_and_confirm_with_the_keyboard_only(
    browser: Browser, stack: LocalStack, engine: Engine, width: str
) -> None:
    assert stack.chain is not None and stack.deployment is not None
    mobile = WIDTHS[width]
    accounts = [str(a).lower() for a in stack.chain.accounts]
    seller, buyer = accounts[3], accounts[6 if mobile else 7]
    title = f"Merida Scultura road bike ({width})"
    listing, _ = listing_of(engine, seller, title, ETH // 25)
    viewport = {"width": 390, "height": 844} if mobile else {"width": 1280, "height": 900}
    context = browser.new_context(viewport=viewport, base_url=stack.url)  # type: ignore[arg-type]
    context.set_default_timeout(TX_TIMEOUT)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())

    # Sign in: the dev wallet's account list and the Sign in button, from the keyboard.
    page.goto("/auth/signin")
    expect(page.locator(f'#dev-account option[value="{buyer}"]')).to_be_attached()
    tab_to(page, "(el) => el.id === 'dev-account'")
    index = page.evaluate(
        "(who) => [...document.querySelectorAll('#dev-account option')]"
        ".findIndex((o) => o.value === who)",
        buyer,
    )
    for _ in range(index):
        page.keyboard.press("ArrowDown")
    expect(page.locator("#dev-account")).to_have_value(buyer)
    tab_to(page, "(el) => el.matches('button[data-signin]:not([data-use-injected])')")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    expect(page.locator("form[action='/auth/logout'] button")).to_be_attached()

    # Find the listing with the search box, open it, buy it.
    page.goto("/")
    tab_to(page, "(el) => el.matches('input[type=search], input[name=q]')")
    page.keyboard.type("Merida Scultura")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    tab_to(page, f"(el) => el.tagName === 'A' && {has_text(title)}(el)")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url.endswith(f"/listings/{listing}")
    tab_to(page, "(el) => el.matches('form[data-checkout-url] button[type=submit]')")
    page.keyboard.press("Enter")
    review = page.locator("dialog[data-checkout-review]")
    expect(review).to_be_visible()
    tab_to(page, "(el) => el.matches('[data-review-pay]')")
    shot(page, f"a11y-keyboard-review-{width}")
    with page.expect_navigation(url="**/trades**", timeout=TX_TIMEOUT):
        page.keyboard.press("Enter")
    page.wait_for_load_state("networkidle")
    with session_scope(engine) as session:
        trade = session.scalar(select(Trade).where(Trade.listing_id == listing))
        assert trade is not None and trade.status == "Funded"
        onchain_id, pk = int(trade.onchain_id), int(trade.id)

    # The seller ships (on the chain directly); the buyer confirms receipt from the keyboard.
    client = stack.deployment.client(stack.chain)
    terms, _ref = client.terms_of(onchain_id)
    client.mark_shipped(onchain_id, terms, sender=seller)
    stack.wait_indexed()
    page.goto(f"/trades/{pk}")
    tab_to(page, f"(el) => el.tagName === 'BUTTON' && {has_text('Confirm receipt')}(el)")
    with page.expect_navigation(timeout=TX_TIMEOUT):
        page.keyboard.press("Enter")
    page.wait_for_load_state("networkidle")
    with session_scope(engine) as session:
        assert session.scalar(select(Trade.status).where(Trade.id == pk)) == "Released"
    shot(page, f"a11y-keyboard-released-{width}")
    context.close()
