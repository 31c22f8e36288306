"""The market's look as a person meets it, in Debian's Chromium at desktop (1280x900) and phone
(390x844) width against the production stack with its demo data: the phone menu, toasts in view
wherever the page is scrolled, long words that do not widen the page, the delete confirmation,
demo photos, the favicon and the status page.

Screenshots go to build/screenshots/look-*.png.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select, update

from escrow.db.engine import make_engine, session_scope
from escrow.db.models import Listing
from webapp.stack import LocalStack

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "build" / "screenshots"
TIMEOUT = 30_000
WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}
LONG_WORD = "Супер" + "x" * 195  # 200 characters, no space to break at


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack(tmp_path_factory.mktemp("look"), quiet=True, workers=2) as running:
        yield running


@pytest.fixture(params=list(WIDTHS))
def width(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"look-{name}.png"))


def visitor(browser: Browser, stack: LocalStack, width: str) -> Page:
    w, h = WIDTHS[width]
    context = browser.new_context(viewport={"width": w, "height": h}, base_url=stack.url)
    context.set_default_timeout(TIMEOUT)
    return context.new_page()


def signed_in(browser: Browser, stack: LocalStack, width: str, account: int) -> Page:
    assert stack.chain is not None
    address = stack.chain.accounts[account].lower()
    page = visitor(browser, stack, width)
    page.goto("/auth/signin")
    page.wait_for_selector(f'#dev-account option[value="{address}"]', state="attached")
    page.select_option("#dev-account", value=address)
    page.click("button[data-signin]:not([data-use-injected])")
    page.wait_for_selector("text=Sign out")
    return page


def page_width(page: Page) -> int:
    return int(page.evaluate("document.documentElement.scrollWidth"))


def in_viewport(page: Page, selector: str) -> bool:
    return bool(
        page.evaluate(
            """(sel) => { const r = document.querySelector(sel).getBoundingClientRect();
                 return r.width > 0 && r.height > 0 && r.top >= 0 && r.left >= 0
                   && r.bottom <= innerHeight && r.right <= innerWidth; }""",
            selector,
        )
    )


def set_listing(stack: LocalStack, title: str, **values: object) -> None:
    engine = make_engine(stack.database_url)
    try:
        with session_scope(engine) as session:
            session.execute(update(Listing).where(Listing.title == title).values(**values))
    finally:
        engine.dispose()


def listing_titles(stack: LocalStack) -> list[str]:
    engine = make_engine(stack.database_url)
    try:
        with session_scope(engine) as session:
            return list(session.scalars(select(Listing.title)))
    finally:
        engine.dispose()


def publish(page: Page, title: str, *, city: str = "Almaty") -> None:
    page.goto("/listings/new")
    page.fill("#title", title)
    page.fill("#price", "12,5")
    page.select_option("#currency", "USD")
    page.fill("#city", city)
    page.fill("#delivery_days", "5")
    with page.expect_navigation():
        page.get_by_role("button", name="Publish").click()


# ---------------------------------------------------------------------------- demo data


def test_demo_cards_have_photos(browser: Browser, stack: LocalStack, width: str) -> None:
    page = visitor(browser, stack, width)
    page.goto("/")
    expect(page.locator("[data-intro]")).to_be_visible()
    cards = page.locator(".listing-card")
    assert cards.count() >= 8
    assert page.locator(".listing-card .photo-placeholder").count() == 0
    for img in page.locator(".listing-card img").all()[:8]:
        img.scroll_into_view_if_needed()
        expect(img).to_have_attribute("alt", re.compile(r"\S"))
        page.wait_for_function(
            "(el) => el.complete && el.naturalWidth > 0", arg=img.element_handle()
        )
    assert page_width(page) <= WIDTHS[width][0]
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, f"market-{width}")


# ---------------------------------------------------------------------------- header


def test_phone_menu_opens_and_closes_and_the_header_is_one_row(
    browser: Browser, stack: LocalStack, width: str
) -> None:
    page = signed_in(browser, stack, width, 3)
    page.goto("/")
    header = page.locator(".site-header")
    toggle = page.locator(".menu-toggle")
    trades = page.get_by_role("link", name="My trades")
    me = page.locator("[data-signed-in-as]")
    expect(me).to_be_visible()
    assert stack.chain is not None
    assert me.get_attribute("title") == stack.chain.accounts[3].lower()
    if width == "desktop":
        expect(toggle).to_be_hidden()
        expect(trades).to_be_visible()
        shot(page, f"header-{width}")
        return
    box = header.bounding_box()
    assert box is not None and box["height"] <= 64, f"the closed header is {box}"
    expect(trades).to_be_hidden()
    # The language switch and who is signed in stay in the closed header's one row.
    expect(page.get_by_role("button", name="Қазақша")).to_be_visible()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    expect(page.locator("#dev-account")).to_be_hidden()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    assert toggle.get_attribute("aria-controls") == "site-menu"
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(trades).to_be_visible()
    expect(page.locator("#dev-account")).to_be_visible()
    shot(page, f"menu-open-{width}")
    page.keyboard.press("Escape")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(trades).to_be_hidden()
    toggle.click()
    trades.click()
    page.wait_for_url("**/trades**")
    expect(toggle).to_have_attribute("aria-expanded", "false")


# ---------------------------------------------------------------------------- toasts


def test_a_failed_purchase_shows_its_error_in_view_when_scrolled_down(
    browser: Browser, stack: LocalStack, width: str
) -> None:
    """A stale tab: the seller withdrew the item while the buyer read the page. The error
    appears where the buyer is looking, not in a box at the top of the page."""
    seller = signed_in(browser, stack, width, 1)
    title = f"Stale lamp {width}"
    publish(seller, title)
    listing_url = seller.url
    buyer = signed_in(browser, stack, width, 6)
    buyer.goto(listing_url)
    set_listing(stack, title, status="withdrawn")
    buy = buyer.locator("[data-buy-label]")
    buy.scroll_into_view_if_needed()
    buyer.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
    scrolled = buyer.evaluate("window.scrollY")
    buy.click()
    error = buyer.locator("#tx-status.error")
    expect(error).to_be_visible()
    assert error.inner_text().strip()
    assert in_viewport(buyer, "#tx-status"), "the error is outside the visible part of the page"
    buyer.wait_for_function(
        "() => document.getAnimations().every((a) => a.playState !== 'running')"
    )
    shot(buyer, f"toast-error-{width}")
    if width == "phone":  # the desktop page may fit the window
        assert scrolled > 0 and buyer.evaluate("window.scrollY") > 0
    # The toast does not take clicks meant for the page around it, and closes with its button.
    expect(buy).to_be_enabled()
    buyer.locator("#tx-status + .toast-close").click()
    expect(buyer.locator("#tx-status")).to_be_hidden()


# ---------------------------------------------------------------------------- long words


def test_a_200_character_word_does_not_widen_any_page(
    browser: Browser, stack: LocalStack, width: str
) -> None:
    page = signed_in(browser, stack, width, 2)
    publish(page, f"{LONG_WORD[:-1]}{width[0]}", city="Ы" * 100)
    w = WIDTHS[width][0]
    for url in (page.url, "/", "/listings/mine", "/?q=Супер"):
        page.goto(url)
        assert page_width(page) <= w, f"{url} is {page_width(page)}px wide at {w}px"
    shot(page, f"long-word-{width}")


# ---------------------------------------------------------------------------- confirmation


def test_delete_asks_first_cancel_keeps_confirm_removes(
    browser: Browser, stack: LocalStack, width: str
) -> None:
    page = signed_in(browser, stack, width, 4)
    title = f"Old armchair {width}"
    publish(page, title)
    page.goto("/listings/mine")
    row = page.locator("tr", has_text=title)
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    row.get_by_role("button", name="Delete").click()
    dialog = page.locator("dialog.confirm")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(title)
    shot(page, f"confirm-{width}")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    assert posts == [], "cancel sent the form"
    page.reload()
    expect(page.locator("tr", has_text=title)).to_have_count(1)
    assert title in listing_titles(stack)
    # Keyboard: Escape cancels too.
    page.locator("tr", has_text=title).get_by_role("button", name="Delete").click()
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert posts == []
    page.locator("tr", has_text=title).get_by_role("button", name="Delete").click()
    with page.expect_navigation():
        dialog.get_by_role("button", name="Yes, continue").click()
    assert len([u for u in posts if "/delete" in u]) == 1, posts
    expect(page.locator("tr", has_text=title)).to_have_count(0)
    assert title not in listing_titles(stack)
    toast = page.locator("[data-flash]", has_text="Listing deleted.")
    expect(toast).to_be_visible()
    assert in_viewport(page, "[data-flash]")
    toast.get_by_role("button", name="Close").click()
    expect(toast).to_be_hidden()


def test_a_double_click_sends_a_form_once(browser: Browser, stack: LocalStack, width: str) -> None:
    page = signed_in(browser, stack, width, 5)
    title = f"Desk lamp {width}"
    publish(page, title)
    page.goto("/listings/mine")
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    with page.expect_navigation():
        page.locator("tr", has_text=title).get_by_role("button", name="Pause").dblclick()
    assert len(posts) == 1, posts
    expect(page.locator("tr", has_text=title)).to_contain_text("Resume")
    # Back from the next page (the browser's cache): the buttons work again.
    page.goto("/")
    page.go_back()
    expect(page.locator("tr", has_text=title).get_by_role("button", name="Resume")).to_be_enabled()


# ---------------------------------------------------------------------------- icon, status


def test_favicon_and_status_page(browser: Browser, stack: LocalStack) -> None:
    page = visitor(browser, stack, "desktop")
    icon = page.request.get("/favicon.ico")
    assert icon.status == 200 and icon.headers["content-type"].startswith("image/svg+xml")
    page.goto("/")
    assert page.locator('link[rel="icon"]').count() == 1
    with page.expect_navigation():
        page.get_by_role("link", name="Service status").click()
    assert page.url.endswith("/status")
    expect(page.locator("h1")).to_have_text("Service status")
    expect(page.locator(".status-list")).to_contain_text("Blockchain node")
    expect(page.locator("[data-status=lag]")).to_have_text(
        re.compile(r"^(\d+ blocks? behind|Nothing indexed yet)$")
    )
    health = page.request.get("/healthz")
    assert health.headers["content-type"].startswith("application/json")
    assert health.json()["chain"]["ok"] is True
    shot(page, "status-desktop")


def test_unread_messages_show_on_the_closed_phone_menu(browser: Browser, stack: LocalStack) -> None:
    seller = signed_in(browser, stack, "phone", 7)
    title = "Brass samovar, 3 l"
    publish(seller, title)
    listing_url = seller.url
    toggle = seller.locator(".menu-toggle")
    expect(toggle.locator(".menu-dot")).to_have_count(0)
    buyer = signed_in(browser, stack, "phone", 6)
    buyer.goto(listing_url)
    buyer.locator("form", has=buyer.get_by_role("button", name="Send to the seller")).locator(
        "textarea"
    ).fill("Is it still for sale?")
    with buyer.expect_navigation():
        buyer.get_by_role("button", name="Send to the seller").click()
    seller.goto("/")
    expect(toggle.locator(".menu-dot")).to_be_visible()
    # The message, and the notification about it when notifications are on.
    expect(toggle).to_contain_text(re.compile(r"[12] unread"))
    toggle.click()
    expect(seller.locator("[data-messages-link] [data-unread-total]")).to_have_text("1")
    shot(seller, "menu-unread-phone")
