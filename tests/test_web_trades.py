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
from escrow.db.models import Listing, ListingStatus, Message, Trade, TradeStatus, User
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
    # v2 terms: the listing's delivery time (10 days by default), at least a day to inspect.
    client = app.extensions["escrow_chain"].client()
    terms, _ = client.terms_of(int(trade.onchain_id))
    assert terms.delivery_window == 10 * DAY and terms.inspection_period >= DAY
    assert terms.platform_fee_bps == body["review"]["platform_fee_bps"]
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
    # A visitor sees what the chain shows (terms, status, timeline), not the conversation.
    visit = stranger.client.get(f"/trades/{pk}")
    assert visit.status_code == 200
    visited = visit.get_data(as_text=True)
    assert "data-visitor" in visited and "Paid into escrow" in visited
    assert 'id="messages"' not in visited and 'id="evidence"' not in visited
    assert "/actions/" not in visited  # nothing is due: no button at all
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
    # The view that published the statement shows it among the messages too, marked as such.
    conversation = page[page.index('<section id="messages"') :]
    conversation = conversation[: conversation.index("</section>")]
    assert "The bicycle never arrived." in conversation and "dispute statement" in conversation
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
        "received",
        "request_extension",
        "grant_extension",
        "cancel_split",
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
    from webapp.checkout import buy_arbitrators

    listing_id, _ = add_listing(app, roles.seller)
    with app.test_request_context("/"), db_session(app) as session:
        listing = session.get(Listing, listing_id)
        assert buy_arbitrators(listing) == []  # nothing indexed yet: no chain call either
        index_now(app)
        choices = buy_arbitrators(listing)
    assert [c.address for c in choices] == [a.lower() for a in deployment.arbitrators]
    assert all(0 < c.fee_bps <= 2000 for c in choices)


# ------------------------------------------------------------------ contract v2: delivery window

DELIVERY = 10 * DAY
SHIPPED_AT = T0 + timedelta(days=1)
WINDOW_END = SHIPPED_AT + timedelta(seconds=DELIVERY)
V2_INSPECTION_END = WINDOW_END + timedelta(days=3)


def _v2(status: str = "Shipped", **fields: Any) -> Trade:
    values: dict[str, Any] = dict(
        status=status,
        buyer=BUYER,
        seller=SELLER,
        arbitrator=ARB,
        ship_by=T0 + timedelta(days=5),
        delivery_window=DELIVERY,
        inspection_period=3 * DAY,
        shipped_at=SHIPPED_AT if status != "Funded" else None,
        inspection_ends_at=V2_INSPECTION_END if status == "Shipped" else None,
        ruling_deadline=T0 + timedelta(days=30) if status == "Disputed" else None,
        extension_granted=False,
    )
    values.update(fields)
    return Trade(**values)


def _names(trade: Trade, who: str | None, when: datetime) -> set[str]:
    return {a.name for a in available_actions(trade, who, when)}


def test_v2_receipt_and_extension_actions() -> None:
    during_delivery = SHIPPED_AT + timedelta(days=2)
    assert _names(_v2(), BUYER, during_delivery) == {
        "confirm",
        "received",
        "request_extension",
        "propose_split",
        "dispute",
    }
    assert _names(_v2(), SELLER, during_delivery) == {"seller_refund", "propose_split", "dispute"}
    for who in (ARB, OTHER):
        assert _names(_v2(), who, during_delivery) == set()
    # Marking received is for before the inspection started: not at or after the window end,
    # not twice.
    second = timedelta(seconds=1)
    assert "received" in _names(_v2(), BUYER, WINDOW_END - second)
    assert "received" not in _names(_v2(), BUYER, WINDOW_END)
    received = _v2(received_at=during_delivery, inspection_ends_at=during_delivery + timedelta(3))
    assert "received" not in _names(received, BUYER, during_delivery + second)
    # One extension request; the seller may give it while the inspection runs.
    asked = _v2(extension_days=4)
    assert "request_extension" not in _names(asked, BUYER, during_delivery)
    assert "grant_extension" in _names(asked, SELLER, during_delivery)
    assert "grant_extension" not in _names(asked, BUYER, during_delivery)
    assert "grant_extension" not in _names(asked, SELLER, V2_INSPECTION_END)
    granted = _v2(extension_days=4, extension_granted=True)
    assert "grant_extension" not in _names(granted, SELLER, during_delivery)
    # Once the inspection is over: release only, and no split can be proposed any more.
    assert _names(_v2(), BUYER, V2_INSPECTION_END) == {"confirm", "release"}
    assert _names(_v2(), SELLER, V2_INSPECTION_END) == {"release", "seller_refund"}
    assert "request_extension" not in _names(_v2(), BUYER, V2_INSPECTION_END)


def test_v2_split_offers_can_be_withdrawn_and_lapse() -> None:
    offer = _v2("Funded", split_proposer="buyer", proposed_buyer_bps=4000)
    before, after = T0, T0 + timedelta(days=6)  # ship-by is day 5
    assert "cancel_split" in _names(offer, BUYER, before)
    assert "accept_split" not in _names(offer, BUYER, before)
    assert "accept_split" in _names(offer, SELLER, before)
    assert "cancel_split" not in _names(offer, SELLER, before)
    # The offer lapsed at ship-by: nobody can accept or withdraw it.
    assert "accept_split" not in _names(offer, SELLER, after)
    assert "cancel_split" not in _names(offer, BUYER, after)
    shipped = _v2(split_proposer="seller", proposed_buyer_bps=2500)
    assert "accept_split" in _names(shipped, BUYER, V2_INSPECTION_END - timedelta(seconds=1))
    assert "accept_split" not in _names(shipped, BUYER, V2_INSPECTION_END)


def test_v1_trades_keep_the_v1_actions() -> None:
    """A trade of the old escrow (no delivery window) never offers what v1 cannot do, and its
    split offers do not lapse."""
    v1 = _v2(delivery_window=None, inspection_ends_at=T0 + timedelta(days=4))
    during = SHIPPED_AT + timedelta(hours=1)
    assert _names(v1, BUYER, during) == {"confirm", "propose_split", "dispute"}
    assert _names(v1, SELLER, during) == {"seller_refund", "propose_split", "dispute"}
    offer = _v2("Funded", delivery_window=None, split_proposer="buyer", proposed_buyer_bps=1)
    assert "accept_split" in _names(offer, SELLER, T0 + timedelta(days=6))
    assert "cancel_split" not in _names(offer, BUYER, T0)


def _bought_trade(app: Flask, web: Any, roles: Roles, chain: Chain, days: int = 4) -> int:
    """A listing with ``days`` of delivery bought through the web and indexed (its pk)."""
    listing_id, _ = add_listing(app, roles.seller, delivery_days=days)
    response = web("buyer", roles).buy(listing_id)
    assert response.status_code == 200, response.get_json()
    send(chain, response.get_json()["tx"])
    index_now(app)
    return trade_row(app).id


def _act(user: Any, chain: Chain, url: str, data: dict[str, Any] | None = None) -> None:
    response = user.post_json(url, data)
    assert response.status_code == 200, response.get_json()
    send(chain, response.get_json()["tx"])


def test_received_then_extension_asked_and_given(
    app: Flask, web: Any, roles: Roles, chain: Chain, client: EscrowClient
) -> None:
    pk = _bought_trade(app, web, roles, chain, days=4)
    buyer, seller = web("buyer", roles), web("seller", roles)
    assert trade_row(app).delivery_window == 4 * DAY
    page = buyer.client.get(f"/trades/{pk}").get_data(as_text=True)
    assert "4 days after shipping" in page and f"/trades/{pk}/actions/received" not in page
    _act(seller, chain, f"/trades/{pk}/actions/ship", {"tracking": "RR1"})
    index_now(app)
    shipped = trade_row(app)
    assert shipped.status == TradeStatus.SHIPPED.value and shipped.shipped_at is not None
    page = buyer.client.get(f"/trades/{pk}").get_data(as_text=True)
    assert f"/trades/{pk}/actions/received" in page and "I received the item" in page
    assert "Ask for more time to inspect" in page and 'name="extra_days"' in page
    assert "Delivery window ends" in page and "Inspection ends" in page
    seller_page = seller.client.get(f"/trades/{pk}").get_data(as_text=True)
    assert f"/trades/{pk}/actions/received" not in seller_page

    # Only the buyer marks the item received.
    url = f"/trades/{pk}/actions/received"
    for role in ("seller", "arbitrator"):
        refused = web(role, roles).post_json(url)
        assert refused.status_code == 403 and "Only the buyer" in refused.get_json()["error"]
    assert web("stranger", roles).post_json(url).status_code == 403
    assert web(None).post_json(url).status_code == 401
    no_csrf = buyer.client.post(url, json={}, headers={"Accept": "application/json"})
    assert no_csrf.status_code == 400 and "expired" in no_csrf.get_json()["error"]
    _act(buyer, chain, url)
    index_now(app)
    onchain = int(trade_row(app).onchain_id)
    terms, _ = client.terms_of(onchain)
    view = client.trade_view(onchain, terms)
    assert view.inspection_started
    received = trade_row(app)
    assert received.received_at is not None
    assert buyer.post_json(url).status_code == 409  # once only
    page = buyer.client.get(f"/trades/{pk}").get_data(as_text=True)
    assert f"/trades/{pk}/actions/received" not in page

    # One extension of 1 to 7 days, asked by the buyer only.
    ask = f"/trades/{pk}/actions/request_extension"
    for bad in ("0", "8", "abc", "", "1.5", "-1", "99999999999"):
        response = buyer.post_json(ask, {"extra_days": bad})
        assert response.status_code == 400, bad
        assert "1 to 7" in response.get_json()["error"]
    assert seller.post_json(ask, {"extra_days": "3"}).status_code == 403
    _act(buyer, chain, ask, {"extra_days": "3"})
    index_now(app)
    assert trade_row(app).extension_days == 3
    assert buyer.post_json(ask, {"extra_days": "2"}).status_code == 409
    seller_page = seller.client.get(f"/trades/{pk}").get_data(as_text=True)
    assert "Give 3 more days" in seller_page
    grant = f"/trades/{pk}/actions/grant_extension"
    refused = buyer.post_json(grant)
    assert refused.status_code == 403 and "Only the seller" in refused.get_json()["error"]
    before = client.trade_view(onchain, terms).deadline
    _act(seller, chain, grant)
    index_now(app)
    assert client.trade_view(onchain, terms).deadline == before + 3 * DAY
    done = trade_row(app)
    assert done.extension_granted
    assert seller.post_json(grant).status_code == 409
    page = buyer.client.get(f"/trades/{pk}").get_data(as_text=True)
    assert "given by the seller" in page
    assert "Buyer received the item" in page
    assert "Buyer asked for 3 more days to inspect" in page
    assert "Seller gave 3 more days to inspect" in page


def test_a_split_offer_can_be_withdrawn_by_its_proposer_only(
    app: Flask, web: Any, roles: Roles, chain: Chain, client: EscrowClient
) -> None:
    pk = _bought_trade(app, web, roles, chain)
    buyer, seller = web("buyer", roles), web("seller", roles)
    _act(buyer, chain, f"/trades/{pk}/actions/propose_split", {"buyer_percent": "60"})
    index_now(app)
    page = buyer.client.get(f"/trades/{pk}").get_data(as_text=True)
    assert "Withdraw my offer" in page and f"/trades/{pk}/actions/cancel_split" in page
    assert "Withdraw my offer" not in seller.client.get(f"/trades/{pk}").get_data(as_text=True)
    url = f"/trades/{pk}/actions/cancel_split"
    assert seller.post_json(url).status_code == 409  # not their offer
    assert web("stranger", roles).post_json(url).status_code == 403
    _act(buyer, chain, url)
    index_now(app)
    onchain = int(trade_row(app).onchain_id)
    terms, _ = client.terms_of(onchain)
    assert client.trade_view(onchain, terms).proposed_buyer_bps == 0
    assert trade_row(app).split_proposer is None
    page = seller.client.get(f"/trades/{pk}").get_data(as_text=True)
    assert f"/trades/{pk}/actions/accept_split" not in page
    assert "Split offer withdrawn by its proposer" in page


def test_a_lapsed_offer_cannot_be_accepted(
    app: Flask, web: Any, roles: Roles, chain: Chain
) -> None:
    pk = _bought_trade(app, web, roles, chain)
    buyer, seller = web("buyer", roles), web("seller", roles)
    _act(seller, chain, f"/trades/{pk}/actions/propose_split", {"buyer_percent": "30"})
    index_now(app)
    assert f"/trades/{pk}/actions/accept_split" in buyer.client.get(f"/trades/{pk}").get_data(
        as_text=True
    )
    chain.increase_time(6 * DAY)  # past ship-by: the offer lapsed
    page = buyer.client.get(f"/trades/{pk}").get_data(as_text=True)
    assert f"/trades/{pk}/actions/accept_split" not in page and "data-offer-lapsed" in page
    assert buyer.post_json(f"/trades/{pk}/actions/accept_split").status_code == 409


# ------------------------------------------------------------------ the platform fee cap


def test_a_fee_raised_after_the_review_is_refused_with_a_message(
    app: Flask, web: Any, roles: Roles, client: EscrowClient
) -> None:
    listing_id, _ = add_listing(app, roles.seller)
    buyer = web("buyer", roles)
    first = buyer.buy(listing_id)
    assert first.status_code == 200
    review = first.get_json()["review"]
    shown = review["platform_fee_bps"]
    assert review["delivery_days"] == 10 and review["delivery_seconds"] == 10 * DAY
    assert review["delivery_text"] == (
        "Seller promises delivery within 10 days after shipping; you then have 3 days to inspect."
    )
    client.set_platform_fee(roles.owner, shown + 150, sender=roles.owner)
    quote = {**buyer.quote(listing_id), "platform_fee_bps": str(shown)}
    again = buyer.buy(listing_id, {"hold": first.get_json()["hold"]}, quote=quote)
    assert again.status_code == 409
    error = again.get_json()["error"]
    assert "platform fee went up" in error and "Nothing was paid" in error
    assert "tx" not in again.get_json()
    assert listing_row(app, listing_id).reserved_by is None  # the item is free again
    # Reviewing the new fee, the buyer can pay.
    fresh = buyer.buy(listing_id)
    assert fresh.status_code == 200
    assert fresh.get_json()["review"]["platform_fee_bps"] == shown + 150
    for bad in ("-1", "10001", "abc", True, "1" * 40):
        quote = {**buyer.quote(listing_id), "platform_fee_bps": bad}
        malformed = buyer.buy(listing_id, {"hold": fresh.get_json()["hold"]}, quote=quote)
        assert malformed.status_code == 400, bad


def test_a_fee_raised_before_the_payment_is_mined_reverts_it(
    app: Flask, web: Any, roles: Roles, chain: Chain, client: EscrowClient
) -> None:
    """The fee the buyer reviewed is the payment's cap: raised between the prepared payment
    and its mining, the escrow reverts it and the page is told why."""
    listing_id, _ = add_listing(app, roles.seller)
    buyer = web("buyer", roles)
    first = buyer.buy(listing_id).get_json()
    shown = first["review"]["platform_fee_bps"]
    quote = {**buyer.quote(listing_id), "platform_fee_bps": str(shown)}
    prepared = buyer.buy(listing_id, {"hold": first["hold"]}, quote=quote)
    assert prepared.status_code == 200, prepared.get_json()
    body = prepared.get_json()
    client.set_platform_fee(roles.owner, shown + 1, sender=roles.owner)
    params = dict(body["tx"])
    for key in ("value", "gas", "chainId"):
        params[key] = int(params[key], 16)
    tx_hash = chain.w3.eth.send_transaction(params)  # type: ignore[arg-type]
    assert chain.w3.eth.wait_for_transaction_receipt(tx_hash)["status"] == 0
    hold_paid = buyer.post_json(body["paid_url"], {"tx_hash": tx_hash.to_0x_hex()})
    assert hold_paid.status_code == 200
    why = buyer.post_json(body["failed_url"], {"tx_hash": tx_hash.to_0x_hex()})
    assert why.status_code == 200
    assert "platform fee went up" in why.get_json()["error"]
    assert listing_row(app, listing_id).reserved_by is None
    index_now(app)
    with db_session(app) as session:
        assert session.scalars(select(Trade)).all() == []
    # Not the buyer's hold: nothing to explain.
    assert (
        web("buyer2", roles).post_json(body["failed_url"], {"tx_hash": "0x" + "1" * 64}).status_code
        == 404
    )
    assert buyer.post_json(body["failed_url"], {"tx_hash": "nope"}).status_code == 400


# ------------------------------------------------------------------ trades of an older escrow


def _v1_escrow(chain: Chain, deployment: Deployment, roles: Roles) -> EscrowClient:
    """The version 1 escrow beside the current one, with the deployment's arbitrator."""
    from escrow.deploy import _deploy_contract

    record = _deploy_contract(chain, "P2PEscrowV1", [roles.owner, 7 * DAY], roles.owner)
    assert record.version == 1
    old = EscrowClient(chain, record.address, version=1)
    old.register_arbitrator(roles.arbitrator, 1000, sender=roles.owner)
    return old


def test_a_v1_trade_is_finished_through_its_own_escrow(
    chain: Chain,
    deployment: Deployment,
    roles: Roles,
    web_db_url: str,
    tmp_path: Any,
    keys: dict[str, LocalAccount],
) -> None:
    """After the upgrade the market follows both escrows: a trade of the old one gets only the
    v1 actions, and each transaction is built for the old escrow's address and terms."""
    from dataclasses import replace

    from web_fixtures import app_settings, sign_in
    from webapp import create_app

    old = _v1_escrow(chain, deployment, roles)
    funded = old.fund(
        seller=roles.seller,
        arbitrator=roles.arbitrator,
        amount=ONE_ETH,
        ship_by=chain.latest_timestamp() + 3 * DAY,
        inspection_period=2 * DAY,
        sender=roles.buyer,
    )
    terms = funded.terms
    assert terms.delivery_window is None
    upgraded = replace(deployment, previous_escrows=[old_record(deployment, old)])
    app = create_app(app_settings(web_db_url, tmp_path, chain, upgraded))
    try:
        with db_session(app) as session:
            trade = Trade(
                chain_id=chain.chain_id,
                contract_address=old.address.lower(),
                onchain_id=funded.trade_id,
                listing_ref="0x" + "00" * 32,
                buyer=roles.buyer.lower(),
                seller=roles.seller.lower(),
                arbitrator=roles.arbitrator.lower(),
                token="0x" + "00" * 20,
                amount=ONE_ETH,
                ship_by=datetime.fromtimestamp(terms.ship_by, UTC),
                inspection_period=terms.inspection_period,
                arbitrator_fee_bps=terms.arbitrator_fee_bps,
                platform_fee_bps=terms.platform_fee_bps,
                delivery_window=None,
                terms_hash="0x",
                status="Funded",
                funded_at=datetime.now(UTC),
                funded_block=chain.w3.eth.block_number,
                funded_tx="0x" + "ab" * 32,
                last_event_block=chain.w3.eth.block_number,
            )
            session.add(trade)
            session.commit()
            pk = trade.id
        seller = sign_in(app.test_client(), keys[roles.seller])
        buyer = sign_in(app.test_client(), keys[roles.buyer])
        page = seller.client.get(f"/trades/{pk}").get_data(as_text=True)
        assert f"/trades/{pk}/actions/ship" in page and "Delivery time" not in page
        shipped = seller.post_json(f"/trades/{pk}/actions/ship", {"tracking": "old"})
        assert shipped.status_code == 200, shipped.get_json()
        assert shipped.get_json()["tx"]["to"].lower() == old.address.lower()
        assert shipped.get_json()["tx"]["to"].lower() != deployment.escrow.address.lower()
        send(chain, shipped.get_json()["tx"])
        assert old.trade_state(funded.trade_id, terms).status.name == "SHIPPED"
        with db_session(app) as session:
            row = session.get(Trade, pk)
            row.status = "Shipped"
            row.shipped_at = datetime.now(UTC)
            row.inspection_ends_at = datetime.fromtimestamp(
                chain.latest_timestamp() + terms.inspection_period, UTC
            )
            session.commit()
        page = buyer.client.get(f"/trades/{pk}").get_data(as_text=True)
        assert "I received the item" not in page and "Ask for more time" not in page
        assert buyer.post_json(f"/trades/{pk}/actions/received").status_code == 409
        confirmed = buyer.post_json(f"/trades/{pk}/actions/confirm")
        assert confirmed.status_code == 200, confirmed.get_json()
        assert confirmed.get_json()["tx"]["to"].lower() == old.address.lower()
        send(chain, confirmed.get_json()["tx"])
        assert old.trade_state(funded.trade_id, terms).status.name == "RELEASED"
    finally:
        app.extensions["escrow_engine"].dispose()


def old_record(deployment: Deployment, old: EscrowClient) -> Any:
    from escrow.deploy import ContractRecord

    return ContractRecord(
        name="P2PEscrowV1",
        address=old.address,
        tx_hash="0x" + "00" * 32,
        block_number=0,
        args=[],
        version=1,
    )


# ------------------------------------------------------------------ names, fees and timeouts


def _set_name(app: Flask, address: str, name: str) -> None:
    with db_session(app) as session:
        user = session.scalar(select(User).where(User.address == address.lower()))
        if user is None:
            user = User(address=address.lower(), languages=[])
            session.add(user)
        user.display_name = name
        session.commit()


def test_the_trade_page_names_the_parties_with_links(
    app: Flask, web: Any, roles: Roles, client: EscrowClient
) -> None:
    pk = funded_trade(app, client, roles)
    _set_name(app, roles.seller, "Aigerim's Bikes")
    _set_name(app, roles.arbitrator, "Judge Nurlan")
    page = web("buyer", roles).client.get(f"/trades/{pk}").get_data(as_text=True)
    seller, arbitrator, buyer = (a.lower() for a in (roles.seller, roles.arbitrator, roles.buyer))
    assert f'<a class="party" href="/u/{seller}" title="{seller}">Aigerim&#39;s Bikes</a>' in page
    assert f'<a class="party" href="/u/{arbitrator}" title="{arbitrator}">Judge Nurlan</a>' in page
    # Without a chosen name, the short address, still linked, with the full one on hover.
    short = f"{buyer[:6]}…{buyer[-4:]}"
    assert f'<a class="party" href="/u/{buyer}" title="{buyer}">{short}</a>' in page
    listing = web("seller", roles).client.get("/trades").get_data(as_text=True)
    assert f'href="/u/{buyer}"' in listing  # the trade list names the other party


def test_the_outcome_names_every_payout_and_fee(
    app: Flask, web: Any, roles: Roles, client: EscrowClient, chain: Chain
) -> None:
    from webapp.views import format_amount

    pk = funded_trade(app, client, roles)
    buyer = web("buyer", roles)
    send(chain, buyer.post_json(f"/trades/{pk}/actions/confirm").get_json()["tx"])
    index_now(app)
    trade = trade_row(app)
    assert trade.status == TradeStatus.RELEASED.value
    assert trade.platform_fee and trade.platform_fee > 0  # the local deployment charges a fee
    assert trade.seller_amount == trade.amount - trade.platform_fee
    page = buyer.client.get(f"/trades/{pk}").get_data(as_text=True)
    with app.test_request_context():
        expected = (
            f"Buyer received {format_amount(0, 'ETH')}, "
            f"seller {format_amount(trade.seller_amount, 'ETH')}, "
            f"platform fee {format_amount(trade.platform_fee, 'ETH')}"
        )
    assert expected in page

    # A ruling: the arbitrator's fee is named too, with the amounts the chain paid.
    pk = funded_trade(app, client, roles)
    send(
        chain,
        buyer.post_json(f"/trades/{pk}/actions/dispute", {"statement": "Broken"}).get_json()["tx"],
    )
    index_now(app)
    ruling = web("arbitrator", roles).post_json(f"/arbitration/{pk}/rule", {"buyer_percent": 30})
    send(chain, ruling.get_json()["tx"])
    index_now(app)
    trade = trade_row(app)
    assert trade.status == TradeStatus.RESOLVED.value and trade.arbitrator_fee
    parts = (trade.buyer_amount, trade.seller_amount, trade.arbitrator_fee, trade.platform_fee)
    assert sum(int(part or 0) for part in parts) == trade.amount
    page = buyer.client.get(f"/trades/{pk}").get_data(as_text=True)
    with app.test_request_context():
        expected = (
            f"Buyer received {format_amount(trade.buyer_amount, 'ETH')}, "
            f"seller {format_amount(trade.seller_amount, 'ETH')}, "
            f"arbitrator fee {format_amount(trade.arbitrator_fee, 'ETH')}, "
            f"platform fee {format_amount(trade.platform_fee, 'ETH')}"
        )
    assert expected in page


def test_a_visitor_sends_a_due_refund_and_nothing_else(
    app: Flask, web: Any, roles: Roles, client: EscrowClient, chain: Chain
) -> None:
    pk = funded_trade(app, client, roles, ship_within=DAY)
    visitor = web("buyer2", roles)
    # Only the permissionless timeouts, and only when due.
    for name in ("confirm", "ship", "seller_refund", "propose_split", "dispute", "received"):
        refused = visitor.post_json(f"/trades/{pk}/actions/{name}", {"statement": "x"})
        assert refused.status_code == 403, name
        assert "Only the buyer, the seller and the arbitrator" in refused.get_json()["error"]
    early = visitor.post_json(f"/trades/{pk}/actions/refund")
    assert early.status_code == 409 and "not due yet" in early.get_json()["error"]
    wrong_state = visitor.post_json(f"/trades/{pk}/actions/release")
    assert wrong_state.status_code == 409 and "not possible now" in wrong_state.get_json()["error"]
    before = visitor.client.get(f"/trades/{pk}").get_data(as_text=True)
    assert f"/trades/{pk}/actions/refund" not in before
    # The visitor reads when the refund becomes possible.
    assert 'data-upcoming-timeout="refund"' in before
    assert "Anyone can send “Refund after missed deadline” from" in before

    chain.increase_time(DAY + 60)
    page = visitor.client.get(f"/trades/{pk}").get_data(as_text=True)
    assert f"/trades/{pk}/actions/refund" in page and "data-visitor" in page
    assert f"/trades/{pk}/actions/confirm" not in page
    refund = visitor.post_json(f"/trades/{pk}/actions/refund")
    assert refund.status_code == 200, refund.get_json()
    assert refund.get_json()["tx"]["from"].lower() == roles.buyer2.lower()
    send(chain, refund.get_json()["tx"])
    index_now(app)
    trade = trade_row(app)
    assert trade.status == TradeStatus.REFUNDED.value and trade.refunded_after_deadline
    # A stale tab: the refund went through; sending it again says why not.
    again = visitor.post_json(f"/trades/{pk}/actions/refund")
    assert again.status_code == 409 and "not possible now" in again.get_json()["error"]


def test_a_visitor_releases_after_the_inspection_and_resolves_after_the_ruling_time(
    app: Flask, web: Any, roles: Roles, client: EscrowClient, chain: Chain
) -> None:
    visitor = web("stranger", roles)
    pk = funded_trade(app, client, roles)
    send(chain, web("seller", roles).post_json(f"/trades/{pk}/actions/ship").get_json()["tx"])
    index_now(app)
    early = visitor.post_json(f"/trades/{pk}/actions/release")
    assert early.status_code == 409 and "not due yet" in early.get_json()["error"]
    chain.increase_time(40 * DAY)  # past the delivery window and the inspection
    release = visitor.post_json(f"/trades/{pk}/actions/release")
    assert release.status_code == 200, release.get_json()
    send(chain, release.get_json()["tx"])
    index_now(app)
    assert trade_row(app).status == TradeStatus.RELEASED.value

    pk = funded_trade(app, client, roles)
    buyer = web("buyer", roles)
    send(
        chain,
        buyer.post_json(f"/trades/{pk}/actions/dispute", {"statement": "No"}).get_json()["tx"],
    )
    index_now(app)
    early = visitor.post_json(f"/trades/{pk}/actions/resolve")
    assert early.status_code == 409 and "not due yet" in early.get_json()["error"]
    # The dispute stays private: the visitor does not read the statement.
    assert "No</p>" not in visitor.client.get(f"/trades/{pk}").get_data(as_text=True)
    chain.increase_time(client.ruling_period() + DAY)
    page = visitor.client.get(f"/trades/{pk}").get_data(as_text=True)
    assert f"/trades/{pk}/actions/resolve" in page
    resolve = visitor.post_json(f"/trades/{pk}/actions/resolve")
    assert resolve.status_code == 200, resolve.get_json()
    send(chain, resolve.get_json()["tx"])
    index_now(app)
    assert trade_row(app).status == TradeStatus.RESOLVED.value


def test_destructive_trade_actions_ask_first(
    app: Flask, web: Any, roles: Roles, client: EscrowClient
) -> None:
    pk = funded_trade(app, client, roles)
    page = web("buyer", roles).client.get(f"/trades/{pk}").get_data(as_text=True)
    assert 'data-confirm="Open a dispute?' in page
    assert 'data-confirm="Release the money to the seller?' in page
    seller = web("seller", roles).client.get(f"/trades/{pk}").get_data(as_text=True)
    assert 'data-confirm="Refund the buyer in full?' in seller
