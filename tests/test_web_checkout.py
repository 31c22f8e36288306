"""Checkout: the buyer pays exactly what the page showed, and holds nobody can abuse.

Through the Flask test client on the embedded chain: the quote bound to the listing version,
price changes refused while a buyer pays, holds released on refusal, sign-out, a failed
payment, a replaced checkout, and the rate limit on abandoned checkouts.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import select

from escrow.chain import Chain
from escrow.db.models import CheckoutHold, Listing, TradeStatus
from helpers import ONE_ETH, Roles
from web_fixtures import add_listing, db_session, index_now, listing_row, send, trade_row

EDIT_FORM = {
    "title": "Bicycle",
    "description": "",
    "currency": "ETH",
    "quantity": "1",
    "category": "other",
    "city": "Almaty",
}


def _holds(app: Flask, listing_id: int) -> list[CheckoutHold]:
    with db_session(app) as session:
        rows = session.scalars(
            select(CheckoutHold)
            .where(CheckoutHold.listing_id == listing_id)
            .order_by(CheckoutHold.id)
        ).all()
        session.expunge_all()
        return list(rows)


def _edit_price(seller: Any, listing_id: int, price: str, **changes: str) -> Any:
    return seller.post_form(
        f"/listings/{listing_id}/edit", {**EDIT_FORM, "price": price, **changes}
    )


# ---------------------------------------------------------------------------- the quote


def test_a_stale_price_is_refused_with_the_new_terms(
    app: Flask, web: Any, roles: Roles, chain: Chain
) -> None:
    """The seller raised the price after the buyer opened the page: nothing is prepared at the
    old page's click, the buyer is shown the new price, and paying then sends the new amount."""
    listing_id, _ = add_listing(app, roles.seller, price=75 * ONE_ETH // 1000)
    buyer, seller = web("buyer", roles), web("seller", roles)
    seen = buyer.quote(listing_id)
    assert seen == {"amount": str(75 * ONE_ETH // 1000), "currency": "ETH", "version": "1"}

    edited = _edit_price(seller, listing_id, "7.5")
    assert edited.status_code == 302, edited.get_data(as_text=True)
    assert listing_row(app, listing_id).price == 75 * ONE_ETH // 10

    stale = buyer.buy(listing_id, quote=seen)
    assert stale.status_code == 409
    body = stale.get_json()
    assert "tx" not in body and "permit" not in body
    assert "0.075 ETH" in body["error"] and "7.5 ETH" in body["error"]
    assert body["terms"]["amount"] == str(75 * ONE_ETH // 10)
    assert body["terms"]["version"] == 2
    assert _holds(app, listing_id) == []  # nothing held for a refused quote

    fresh = buyer.buy(listing_id, quote={k: str(v) for k, v in body["terms"].items()})
    assert fresh.status_code == 200, fresh.get_json()
    review = fresh.get_json()["review"]
    assert review["amount"] == str(75 * ONE_ETH // 10) and review["amount_text"] == "7.5 ETH"
    assert int(fresh.get_json()["tx"]["value"], 16) == 75 * ONE_ETH // 10
    send(chain, fresh.get_json()["tx"])
    index_now(app)
    assert trade_row(app).amount == 75 * ONE_ETH // 10


def test_a_missing_or_malformed_quote_is_refused(app: Flask, web: Any, roles: Roles) -> None:
    listing_id, _ = add_listing(app, roles.seller)
    buyer = web("buyer", roles)
    missing = buyer.post_json(f"/listings/{listing_id}/buy")
    assert missing.status_code == 409 and missing.get_json()["terms"]["amount"] == str(ONE_ETH)
    wrong_currency = buyer.buy(
        listing_id, quote={"amount": str(ONE_ETH), "currency": "USD", "version": "1"}
    )
    assert wrong_currency.status_code == 409
    for bad in ({"amount": "1e18", "currency": "ETH", "version": "1"}, {"amount": "x"}):
        response = buyer.buy(listing_id, quote=bad)
        assert response.status_code == 400, response.get_json()
    assert _holds(app, listing_id) == []


def test_a_title_change_needs_a_fresh_look(app: Flask, web: Any, roles: Roles) -> None:
    listing_id, _ = add_listing(app, roles.seller)
    buyer, seller = web("buyer", roles), web("seller", roles)
    seen = buyer.quote(listing_id)
    assert _edit_price(seller, listing_id, "1", title="Bicycle (no wheels)").status_code == 302
    response = buyer.buy(listing_id, quote=seen)
    assert response.status_code == 409
    assert "changed this listing" in response.get_json()["error"]
    # A save that changes nothing keeps the version.
    assert _edit_price(seller, listing_id, "1", title="Bicycle (no wheels)").status_code == 302
    assert listing_row(app, listing_id).version == 2


def test_the_review_names_every_term(app: Flask, web: Any, roles: Roles) -> None:
    listing_id, _ = add_listing(app, roles.seller, price=2 * ONE_ETH)
    response = web("buyer", roles).buy(listing_id, {"arbitrator": roles.arbitrator})
    review = response.get_json()["review"]
    assert review["title"] == "Bicycle" and review["amount_text"] == "2 ETH"
    assert review["seller"]["address"] == roles.seller.lower()
    assert review["arbitrator"]["address"] == roles.arbitrator.lower()
    assert isinstance(review["arbitrator"]["fee_bps"], int)
    assert isinstance(review["platform_fee_bps"], int)
    assert review["inspection_seconds"] == app.config.get("INSPECTION_SECONDS", 3 * 86400)
    assert datetime.fromisoformat(review["ship_by"]) > datetime.now(UTC)
    assert datetime.fromisoformat(review["hold_expires"]) <= datetime.now(UTC) + timedelta(
        seconds=121
    )


# ---------------------------------------------------------------------------- terms locked


def test_price_cannot_change_while_a_buyer_pays(app: Flask, web: Any, roles: Roles) -> None:
    listing_id, _ = add_listing(app, roles.seller)
    buyer, seller = web("buyer", roles), web("seller", roles)
    assert buyer.buy(listing_id).status_code == 200
    refused = _edit_price(seller, listing_id, "7.5")
    assert refused.status_code == 400
    assert "cannot change" in refused.get_data(as_text=True)
    assert listing_row(app, listing_id).price == ONE_ETH
    refused_currency = _edit_price(seller, listing_id, "1", currency="USD")
    assert refused_currency.status_code == 400
    # Words may change; the version moves, so the next checkout re-confirms.
    assert _edit_price(seller, listing_id, "1", description="Fresh tyres").status_code == 302
    assert listing_row(app, listing_id).version == 2
    # Nor can the seller pause or delete the item mid-payment.
    seller.post_form(f"/listings/{listing_id}/pause", {"confirm": "y"})
    seller.post_form(f"/listings/{listing_id}/delete", {"confirm": "y"})
    assert listing_row(app, listing_id).status == "active"


def test_price_cannot_change_while_a_trade_is_open(
    app: Flask, web: Any, roles: Roles, chain: Chain
) -> None:
    listing_id, _ = add_listing(app, roles.seller, quantity=3)
    buyer, seller = web("buyer", roles), web("seller", roles)
    response = buyer.buy(listing_id)
    send(chain, response.get_json()["tx"])
    index_now(app)
    assert trade_row(app).status == TradeStatus.FUNDED.value
    assert not any(h.state != "ended" for h in _holds(app, listing_id))
    assert _edit_price(seller, listing_id, "9", quantity="3").status_code == 400
    assert listing_row(app, listing_id).price == ONE_ETH


# ---------------------------------------------------------------------------- holds


def test_a_refused_wallet_frees_the_item_at_once(app: Flask, web: Any, roles: Roles) -> None:
    listing_id, _ = add_listing(app, roles.seller)
    first, second = web("buyer", roles), web("buyer2", roles)
    started = first.buy(listing_id).get_json()
    assert listing_row(app, listing_id).reserved_by == first.address
    page = second.client.get(f"/listings/{listing_id}").get_data(as_text=True)
    assert "On hold until" in page and "data-checkout-url" not in page
    market = second.client.get("/").get_data(as_text=True)
    assert "Bicycle" in market and "On hold until" in market  # still listed

    released = first.post_json(started["release_url"], {"reason": "refused"})
    assert released.status_code == 200 and released.get_json() == {"released": True}
    assert listing_row(app, listing_id).reserved_by is None
    assert second.buy(listing_id).status_code == 200
    (hold, other) = _holds(app, listing_id)
    assert (hold.state, hold.end_reason) == ("ended", "refused")
    assert other.buyer == second.address and other.state == "wallet"


def test_another_buyer_cannot_release_or_report_a_hold(app: Flask, web: Any, roles: Roles) -> None:
    listing_id, _ = add_listing(app, roles.seller)
    started = web("buyer", roles).buy(listing_id).get_json()
    stranger = web("buyer2", roles)
    assert stranger.post_json(started["release_url"]).status_code == 404
    assert stranger.post_json(started["paid_url"], {"tx_hash": "0x" + "11" * 32}).status_code == 404
    assert listing_row(app, listing_id).reserved_by == roles.buyer.lower()


def test_signing_out_mid_payment_frees_the_item(app: Flask, web: Any, roles: Roles) -> None:
    listing_id, _ = add_listing(app, roles.seller)
    first = web("buyer", roles)
    assert first.buy(listing_id).status_code == 200
    first.post_form("/auth/logout")
    assert listing_row(app, listing_id).reserved_by is None
    assert _holds(app, listing_id)[0].end_reason == "signed_out"
    assert web("buyer2", roles).buy(listing_id).status_code == 200


def test_a_wallet_hold_ends_after_two_minutes(app: Flask, web: Any, roles: Roles) -> None:
    listing_id, _ = add_listing(app, roles.seller)
    first, second = web("buyer", roles), web("buyer2", roles)
    seen = second.quote(listing_id)
    first.buy(listing_id)
    hold = _holds(app, listing_id)[0]
    created = hold.created_at if hold.created_at.tzinfo else hold.created_at.replace(tzinfo=UTC)
    expires = hold.expires_at if hold.expires_at.tzinfo else hold.expires_at.replace(tzinfo=UTC)
    assert expires - created == timedelta(seconds=120)
    assert second.buy(listing_id, quote=seen).status_code == 409
    with db_session(app) as session:
        session.get(CheckoutHold, hold.id).expires_at = datetime.now(UTC) - timedelta(seconds=1)
        session.get(Listing, listing_id).reserved_until = datetime.now(UTC) - timedelta(seconds=1)
        session.commit()
    page = second.client.get(f"/listings/{listing_id}").get_data(as_text=True)
    assert "On hold" not in page
    assert second.buy(listing_id, quote=seen).status_code == 200


def test_a_reported_payment_holds_until_mined_then_the_trade_ends_it(
    app: Flask, web: Any, roles: Roles, chain: Chain
) -> None:
    listing_id, _ = add_listing(app, roles.seller)
    buyer = web("buyer", roles)
    started = buyer.buy(listing_id).get_json()
    tx_hex = send(chain, started["tx"])["transactionHash"].to_0x_hex()
    paid = buyer.post_json(started["paid_url"], {"tx_hash": tx_hex})
    assert paid.status_code == 200, paid.get_json()
    hold = _holds(app, listing_id)[0]
    assert hold.state == "payment" and hold.tx_hash == tx_hex.lower()
    held = datetime.fromisoformat(paid.get_json()["held_until"])
    assert timedelta(seconds=590) < held - datetime.now(UTC) <= timedelta(seconds=600)
    # Reporting it again (a retry) changes nothing.
    assert buyer.post_json(started["paid_url"], {"tx_hash": tx_hex}).status_code == 200
    index_now(app)
    hold = _holds(app, listing_id)[0]
    assert (hold.state, hold.end_reason) == ("ended", "funded")
    assert listing_row(app, listing_id).status == "sold"


def test_a_payment_that_is_not_for_this_item_is_refused(
    app: Flask, web: Any, roles: Roles, chain: Chain
) -> None:
    first_id, _ = add_listing(app, roles.seller)
    second_id, _ = add_listing(app, roles.seller, title="Lamp")
    buyer = web("buyer", roles)
    one = buyer.buy(first_id).get_json()
    tx_hex = send(chain, one["tx"])["transactionHash"].to_0x_hex()
    two = buyer.buy(second_id).get_json()  # replaces the first hold
    refused = buyer.post_json(two["paid_url"], {"tx_hash": tx_hex})
    assert refused.status_code == 400
    assert _holds(app, second_id)[0].state == "wallet"  # not extended by a wrong report
    assert buyer.post_json(two["paid_url"], {"tx_hash": "nonsense"}).status_code == 400


def test_a_failed_payment_ends_the_hold(app: Flask, web: Any, roles: Roles, chain: Chain) -> None:
    listing_id, _ = add_listing(app, roles.seller)
    buyer = web("buyer", roles)
    started = buyer.buy(listing_id).get_json()
    tx = dict(started["tx"], gas=30_000, value=int(started["tx"]["value"], 16))
    tx.pop("chainId")
    sent = chain.w3.eth.send_transaction(tx)  # too little gas: mined, reverted
    assert chain.w3.eth.wait_for_transaction_receipt(sent)["status"] == 0
    tx_hex = sent.to_0x_hex()
    assert buyer.post_json(started["paid_url"], {"tx_hash": tx_hex}).status_code == 200
    status = buyer.client.get(f"/api/tx/{tx_hex}").get_json()
    assert status["status"] == "failed"
    hold = _holds(app, listing_id)[0]
    assert (hold.state, hold.end_reason) == ("ended", "failed")
    assert listing_row(app, listing_id).reserved_by is None


def test_one_open_hold_per_buyer(app: Flask, web: Any, roles: Roles) -> None:
    first_id, _ = add_listing(app, roles.seller)
    second_id, _ = add_listing(app, roles.seller, title="Lamp")
    buyer = web("buyer", roles)
    assert buyer.buy(first_id).status_code == 200
    assert buyer.buy(second_id).status_code == 200
    assert listing_row(app, first_id).reserved_by is None
    assert _holds(app, first_id)[0].end_reason == "replaced"
    # A double click (the same checkout again) reuses the hold instead of making another.
    assert buyer.buy(second_id).status_code == 200
    assert len(_holds(app, second_id)) == 1


def test_abandoning_checkouts_in_a_loop_locks_nothing(app: Flask, web: Any, roles: Roles) -> None:
    """One account clicks Buy and refuses on every listing; another buyer can still buy each,
    and after the limit the first account's checkouts are refused for a while."""
    limit = int(app.config["ABANDON_LIMIT"])
    listings = [add_listing(app, roles.seller, title=f"Item {n}")[0] for n in range(limit + 1)]
    abuser, honest = web("buyer", roles), web("buyer2", roles)
    for n, listing_id in enumerate(listings):
        seen = honest.quote(listing_id)
        started = abuser.buy(listing_id)
        if n < limit:
            assert started.status_code == 200, started.get_json()
            abuser.post_json(started.get_json()["release_url"], {"reason": "refused"})
        else:
            assert started.status_code == 429
            assert "unfinished" in started.get_json()["error"]
            assert datetime.fromisoformat(started.get_json()["retry_at"]) > datetime.now(UTC)
        got = honest.buy(listing_id, quote=seen)
        assert got.status_code == 200, got.get_json()
        honest.post_json(got.get_json()["release_url"], {"reason": "refused"})
        # The honest buyer's own releases count too, but stay under the limit here.
        with db_session(app) as session:
            for hold in session.scalars(
                select(CheckoutHold).where(CheckoutHold.buyer == honest.address)
            ):
                hold.end_reason = "funded"  # as if each had been paid
            session.commit()


def test_a_payment_reported_after_the_indexer_saw_it_stays_ended(
    app: Flask, web: Any, roles: Roles, chain: Chain
) -> None:
    """The page reports the hash while the indexer (another process) ends the hold as funded:
    the report must not bring the hold back, or the buyer could buy nothing for ten minutes."""
    from webapp import checkout

    listing_id, _ = add_listing(app, roles.seller)
    buyer = web("buyer", roles)
    started = buyer.buy(listing_id).get_json()
    tx_hex = send(chain, started["tx"])["transactionHash"].to_0x_hex()
    with app.app_context(), db_session(app) as web_session:
        stale = web_session.get(CheckoutHold, started["hold"])  # read before the indexer ran
        assert stale is not None and stale.state == "wallet"
        index_now(app)  # ends the hold as 'funded' in its own session
        found = dict(chain.w3.eth.get_transaction(tx_hex))
        escrow = app.extensions["escrow_chain"].deployment().escrow.address
        checkout.mark_paid(web_session, stale, tx_hex.lower(), found, escrow)
    hold = _holds(app, listing_id)[0]
    assert (hold.state, hold.end_reason) == ("ended", "funded")
    other_id, _ = add_listing(app, roles.seller, title="Lamp")
    assert buyer.buy(other_id).status_code == 200


# ---------------------------------------------------------------------------- after payment


def test_the_trade_shows_the_listing_as_bought_after_the_seller_rewrites_it(
    app: Flask, web: Any, roles: Roles, chain: Chain
) -> None:
    """A seller edits the listing's words after the buyer paid ("Phone case (no phone)"): the
    trade page and the arbitrator still see what the buyer bought."""
    listing_id, _ = add_listing(app, roles.seller, title="Phone", quantity=2)
    buyer, seller = web("buyer", roles), web("seller", roles)
    started = buyer.buy(listing_id, {"arbitrator": roles.arbitrator}).get_json()
    send(chain, started["tx"])
    index_now(app)
    trade = trade_row(app)
    edited = _edit_price(
        seller,
        listing_id,
        "1",
        title="Phone case (no phone)",
        description="Only the case.",
        quantity="2",
    )
    assert edited.status_code == 302, edited.get_data(as_text=True)
    for who in ("buyer", "seller", "arbitrator"):
        page = web(who, roles).client.get(f"/trades/{trade.id}").get_data(as_text=True)
        assert "What was bought" in page and "the seller has changed it since" in page, who
        assert "Only the case." not in page and "Phone case (no phone)" not in page, who
    trades_page = buyer.client.get("/trades").get_data(as_text=True)
    assert "Phone case" not in trades_page
    client = app.extensions["escrow_chain"].client()
    terms, _ = client.terms_of(int(trade.onchain_id))
    client.open_dispute(int(trade.onchain_id), terms, sender=roles.buyer)
    index_now(app)
    case = web("arbitrator", roles).client.get(f"/arbitration/{trade.id}").get_data(as_text=True)
    assert "Case: Phone" in case and "Phone case (no phone)" not in case
    assert "What was bought" in case


def test_a_strangers_trade_naming_a_listing_is_shown_as_not_linked(
    app: Flask, web: Any, roles: Roles, chain: Chain
) -> None:
    """Anyone can fund a trade quoting a listing's public reference: a trade that does not pay
    the listing's price to its seller leaves the listing for sale and says so on its page."""
    listing_id, ref = add_listing(app, roles.seller, price=2 * ONE_ETH)
    client = app.extensions["escrow_chain"].client()
    funded = client.fund(
        seller=roles.seller,
        arbitrator=roles.arbitrator,
        amount=1,
        ship_by=client.chain.latest_timestamp() + 3 * 86400,
        inspection_period=2 * 86400,
        listing_ref=bytes.fromhex(ref[2:]),
        sender=roles.stranger,
    )
    assert funded.trade_id
    index_now(app)
    trade = trade_row(app)
    assert trade.listing_id is None and trade.listing_ref == ref
    assert listing_row(app, listing_id).status == "active"
    page = web("stranger", roles).client.get(f"/trades/{trade.id}").get_data(as_text=True)
    assert "data-unlinked-listing" in page


def test_signing_in_as_another_account_frees_the_first_accounts_item(
    app: Flask, web: Any, roles: Roles, keys: dict[str, Any]
) -> None:
    from web_fixtures import sign_in

    listing_id, _ = add_listing(app, roles.seller)
    first = web("buyer", roles)
    assert first.buy(listing_id).status_code == 200
    sign_in(first.client, keys[roles.buyer2])  # the same browser, another account
    assert listing_row(app, listing_id).reserved_by is None
    assert _holds(app, listing_id)[0].end_reason == "signed_out"


def test_a_delivery_time_change_needs_a_fresh_look(
    app: Flask, web: Any, roles: Roles, chain: Chain
) -> None:
    """The delivery time becomes the trade's delivery window: a buyer who saw another one is
    refused, and the payment prepared afterwards carries the new one."""
    listing_id, _ = add_listing(app, roles.seller)
    buyer, seller = web("buyer", roles), web("seller", roles)
    seen = buyer.quote(listing_id)
    assert "delivery within 10 days" in buyer.client.get(f"/listings/{listing_id}").get_data(
        as_text=True
    )
    assert _edit_price(seller, listing_id, "1", delivery_days="2").status_code == 302
    stale = buyer.buy(listing_id, quote=seen)
    assert stale.status_code == 409 and "changed this listing" in stale.get_json()["error"]
    assert stale.get_json()["terms"]["delivery_days"] == 2
    fresh = buyer.buy(listing_id)
    assert fresh.status_code == 200
    assert fresh.get_json()["review"]["delivery_seconds"] == 2 * 86400
    assert "within 2 days after shipping" in fresh.get_json()["review"]["delivery_text"]
    send(chain, fresh.get_json()["tx"])
    index_now(app)
    client = app.extensions["escrow_chain"].client()
    terms, _ = client.terms_of(int(trade_row(app).onchain_id))
    assert terms.delivery_window == 2 * 86400
