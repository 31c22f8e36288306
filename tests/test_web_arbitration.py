"""The arbitrator's console, the case file and the ruling, end to end."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from test_web_disputes import PNG, upload

from escrow.chain import Chain
from escrow.client import EscrowClient
from escrow.db.models import Trade, TradeStatus
from helpers import DAY, ONE_ETH, Roles
from web_fixtures import db_session, funded_trade, index_now, send
from webapp.arbitration import ruling_amounts


def disputed_trade(app: Flask, client: EscrowClient, roles: Roles, **kwargs: Any) -> int:
    pk = funded_trade(app, client, roles, **kwargs)
    with db_session(app) as session:
        onchain_id = session.get(Trade, pk).onchain_id
    terms, _ = client.terms_of(onchain_id)
    client.open_dispute(onchain_id, terms, sender=terms.buyer)
    index_now(app)
    return pk


@pytest.mark.parametrize(
    "amount,arb_bps,platform_bps,buyer_bps",
    [
        (ONE_ETH, 200, 100, 3000),
        (10**6 + 7, 500, 100, 3333),
        (1, 2000, 1000, 10_000),
        (10**30 + 1, 0, 0, 0),
        (999, 200, 100, 5000),
    ],
)
def test_ruling_amounts_add_up_exactly(
    amount: int, arb_bps: int, platform_bps: int, buyer_bps: int
) -> None:
    split = ruling_amounts(amount, arb_bps, platform_bps, buyer_bps)
    assert split.buyer + split.seller + split.arbitrator_fee + split.platform_fee == amount
    assert split.arbitrator_fee == amount * arb_bps // 10_000


def test_console_access(app: Flask, web: Any, roles: Roles, client: EscrowClient) -> None:
    pk = disputed_trade(app, client, roles)
    assert web(None).client.get("/arbitration").status_code == 302
    for role in ("buyer", "seller", "stranger"):
        assert web(role, roles).client.get("/arbitration").status_code == 403, role
    page = web("arbitrator", roles).client.get("/arbitration")
    assert page.status_code == 200
    assert f"/arbitration/{pk}" in page.get_data(as_text=True)
    # A registered arbitrator with no case sees an empty console.
    other = web("arbitrator2", roles).client.get("/arbitration")
    assert other.status_code == 200 and f"/arbitration/{pk}" not in other.get_data(as_text=True)


def test_case_file_access(app: Flask, web: Any, roles: Roles, client: EscrowClient) -> None:
    pk = disputed_trade(app, client, roles)
    assert web(None).client.get(f"/arbitration/{pk}").status_code == 302
    for role in ("buyer", "seller", "stranger", "arbitrator2"):
        assert web(role, roles).client.get(f"/arbitration/{pk}").status_code == 403, role
        assert (
            web(role, roles)
            .post_json(f"/arbitration/{pk}/rule", {"buyer_percent": 100})
            .status_code
            == 403
        ), role
    arbitrator = web("arbitrator", roles)
    assert arbitrator.client.get("/arbitration/999999").status_code == 404
    assert arbitrator.post_json("/arbitration/999999/rule").status_code == 404
    assert web(None).post_json(f"/arbitration/{pk}/rule").status_code == 401
    text = arbitrator.client.get(f"/arbitration/{pk}").get_data(as_text=True)
    assert 'type="range"' in text and 'step="1"' in text and "data-splits=" in text


def test_queue_is_sorted_by_ruling_deadline(
    app: Flask, web: Any, roles: Roles, client: EscrowClient, chain: Chain
) -> None:
    first = disputed_trade(app, client, roles)
    chain.increase_time(3600)
    second = disputed_trade(app, client, roles, buyer=roles.buyer2)
    page = web("arbitrator", roles).client.get("/arbitration").get_data(as_text=True)
    assert page.index(f"/arbitration/{first}") < page.index(f"/arbitration/{second}")


def test_queue_comes_in_pages_most_urgent_first(
    app: Flask, web: Any, roles: Roles, client: EscrowClient, chain: Chain, monkeypatch: Any
) -> None:
    """A busy arbitrator's queue is paged (most urgent first); a bad or too large page number
    shows a page that exists instead of an error."""
    from webapp import arbitration

    monkeypatch.setattr(arbitration, "QUEUE_PAGE", 2)
    cases = []
    for n in range(3):
        cases.append(disputed_trade(app, client, roles, buyer=(roles.buyer, roles.buyer2)[n % 2]))
        chain.increase_time(600)
    arbitrator = web("arbitrator", roles).client

    def listed(query: str) -> list[int]:
        page = arbitrator.get("/arbitration" + query).get_data(as_text=True)
        return [pk for pk in cases if f"/arbitration/{pk}" in page]

    assert listed("") == cases[:2]
    assert listed("?page=2") == cases[2:]
    assert "Page 1 of 2" in arbitrator.get("/arbitration").get_data(as_text=True)
    assert listed("?page=9") == cases[2:]
    assert listed("?page=abc") == cases[:2]
    assert listed("?page=-3") == cases[:2]


def test_ruling_end_to_end(
    app: Flask, web: Any, roles: Roles, client: EscrowClient, chain: Chain
) -> None:
    pk = disputed_trade(app, client, roles)
    buyer, arbitrator = web("buyer", roles), web("arbitrator", roles)
    evidence = upload(buyer, pk, PNG).get_json()
    send(chain, evidence["tx"])
    index_now(app)
    upload(web("seller", roles), pk, b"I shipped it on time.\n")  # hash never sent on chain

    case = arbitrator.client.get(f"/arbitration/{pk}").get_data(as_text=True)
    assert evidence["sha256"] in case and "seen on chain" in case and "not on chain" in case
    with db_session(app) as session:
        trade = session.get(Trade, pk)
        expected = ruling_amounts(
            trade.amount, trade.arbitrator_fee_bps, trade.platform_fee_bps, 3000
        )

    for bad in (101, -1, "half", None, 12.5):
        response = arbitrator.post_json(f"/arbitration/{pk}/rule", {"buyer_percent": bad})
        assert response.status_code == 400, bad
    ruling = arbitrator.post_json(f"/arbitration/{pk}/rule", {"buyer_percent": "30"})
    assert ruling.status_code == 200, ruling.get_json()
    assert ruling.get_json()["redirect"] == "/arbitration"
    send(chain, ruling.get_json()["tx"])
    index_now(app)
    with db_session(app) as session:
        trade = session.get(Trade, pk)
        assert trade.status == TradeStatus.RESOLVED.value and trade.buyer_bps == 3000
        assert (
            trade.buyer_amount,
            trade.seller_amount,
            trade.arbitrator_fee,
            trade.platform_fee,
        ) == (expected.buyer, expected.seller, expected.arbitrator_fee, expected.platform_fee)
        assert trade.dispute is not None and trade.dispute.by_timeout is False
    console = arbitrator.client.get("/arbitration").get_data(as_text=True)
    assert "No open disputes" in console and "30%" in console
    again = arbitrator.post_json(f"/arbitration/{pk}/rule", {"buyer_percent": 30})
    assert again.status_code == 409


def test_no_ruling_after_the_deadline_then_anyone_resolves(
    app: Flask,
    web: Any,
    roles: Roles,
    client: EscrowClient,
    chain: Chain,
) -> None:
    pk = disputed_trade(app, client, roles)
    chain.increase_time(client.ruling_period() + DAY)
    arbitrator = web("arbitrator", roles)
    late = arbitrator.post_json(f"/arbitration/{pk}/rule", {"buyer_percent": 50})
    assert late.status_code == 409 and "time to rule is over" in late.get_json()["error"]
    resolve = arbitrator.post_json(f"/trades/{pk}/actions/resolve")
    assert resolve.status_code == 200, resolve.get_json()
    send(chain, resolve.get_json()["tx"])
    index_now(app)
    with db_session(app) as session:
        trade = session.get(Trade, pk)
        # Never shipped: the absent arbitrator's fallback refunds the buyer in full.
        assert trade.status == TradeStatus.RESOLVED.value and trade.buyer_bps == 10_000
        assert trade.dispute is not None and trade.dispute.by_timeout is True


def test_rule_refused_before_a_dispute(
    app: Flask, web: Any, roles: Roles, client: EscrowClient
) -> None:
    pk = funded_trade(app, client, roles)
    response = web("arbitrator", roles).post_json(f"/arbitration/{pk}/rule", {"buyer_percent": 50})
    assert response.status_code == 409


def test_a_message_from_the_case_file_returns_to_it(
    app: Flask, web: Any, roles: Roles, client: EscrowClient
) -> None:
    pk = disputed_trade(app, client, roles)
    arbitrator = web("arbitrator", roles)
    case = arbitrator.client.get(f"/arbitration/{pk}").get_data(as_text=True)
    assert f'<input type="hidden" name="next" value="/arbitration/{pk}">' in case
    sent = arbitrator.post_form(
        f"/trades/{pk}/messages", {"body": "Please send a photo.", "next": f"/arbitration/{pk}"}
    )
    assert sent.status_code == 302 and sent.headers["Location"] == f"/arbitration/{pk}#messages"
    assert "Please send a photo." in arbitrator.client.get(f"/arbitration/{pk}").get_data(
        as_text=True
    )
    # Only this trade's own pages: anything else goes to the trade page.
    other = disputed_trade(app, client, roles)
    for wanted in (
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
        f"/arbitration/{other}",
        "/listings/new",
        "",
    ):
        sent = arbitrator.post_form(f"/trades/{pk}/messages", {"body": "Hi", "next": wanted})
        assert sent.headers["Location"] == f"/trades/{pk}#messages", wanted
    # The trade page's form sends no next and returns there.
    page = web("buyer", roles).client.get(f"/trades/{pk}").get_data(as_text=True)
    form = page[page.index(f'action="/trades/{pk}/messages"') :]
    assert 'name="next"' not in form[: form.index("</form>")]


def test_the_case_file_names_the_parties(
    app: Flask, web: Any, roles: Roles, client: EscrowClient
) -> None:
    pk = disputed_trade(app, client, roles)
    buyer = roles.buyer.lower()
    case = web("arbitrator", roles).client.get(f"/arbitration/{pk}").get_data(as_text=True)
    assert f'<a class="party" href="/u/{buyer}" title="{buyer}">' in case
    # The role follows the name and never breaks inside its parentheses.
    assert '<span class="party-role">(buyer)</span>' in case
    queue = web("arbitrator", roles).client.get("/arbitration").get_data(as_text=True)
    assert f'href="/u/{buyer}"' in queue and f'href="/u/{roles.seller.lower()}"' in queue


def test_the_arbitrators_profile_shows_their_figures(
    app: Flask, web: Any, roles: Roles, client: EscrowClient, chain: Chain
) -> None:
    arbitrator = web("arbitrator", roles)
    for percent in (100, 0, 40):
        pk = disputed_trade(app, client, roles)
        chain.increase_time(3600)
        ruling = arbitrator.post_json(f"/arbitration/{pk}/rule", {"buyer_percent": percent})
        send(chain, ruling.get_json()["tx"])
        index_now(app)
    disputed_trade(app, client, roles)  # still open
    page = web(None).client.get(f"/u/{roles.arbitrator.lower()}").get_data(as_text=True)
    figures = page[page.index("data-arbitration-figures") :]
    assert 'data-figure="cases">4 (1 open)' in figures
    assert 'data-figure="rulings">3<' in figures
    assert 'data-figure="for-buyer">1 (33%)' in figures
    assert 'data-figure="for-seller">1 (33%)' in figures
    assert 'data-figure="split">1 (33%)' in figures
    mean = re.search(r'data-figure="mean">([^<]+)<', figures)
    assert mean is not None and mean.group(1).endswith(" h")  # about an hour each
    assert 0.9 <= float(mean.group(1)[:-2]) <= 1.5
    # A person who never arbitrated has no such section.
    buyer_page = web(None).client.get(f"/u/{roles.buyer.lower()}").get_data(as_text=True)
    assert "data-arbitration-figures" not in buyer_page


def test_the_ruling_asks_first(app: Flask, web: Any, roles: Roles, client: EscrowClient) -> None:
    pk = disputed_trade(app, client, roles)
    case = web("arbitrator", roles).client.get(f"/arbitration/{pk}").get_data(as_text=True)
    form = re.search(r'<form[^>]*id="ruling-form"[^>]*>', case)
    assert form is not None and 'data-confirm="Rule this split?' in form.group(0)
