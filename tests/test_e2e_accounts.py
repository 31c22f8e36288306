"""Who is signed in, in a real browser: switching dev-wallet accounts, the browser wallet
(EIP-1193) on the first click, a refused wallet prompt, and a sign-out in another tab while
a payment is under way.

The browser wallet is a small EIP-1193 provider put into the page before its scripts run
(``page.add_init_script``); it signs with a test key held by the test (``expose_function``,
eth-account), so the page's own wallet.js runs unchanged against the production stack.
Each scenario runs at 1280x900 and 390x844. Screenshots go to build/screenshots/accounts-*.png.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select
from sqlalchemy.engine import Engine
from test_e2e_browser import TX_TIMEOUT, open_as, shot
from test_e2e_checkout import new_listing, open_review, trades_of

from escrow.anvil import rpc_ready
from escrow.db.engine import make_engine, session_scope
from escrow.db.models import Trade
from webapp.stack import LocalStack

pytestmark = pytest.mark.e2e

WIDTHS = pytest.mark.parametrize("mobile", [False, True], ids=["desktop", "phone"])
#: The browser wallet's key: not one of the node's accounts, so only the test can sign for it.
WALLET = Account.from_key("0x" + "4b" * 32)
ETH = 10**18

# An EIP-1193 provider as a browser extension injects it. CONFIG: {delay} ms before it
# appears (then `ethereum#initialized`, as MetaMask announces a late start). `refuse` makes
# the next prompt fail with code 4001, as when the person presses Reject.
PROVIDER = """
(() => {
  const config = CONFIG;
  const provider = {
    refuse: false,
    // The calls of this tab, kept across page loads.
    get calls() { return JSON.parse(sessionStorage.getItem('walletCalls') || '[]'); },
    async request({method, params}) {
      sessionStorage.setItem('walletCalls', JSON.stringify([...this.calls, method]));
      if (method === 'eth_requestAccounts' || method === 'eth_accounts') return [config.address];
      if (method === 'eth_chainId') return config.chainId;
      if (method === 'personal_sign') {
        if (this.refuse) {
          const error = new Error('User rejected the request.');
          error.code = 4001;
          throw error;
        }
        return await window.testWalletSign(params[0], params[1]);
      }
      const error = new Error('The test wallet does not support ' + method);
      error.code = 4200;
      throw error;
    },
  };
  const install = () => {
    window.ethereum = provider;
    window.dispatchEvent(new Event('ethereum#initialized'));
  };
  if (config.delay) setTimeout(install, config.delay); else install();
})();
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack(
        tmp_path_factory.mktemp("e2e-accounts"),
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


def account(stack: LocalStack, index: int) -> str:
    assert stack.chain is not None
    return str(stack.chain.accounts[index]).lower()


def viewport(mobile: bool) -> dict[str, int]:
    return {"width": 390, "height": 844} if mobile else {"width": 1280, "height": 900}


def width_name(mobile: bool) -> str:
    return "phone" if mobile else "desktop"


def signed_in_as(page: Page) -> Any:
    """Who the server says this browser is signed in as (None when signed out)."""
    return page.evaluate(
        """async () => (await (await fetch('/auth/signin',
             {headers: {Accept: 'application/json'}})).json()).address"""
    )


def header_address(page: Page) -> str | None:
    """The address the header names as signed in (its hover title), or None."""
    me = page.locator(".me")
    return me.first.get_attribute("title") if me.count() else None


def picker(page: Page) -> Any:
    """The dev wallet's account list, opening the phone menu it sits in when needed."""
    toggle = page.locator(".menu-toggle")
    if toggle.count() and toggle.is_visible() and toggle.get_attribute("aria-expanded") != "true":
        toggle.click()
    select = page.locator("#dev-account")
    expect(select.locator("option")).not_to_have_count(0)
    return select


def with_wallet(browser: Browser, stack: LocalStack, mobile: bool, delay: int = 0) -> Page:
    """A fresh browser profile whose page has the test's EIP-1193 wallet."""
    assert stack.chain is not None
    context = browser.new_context(viewport=viewport(mobile), base_url=stack.url)  # type: ignore[arg-type]
    context.set_default_timeout(TX_TIMEOUT)

    def sign(message_hex: str, address: str) -> str:
        assert address.lower() == WALLET.address.lower(), address
        signed = WALLET.sign_message(encode_defunct(hexstr=message_hex))
        return str(signed.signature.to_0x_hex())

    context.expose_function("testWalletSign", sign)
    config = {"address": WALLET.address, "chainId": hex(stack.chain.chain_id), "delay": delay}
    context.add_init_script(PROVIDER.replace("CONFIG", json.dumps(config)))
    return context.new_page()


def error_text(page: Page) -> str:
    """The error the status line shows, once it shows one."""
    box = page.locator("#tx-status.error")
    expect(box).to_be_visible()
    return box.inner_text()


# ---------------------------------------------------------------------------- dev wallet


@WIDTHS
def test_switching_dev_accounts_signs_in_as_the_chosen_account(
    browser: Browser, stack: LocalStack, mobile: bool
) -> None:
    first, second, third = (account(stack, i) for i in ((5, 6, 7) if mobile else (2, 3, 4)))
    page = open_as(browser, stack, first, mobile=mobile)
    page.goto("/trades")
    assert header_address(page) == first
    expect(picker(page)).to_have_value(first)  # the list shows who is signed in

    # Picking another account signs in as it, then the page reloads and names it.
    with page.expect_navigation():
        picker(page).select_option(second)
    assert page.url.endswith("/trades")
    assert signed_in_as(page) == second
    assert header_address(page) == second
    expect(picker(page)).to_have_value(second)
    shot(page, f"accounts-switched-{width_name(mobile)}")

    # Signed out, picking an account only chooses it for the next sign-in.
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_load_state("load")
    assert signed_in_as(page) is None
    picker(page).select_option(third)
    page.wait_for_timeout(500)  # a sign-in would have started by now
    assert signed_in_as(page) is None
    assert page.evaluate("localStorage.getItem('devAccount')") == third
    page.goto("/auth/signin")
    expect(picker(page)).to_have_value(third)
    with page.expect_navigation():
        page.locator("button[data-signin]:not([data-use-injected])").click()
    page.wait_for_load_state("load")
    assert signed_in_as(page) == third
    assert header_address(page) == third
    page.context.close()


@WIDTHS
def test_arrow_keys_switch_once_to_where_they_stop(
    browser: Browser, stack: LocalStack, mobile: bool
) -> None:
    """A closed list changes at every arrow press: only the account the keys stop at is
    signed in, once."""
    start = 1 if mobile else 0
    first, target = account(stack, start), account(stack, start + 2)
    page = open_as(browser, stack, first, mobile=mobile)
    page.goto("/trades")
    select = picker(page)
    expect(select).to_have_value(first)
    select.focus()
    signins: list[str] = []
    page.on("request", lambda r: signins.append(r.url) if "/auth/verify" in r.url else None)
    with page.expect_navigation():
        page.keyboard.press("ArrowDown")
        page.keyboard.press("ArrowDown")
    assert signed_in_as(page) == target
    assert len(signins) == 1, signins
    expect(picker(page)).to_have_value(target)
    page.context.close()


@WIDTHS
def test_a_stale_tab_shows_the_account_signed_in_elsewhere(
    browser: Browser, stack: LocalStack, mobile: bool
) -> None:
    first, second = (account(stack, i) for i in ((8, 9) if mobile else (1, 8)))
    page = open_as(browser, stack, first, mobile=mobile)
    page.goto("/")
    other = page.context.new_page()
    other.goto("/")
    with other.expect_navigation():
        picker(other).select_option(second)
    assert signed_in_as(other) == second
    # The first tab still shows the old account; picking the one now signed in reloads it.
    expect(picker(page)).to_have_value(first)
    with page.expect_navigation():
        picker(page).select_option(second)
    assert header_address(page) == second
    page.context.close()


# ---------------------------------------------------------------------------- browser wallet


@WIDTHS
@pytest.mark.parametrize("delay", [0, 800], ids=["ready", "late"])
def test_browser_wallet_signs_in_on_the_first_click(
    browser: Browser, stack: LocalStack, mobile: bool, delay: int
) -> None:
    page = with_wallet(browser, stack, mobile, delay=delay)
    page.goto("/auth/signin?next=/trades")
    button = page.get_by_role("button", name="Use my browser wallet")
    with page.expect_navigation(url="**/trades"):
        button.click()  # once: a fresh profile, no wallet chosen before
    assert signed_in_as(page) == WALLET.address.lower()
    assert header_address(page) == WALLET.address.lower()
    # The browser wallet answered every step (the dev wallet used to answer the first one).
    calls = page.evaluate("JSON.parse(sessionStorage.getItem('walletCalls'))")
    assert calls == ["eth_requestAccounts", "personal_sign"], calls
    # Not a dev account: the dev wallet's list names nobody.
    expect(picker(page)).to_have_value("")
    shot(page, f"accounts-browser-wallet-{width_name(mobile)}-{delay}")
    page.context.close()


@WIDTHS
def test_refused_wallet_prompt_says_so_and_changes_nothing(
    browser: Browser, stack: LocalStack, mobile: bool
) -> None:
    page = with_wallet(browser, stack, mobile)
    # Signed in with the dev wallet first: a refused browser-wallet sign-in keeps that session.
    dev = account(stack, 7 if mobile else 4)
    page.goto("/auth/signin")
    picker(page).select_option(dev)
    with page.expect_navigation():
        page.locator("button[data-signin]:not([data-use-injected])").click()
    page.wait_for_load_state("load")
    assert signed_in_as(page) == dev
    page.goto("/auth/signin")
    page.evaluate("window.ethereum.refuse = true")
    page.get_by_role("button", name="Use my browser wallet").dblclick()  # a careless double click
    assert error_text(page) == "You refused the request in your wallet."
    assert page.evaluate("window.ethereum.calls.filter((m) => m === 'personal_sign').length") == 1
    shot(page, f"accounts-refused-{width_name(mobile)}")
    assert signed_in_as(page) == dev
    assert page.evaluate("localStorage.getItem('walletKind')") == "dev"
    page.goto("/trades")
    assert header_address(page) == dev
    page.context.close()


# ---------------------------------------------------------------------------- mid-payment


@WIDTHS
def test_signed_out_in_another_tab_mid_payment(
    browser: Browser, stack: LocalStack, engine: Engine, mobile: bool
) -> None:
    seller, buyer = account(stack, 2), account(stack, 6 if mobile else 5)
    listing = new_listing(engine, seller, f"Helmet Giro ({width_name(mobile)})", ETH // 40)
    page = open_as(browser, stack, buyer, mobile=mobile)
    page.goto(f"/listings/{listing}")
    review = open_review(page)
    tab = page.context.new_page()
    tab.goto("/trades")
    with tab.expect_navigation():
        tab.get_by_role("button", name="Sign out").click()
    review.locator("[data-review-pay]").click()
    text = error_text(page)
    assert text.startswith("You are signed out (perhaps in another tab), so nothing was sent."), (
        text
    )
    shot(page, f"accounts-signed-out-mid-payment-{width_name(mobile)}")
    assert trades_of(engine, listing) == []
    page.context.close()


@WIDTHS
def test_signed_out_in_another_tab_before_a_trade_action(
    browser: Browser, stack: LocalStack, engine: Engine, mobile: bool
) -> None:
    assert stack.chain is not None and stack.deployment is not None
    seller, buyer = account(stack, 4), account(stack, 7 if mobile else 6)
    client = stack.deployment.client(stack.chain)
    funded = client.fund(
        seller=seller,
        arbitrator=stack.deployment.arbitrators[0],
        amount=ETH // 50,
        ship_by=stack.chain.latest_timestamp() + 3 * 24 * 3600,
        inspection_period=2 * 24 * 3600,
        arbitrator_fee_bps=100,
        sender=buyer,
    )
    stack.wait_indexed()
    with session_scope(engine) as session:
        pk = session.scalar(select(Trade.id).where(Trade.onchain_id == funded.trade_id))
    page = open_as(browser, stack, seller, mobile=mobile)
    page.goto(f"/trades/{pk}")
    tab = page.context.new_page()
    tab.goto("/trades")
    with tab.expect_navigation():
        tab.get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="Mark as shipped").click()
    text = error_text(page)
    assert text.startswith("You are signed out (perhaps in another tab), so nothing was sent.")

    # Signed in again in the other tab, as someone else: the page says who it is now.
    other = account(stack, 1)
    tab.goto("/auth/signin")
    picker(tab).select_option(seller)
    with tab.expect_navigation():
        tab.locator("button[data-signin]:not([data-use-injected])").click()
    page.goto(f"/trades/{pk}")
    tab.goto("/trades")
    with tab.expect_navigation():
        picker(tab).select_option(other)
    assert signed_in_as(tab) == other
    page.get_by_role("button", name="Mark as shipped").click()
    text = error_text(page)
    assert text == (
        f"You are now signed in as {other} (perhaps in another tab), so nothing was sent. "
        "Reload the page."
    )
    with session_scope(engine) as session:
        assert session.scalar(select(Trade.status).where(Trade.id == pk)) == "Funded"
    page.context.close()


# ---------------------------------------------------------------------------- node down


@WIDTHS
def test_failed_switch_keeps_the_session(browser: Browser, stack: LocalStack, mobile: bool) -> None:
    first, second = (account(stack, i) for i in ((3, 4) if mobile else (1, 2)))
    page = open_as(browser, stack, first, mobile=mobile)
    page.goto("/trades")
    select = picker(page)
    stack.node.stop()  # the chain node goes away: nothing can be signed
    try:
        select.select_option(second)
        text = error_text(page)
        assert "blockchain node is not reachable" in text, text
        expect(select).to_have_value(first)
        expect(select).to_be_enabled()
        shot(page, f"accounts-switch-failed-{width_name(mobile)}")
    finally:
        stack.node.start()
        assert rpc_ready(stack.node.url)
    assert signed_in_as(page) == first
    page.reload()
    assert header_address(page) == first
    page.context.close()
