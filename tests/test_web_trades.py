"""Buying and trade pages: the funding flows end to end, reservations, actions by role and time."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from flask import Flask
from sqlalchemy import select

from escrow.chain import Chain
from escrow.client import EscrowClient
from escrow.db.models import Listing, ListingStatus, Message, Trade, TradeStatus
from escrow.deploy import Deployment
from helpers import DAY, ONE_ETH, USD, Roles
from web_fixtures import (
    add_listing,
    db_session,
    funded_trade,
    index_now,
    listing_row,
    send,
    trade_row,
)
from webapp.trades import ACTIONS, available_actions, percent_to_bps

# ------------------------------------------------------------------ buying


def test_buy_with_eth_end_to_end(app: Flask, web: Any, roles: Roles, chain: Chain) -> None:
    listing_id, ref = add_listing(app, roles.seller, price=2 * ONE_ETH)
    buyer = web("buyer", roles)
    response = buyer.buy(listing_id, {"arbitrator": roles.arbitrator})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["redirect"].startswith("/trades")
    assert body["tx"]["from"].lower() == roles.buyer.lower()
    assert int(body["tx"]["value"], 16) == 2 * ONE_ETH
    listing = listing_row(app, listing_id)
    assert listing.status == ListingStatus.ACTIVE.value and listing.reserved_by == buyer.address

    send(chain, body["tx"])
    index_now(app)
    trade = trade_row(app)
    assert trade.listing_id == listing_id and trade.listing_ref == ref
    assert (trade.buyer, trade.seller, trade.arbitrator) == (
        roles.buyer.lower(),
        roles.seller.lower(),
        roles.arbitrator.lower(),
    )
    assert trade.amount == 2 * ONE_ETH and trade.status == TradeStatus.FUNDED.value
    assert listing_row(app, listing_id).status == ListingStatus.SOLD.value
    page = buyer.client.get("/trades").get_data(as_text=True)
    assert f"/trades/{trade.id}" in page and "Bicycle" in page
    detail = buyer.client.get(f"/trades/{trade.id}").get_data(as_text=True)
    assert f'href="/listings/{listing_id}"' in detail


def test_buy_with_dollars_through_a_permit(
    app: Flask,
    web: Any,
    roles: Roles,
    chain: Chain,
    keys: dict[str, LocalAccount],
    client: EscrowClient,
    stablecoin: str,
) -> None:
    listing_id, _ = add_listing(app, roles.seller, price=25 * USD, currency="USD")
    buyer = web("buyer", roles)
    first = buyer.buy(listing_id)
    assert first.status_code == 200, first.get_json()
    permit = first.get_json()["permit"]
    assert "tx" not in first.get_json()
    assert permit["primaryType"] == "Permit" and permit["message"]["value"] == str(25 * USD)
    signature = keys[roles.buyer].sign_message(encode_typed_data(full_message=permit))
    second = buyer.buy(
        listing_id,
        {
            "hold": first.get_json()["hold"],
            "permit": {
                "signature": signature.signature.to_0x_hex(),
                "deadline": first.get_json()["permit_deadline"],
            },
        },
    )
    assert second.status_code == 200, second.get_json()
    balance = client.token_balance(stablecoin, roles.buyer)
    send(chain, second.get_json()["tx"])
    index_now(app)
    trade = trade_row(app)
    assert trade.token == stablecoin.lower() and trade.amount == 25 * USD
    assert trade.listing_id == listing_id
    assert client.token_balance(stablecoin, roles.buyer) == balance - 25 * USD
    assert "25 USD" in buyer.client.get(f"/trades/{trade.id}").get_data(as_text=True)


def test_a_bad_permit_signature_is_refused_and_frees_the_item(
    app: Flask,
    web: Any,
    roles: Roles,
    keys: dict[str, LocalAccount],
) -> None:
    listing_id, _ = add_listing(app, roles.seller, price=5 * USD, currency="USD")
    buyer = web("buyer", roles)
    first = buyer.buy(listing_id).get_json()
    permit = first["permit"]
    forged = keys[roles.stranger].sign_message(encode_typed_data(full_message=permit))
    response = buyer.buy(
        listing_id,
        {
            "hold": first["hold"],
            "permit": {
                "signature": forged.signature.to_0x_hex(),
                "deadline": permit["message"]["deadline"],
            },
        },
    )
    assert response.status_code == 409
    assert "allowed" in response.get_json()["error"]
    assert listing_row(app, listing_id).reserved_by is None
    again = buyer.buy(listing_id).get_json()
    garbled = buyer.buy(
        listing_id, {"hold": again["hold"], "permit": {"signature": "0x12", "deadline": 1}}
    )
    assert garbled.status_code == 400 and "malformed" in garbled.get_json()["error"]


def test_two_buyers_race_for_one_item(app: Flask, web: Any, roles: Roles, chain: Chain) -> None:
    listing_id, _ = add_listing(app, roles.seller)
    first, second = web("buyer", roles), web("buyer2", roles)
    seen = second.quote(listing_id)  # both have the page open
    won = first.buy(listing_id)
    lost = second.buy(listing_id, quote=seen)
    assert won.status_code == 200 and "tx" in won.get_json()
    assert lost.status_code == 409 and "tx" not in lost.get_json()
    assert "Someone else is buying this item" in lost.get_json()["error"]
    # The winner may ask again (e.g. after closing the wallet) and still holds it.
    assert first.buy(listing_id).status_code == 200
    send(chain, won.get_json()["tx"])
    index_now(app)
    after = second.post_json(f"/listings/{listing_id}/buy")
    assert after.status_code == 409 and "no longer for sale" in after.get_json()["error"]


def test_an_expired_reservation_lets_the_next_buyer_in(app: Flask, web: Any, roles: Roles) -> None:
    listing_id, _ = add_listing(app, roles.seller)
    first, second = web("buyer", roles), web("buyer2", roles)
    assert first.buy(listing_id).status_code == 200
    with db_session(app) as session:
        session.get(Listing, listing_id).reserved_until = datetime.now(UTC) - timedelta(seconds=1)
        session.commit()
    assert second.buy(listing_id).status_code == 200
    assert listing_row(app, listing_id).reserved_by == second.address


def test_multi_item_listings_are_not_reserved(app: Flask, web: Any, roles: Roles) -> None:
    listing_id, _ = add_listing(app, roles.seller, quantity=3)
    assert web("buyer", roles).buy(listing_id).status_code == 200
    assert web("buyer2", roles).buy(listing_id).status_code == 200
    assert listing_row(app, listing_id).status == ListingStatus.ACTIVE.value


def test_a_contract_refusal_releases_the_reservation(
    app: Flask,
    web: Any,
    roles: Roles,
    client: EscrowClient,
) -> None:
    listing_id, _ = add_listing(app, roles.seller)
    client.set_funding_paused(True, sender=roles.owner)
    response = web("buyer", roles).buy(listing_id)
    assert response.status_code == 409
    assert "paused" in response.get_json()["error"]
    listing = listing_row(app, listing_id)
    assert listing.status == ListingStatus.ACTIVE.value and listing.reserved_by is None


def test_buy_refusals(app: Flask, web: Any, roles: Roles) -> None:
    listing_id, _ = add_listing(app, roles.seller)
    assert web(None).post_json(f"/listings/{listing_id}/buy").status_code == 401
    own = web("seller", roles).post_json(f"/listings/{listing_id}/buy")
    assert own.status_code == 409 and "your own listing" in own.get_json()["error"]
    buyer = web("buyer", roles)
    assert buyer.post_json("/listings/999999/buy").status_code == 404
    bad = buyer.post_json(f"/listings/{listing_id}/buy", {"arbitrator": roles.stranger})
    assert bad.status_code == 400
    assert buyer.post_json(f"/listings/{listing_id}/buy", {"arbitrator": 5}).status_code == 400
    with db_session(app) as session:
        session.get(Listing, listing_id).status = ListingStatus.WITHDRAWN.value
        session.commit()
    gone = buyer.post_json(f"/listings/{listing_id}/buy")
    assert gone.status_code == 409 and "no longer for sale" in gone.get_json()["error"]


# ------------------------------------------------------------------ who may do what, when

T0 = datetime(2030, 1, 1, tzinfo=UTC)
BUYER, SELLER, ARB, OTHER = "0x" + "b" * 40, "0x" + "5" * 40, "0x" + "a" * 40, "0x" + "9" * 40


def _trade(status: str, *, split_by: str | None = None) -> Trade:
    return Trade(
        status=status,
        buyer=BUYER,
        seller=SELLER,
        arbitrator=ARB,
        ship_by=T0 + timedelta(days=5),
        inspection_ends_at=T0 + timedelta(days=8) if status != "Funded" else None,
        ruling_deadline=T0 + timedelta(days=10) if status == "Disputed" else None,
        split_proposer=split_by,
        proposed_buyer_bps=4000 if split_by else None,
    )


BEFORE, AFTER_SHIP_BY, AFTER_INSPECTION, AFTER_RULING = (
    T0,
    T0 + timedelta(days=6),
    T0 + timedelta(days=9),
    T0 + timedelta(days=11),
)

ACTION_TABLE = [
    # status, proposer, who, when, expected actions
    ("Funded", None, BUYER, BEFORE, {"confirm", "propose_split", "dispute"}),
    ("Funded", None, SELLER, BEFORE, {"ship", "seller_refund", "propose_split", "dispute"}),
    ("Funded", None, ARB, BEFORE, set()),
    ("Funded", None, OTHER, BEFORE, set()),
    ("Funded", None, None, AFTER_SHIP_BY, set()),
    ("Funded", None, BUYER, AFTER_SHIP_BY, {"confirm", "refund", "propose_split"}),
    ("Funded", None, SELLER, AFTER_SHIP_BY, {"refund", "seller_refund", "propose_split"}),
    ("Funded", None, ARB, AFTER_SHIP_BY, {"refund"}),
    ("Funded", "seller", BUYER, BEFORE, {"confirm", "propose_split", "accept_split", "dispute"}),
    ("Funded", "seller", SELLER, BEFORE, {"ship", "seller_refund", "propose_split", "dispute"}),
    ("Shipped", None, BUYER, AFTER_SHIP_BY, {"confirm", "propose_split", "dispute"}),
    ("Shipped", None, SELLER, AFTER_SHIP_BY, {"seller_refund", "propose_split", "dispute"}),
    (
        "Shipped",
        "buyer",
        SELLER,
        AFTER_SHIP_BY,
        {"seller_refund", "propose_split", "accept_split", "dispute"},
    ),
    ("Shipped", None, ARB, AFTER_SHIP_BY, set()),
    ("Shipped", None, BUYER, AFTER_INSPECTION, {"confirm", "release", "propose_split"}),
    ("Shipped", None, SELLER, AFTER_INSPECTION, {"release", "seller_refund", "propose_split"}),
    ("Shipped", None, ARB, AFTER_INSPECTION, {"release"}),
    ("Disputed", None, BUYER, AFTER_INSPECTION, {"confirm", "propose_split"}),
    ("Disputed", None, SELLER, AFTER_INSPECTION, {"seller_refund", "propose_split"}),
    (
        "Disputed",
        "buyer",
        SELLER,
        AFTER_INSPECTION,
        {"seller_refund", "propose_split", "accept_split"},
    ),
    ("Disputed", None, ARB, AFTER_INSPECTION, set()),
    ("Disputed", None, BUYER, AFTER_RULING, {"confirm", "propose_split", "resolve"}),
    ("Disputed", None, ARB, AFTER_RULING, {"resolve"}),
    ("Released", None, BUYER, AFTER_RULING, set()),
    ("Refunded", None, SELLER, BEFORE, set()),
    ("Settled", None, BUYER, BEFORE, set()),
    ("Resolved", None, ARB, AFTER_RULING, set()),
]


@pytest.mark.parametrize("status,proposer,who,when,expected", ACTION_TABLE)
def test_available_actions_table(
    status: str, proposer: str | None, who: str | None, when: datetime, expected: set[str]
) -> None:
    actions = available_actions(_trade(status, split_by=proposer), who, when)
    assert {a.name for a in actions} == expected


def test_deadlines_are_exact_to_the_second() -> None:
    funded, shipped = _trade("Funded"), _trade("Shipped")
    ship_by, inspection_end = T0 + timedelta(days=5), T0 + timedelta(days=8)
    second = timedelta(seconds=1)
    assert "ship" in {a.name for a in available_actions(funded, SELLER, ship_by - second)}
    assert "ship" not in {a.name for a in available_actions(funded, SELLER, ship_by)}
    assert "refund" in {a.name for a in available_actions(funded, OTHER, ship_by)}
    assert "release" not in {
        a.name for a in available_actions(shipped, BUYER, inspection_end - second)
    }
    assert "release" in {a.name for a in available_actions(shipped, BUYER, inspection_end)}


def test_percent_parsing() -> None:
    assert percent_to_bps("40") == 4000 and percent_to_bps("12.5") == 1250
    assert percent_to_bps("0") == 0 and percent_to_bps("100") == 10_000
    for bad in ("", "abc", "-1", "100.01", "1.234", "NaN", "Infinity"):
        with pytest.raises(ValueError):
            percent_to_bps(bad)


# ------------------------------------------------------------------ pages and actions by role


def test_trade_pages_by_role(app: Flask, web: Any, roles: Roles, client: EscrowClient) -> None:
    pk = funded_trade(app, client, roles)
    assert web(None).client.get(f"/trades/{pk}").status_code == 302
    assert web(None).client.get("/trades").status_code == 302
    for role in ("buyer", "seller", "arbitrator"):
        user = web(role, roles)
        page = user.client.get(f"/trades/{pk}")
        assert page.status_code == 200, role
        text = page.get_data(as_text=True)
        assert f"You are the {role}" in text and "Paid into escrow" in text
        assert "data-deadline=" in text
        assert f"/trades/{pk}" in user.client.get("/trades").get_data(as_text=True)
    stranger = web("stranger", roles)
    assert stranger.client.get(f"/trades/{pk}").status_code == 403
    assert f"/trades/{pk}" not in stranger.client.get("/trades").get_data(as_text=True)
    assert stranger.client.get("/trades/999999").status_code == 404
    buyer_page = web("buyer", roles).client.get(f"/trades/{pk}").get_data(as_text=True)
    assert f"/trades/{pk}/actions/confirm" in buyer_page
    assert f"/trades/{pk}/actions/ship" not in buyer_page
    seller_page = web("seller", roles).client.get(f"/trades/{pk}").get_data(as_text=True)
    assert f"/trades/{pk}/actions/ship" in seller_page
    assert f"/trades/{pk}/actions/confirm" not in seller_page


def test_trade_list_filters(app: Flask, web: Any, roles: Roles, client: EscrowClient) -> None:
    pk = funded_trade(app, client, roles)
    seller = web("seller", roles)
    assert f"/trades/{pk}" in seller.client.get("/trades?status=open&role=seller").get_data(
        as_text=True
    )
    assert f"/trades/{pk}" not in seller.client.get("/trades?status=finished").get_data(
        as_text=True
    )
    assert f"/trades/{pk}" not in seller.client.get("/trades?role=buyer").get_data(as_text=True)
    assert seller.client.get("/trades?status=bogus&page=x").status_code == 200


def test_action_endpoint_by_role(app: Flask, web: Any, roles: Roles, client: EscrowClient) -> None:
    pk = funded_trade(app, client, roles)
    url = f"/trades/{pk}/actions/confirm"
    assert web(None).post_json(url).status_code == 401
    assert web("stranger", roles).post_json(url).status_code == 403
    refused = web("seller", roles).post_json(url)
    assert refused.status_code == 403 and "Only the buyer" in refused.get_json()["error"]
    assert web("arbitrator", roles).post_json(url).status_code == 403
    buyer = web("buyer", roles)
    assert buyer.post_json(f"/trades/{pk}/actions/nonsense").status_code == 404
    assert buyer.post_json("/trades/999999/actions/confirm").status_code == 404
    ok = buyer.post_json(url)
    assert ok.status_code == 200 and ok.get_json()["tx"]["from"].lower() == buyer.address
    # Right role, wrong time: nothing to release before shipping.
    early = buyer.post_json(f"/trades/{pk}/actions/release")
    assert early.status_code == 409 and "not possible now" in early.get_json()["error"]
    bad_split = buyer.post_json(f"/trades/{pk}/actions/propose_split", {"buyer_percent": "150"})
    assert bad_split.status_code == 400
    no_statement = buyer.post_json(f"/trades/{pk}/actions/dispute", {"statement": " "})
    assert no_statement.status_code == 400


def test_ship_then_split_proposed_and_accepted(
    app: Flask,
    web: Any,
    roles: Roles,
    client: EscrowClient,
    chain: Chain,
) -> None:
    pk = funded_trade(app, client, roles)
    seller, buyer = web("seller", roles), web("buyer", roles)
    shipped = seller.post_json(f"/trades/{pk}/actions/ship", {"tracking": "RR123456789KZ"})
    assert shipped.status_code == 200, shipped.get_json()
    send(chain, shipped.get_json()["tx"])
    index_now(app)
    trade = trade_row(app)
    assert trade.status == TradeStatus.SHIPPED.value
    assert trade.shipment_ref == "0x" + hashlib.sha256(b"RR123456789KZ").hexdigest()
    assert "Marked as shipped" in buyer.client.get(f"/trades/{pk}").get_data(as_text=True)

    proposal = buyer.post_json(f"/trades/{pk}/actions/propose_split", {"buyer_percent": "40"})
    send(chain, proposal.get_json()["tx"])
    index_now(app)
    page = seller.client.get(f"/trades/{pk}").get_data(as_text=True)
    assert f"/trades/{pk}/actions/accept_split" in page and "40% to the buyer" in page
    assert buyer.post_json(f"/trades/{pk}/actions/accept_split").status_code == 409
    accepted = seller.post_json(f"/trades/{pk}/actions/accept_split")
    send(chain, accepted.get_json()["tx"])
    index_now(app)
    trade = trade_row(app)
    assert trade.status == TradeStatus.SETTLED.value and trade.buyer_bps == 4000
    assert trade.buyer_amount == ONE_ETH * 4 // 10
    finished = buyer.client.get(f"/trades/{pk}").get_data(as_text=True)
    assert "This trade is finished" in finished
    if "profiles.rate_trade" in app.view_functions:
        assert "Rate the seller" in finished


def test_refund_after_the_ship_by_deadline_uses_chain_time(
    app: Flask,
    web: Any,
    roles: Roles,
    client: EscrowClient,
    chain: Chain,
) -> None:
    pk = funded_trade(app, client, roles, ship_within=DAY)
    buyer = web("buyer", roles)
    assert buyer.post_json(f"/trades/{pk}/actions/refund").status_code == 409
    chain.increase_time(DAY + 60)
    refund = buyer.post_json(f"/trades/{pk}/actions/refund")
    assert refund.status_code == 200, refund.get_json()
    assert web("seller", roles).post_json(f"/trades/{pk}/actions/ship").status_code == 409
    send(chain, refund.get_json()["tx"])
    index_now(app)
    trade = trade_row(app)
    assert trade.status == TradeStatus.REFUNDED.value and trade.refunded_after_deadline


def test_opening_a_dispute_keeps_the_statement(
    app: Flask,
    web: Any,
    roles: Roles,
    client: EscrowClient,
    chain: Chain,
) -> None:
    pk = funded_trade(app, client, roles)
    buyer = web("buyer", roles)
    opened = buyer.post_json(
        f"/trades/{pk}/actions/dispute", {"statement": "The bicycle never arrived."}
    )
    assert opened.status_code == 200, opened.get_json()
    body = opened.get_json()
    assert body["after_send"] == f"/trades/{pk}/statement"
    tx_hash = send(chain, body["tx"])["transactionHash"].to_0x_hex()
    assert buyer.post_json(body["after_send"], {"tx_hash": tx_hash}).status_code == 200
    # Until the chain shows the dispute, the statement is nowhere to be seen.
    assert "The bicycle never arrived." not in buyer.client.get(f"/trades/{pk}").get_data(
        as_text=True
    )
    # The wallet script calling again (a retry) changes nothing.
    assert buyer.post_json(body["after_send"], {"tx_hash": tx_hash}).status_code == 200
    index_now(app)
    page = web("arbitrator", roles).client.get(f"/trades/{pk}").get_data(as_text=True)
    assert "The bicycle never arrived." in page and "Dispute opened" in page
    with db_session(app) as session:
        trade = session.get(Trade, pk)
        assert trade.dispute is not None
        assert trade.dispute.statement == "The bicycle never arrived."
        messages = session.scalars(select(Message).where(Message.trade_id == pk)).all()
        assert [m.body for m in messages] == ["[Dispute statement] The bicycle never arrived."]
    # Used once: a later call (an old tab or cookie) has nothing to publish.
    assert buyer.post_json(body["after_send"], {"tx_hash": tx_hash}).status_code == 409


def test_a_statement_without_a_dispute_is_never_shown(
    app: Flask, web: Any, roles: Roles, client: EscrowClient
) -> None:
    """Asking to open a dispute and then not sending it leaves no statement on the trade,
    however often the page reports it, and an old browser session cannot replay it."""
    pk = funded_trade(app, client, roles)
    seller = web("seller", roles)
    opened = seller.post_json(f"/trades/{pk}/actions/dispute", {"statement": "Buyer lies."})
    assert opened.status_code == 200
    for _ in range(3):
        assert seller.post_json(opened.get_json()["after_send"], {}).status_code == 200
    index_now(app)
    with db_session(app) as session:
        trade = session.get(Trade, pk)
        assert trade.status == TradeStatus.FUNDED.value and trade.dispute is None
        assert session.scalars(select(Message).where(Message.trade_id == pk)).all() == []
    for role in ("buyer", "seller"):
        page = web(role, roles).client.get(f"/trades/{pk}").get_data(as_text=True)
        assert "Buyer lies." not in page


def test_the_statement_goes_with_the_party_who_opened_the_dispute(
    app: Flask, web: Any, roles: Roles, client: EscrowClient
) -> None:
    """The seller wrote a statement but the buyer opened the dispute: the seller's text is not
    published as the dispute's statement."""
    pk = funded_trade(app, client, roles)
    seller = web("seller", roles)
    assert (
        seller.post_json(
            f"/trades/{pk}/actions/dispute", {"statement": "Not mine to open."}
        ).status_code
        == 200
    )
    with db_session(app) as session:
        onchain = int(session.get(Trade, pk).onchain_id)
    terms, _ = client.terms_of(onchain)
    client.open_dispute(onchain, terms, sender=roles.buyer)
    index_now(app)
    page = web("arbitrator", roles).client.get(f"/trades/{pk}").get_data(as_text=True)
    assert "Dispute opened" in page and "Not mine to open." not in page


def test_action_names_are_all_reachable() -> None:
    assert set(ACTIONS) == {
        "ship",
        "confirm",
        "release",
        "refund",
        "seller_refund",
        "propose_split",
        "accept_split",
        "dispute",
        "resolve",
    }


def test_chain_down_is_a_friendly_503(
    app: Flask, web: Any, roles: Roles, deployment: Deployment, monkeypatch: Any
) -> None:
    listing_id, _ = add_listing(app, roles.seller)
    buyer = web("buyer", roles)

    def down(*_args: Any, **_kwargs: Any) -> Any:
        raise ConnectionError("node gone")

    monkeypatch.setattr("escrow.client.EscrowClient.free_lane", down)
    response = buyer.buy(listing_id)
    assert response.status_code == 503
    assert listing_row(app, listing_id).status == ListingStatus.ACTIVE.value


def test_buy_form_offers_the_indexed_arbitrators(
    app: Flask, roles: Roles, deployment: Deployment
) -> None:
    from webapp.trades import buy_arbitrators

    listing_id, _ = add_listing(app, roles.seller)
    with app.test_request_context("/"), db_session(app) as session:
        listing = session.get(Listing, listing_id)
        assert buy_arbitrators(listing) == []  # nothing indexed yet: no chain call either
        index_now(app)
        choices = buy_arbitrators(listing)
    assert [c.address for c in choices] == [a.lower() for a in deployment.arbitrators]
    assert all(0 < c.fee_bps <= 2000 for c in choices)
