"""The indexer keeps listing availability equal to the trades that bought them."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from flask import Flask
from sqlalchemy.orm import Session

from escrow.client import EscrowClient
from escrow.db.models import Listing, ListingStatus, User
from helpers import DAY, ONE_ETH, Roles
from web_fixtures import index_now


def _listing(app: Flask, seller: str, quantity: int, reserved_by: str | None = None) -> int:
    with Session(app.extensions["escrow_engine"]) as session:
        user = User(address=seller.lower())
        session.add(user)
        session.flush()
        listing = Listing(
            ref="0x" + secrets.token_hex(32),
            seller_id=user.id,
            title="Bike",
            price=ONE_ETH,
            quantity=quantity,
            status=(ListingStatus.RESERVED if reserved_by else ListingStatus.ACTIVE).value,
            reserved_by=reserved_by,
            reserved_until=datetime.now(UTC) + timedelta(minutes=15) if reserved_by else None,
        )
        session.add(listing)
        session.commit()
        return listing.id


def _state(app: Flask, listing_id: int) -> tuple[str, str | None]:
    with Session(app.extensions["escrow_engine"]) as session:
        listing = session.get(Listing, listing_id)
        assert listing is not None
        return listing.status, listing.reserved_by


def _buy(client: EscrowClient, roles: Roles, app: Flask, listing_id: int, buyer: str) -> object:
    with Session(app.extensions["escrow_engine"]) as session:
        listing = session.get(Listing, listing_id)
        assert listing is not None
        ref = bytes.fromhex(listing.ref[2:])
    return client.fund(
        seller=roles.seller,
        arbitrator=roles.arbitrator,
        amount=ONE_ETH,
        ship_by=client.chain.latest_timestamp() + DAY,
        inspection_period=DAY,
        listing_ref=ref,
        sender=buyer,
    )


def test_single_item_is_sold_and_reservation_ends(
    app: Flask, client: EscrowClient, roles: Roles
) -> None:
    listing_id = _listing(app, roles.seller, 1, reserved_by=roles.buyer.lower())
    funded = _buy(client, roles, app, listing_id, roles.buyer)
    index_now(app)
    assert _state(app, listing_id) == (ListingStatus.SOLD.value, None)
    client.refund_by_seller(funded.trade_id, funded.terms, sender=roles.seller)  # type: ignore[attr-defined]
    index_now(app)
    assert _state(app, listing_id) == (ListingStatus.ACTIVE.value, None)


def test_stock_runs_out_after_quantity_trades(
    app: Flask, client: EscrowClient, roles: Roles
) -> None:
    listing_id = _listing(app, roles.seller, 2)
    _buy(client, roles, app, listing_id, roles.buyer)
    index_now(app)
    assert _state(app, listing_id)[0] == ListingStatus.ACTIVE.value
    _buy(client, roles, app, listing_id, roles.buyer2)
    index_now(app)
    assert _state(app, listing_id)[0] == ListingStatus.SOLD.value


def test_other_buyers_reservation_is_kept(app: Flask, client: EscrowClient, roles: Roles) -> None:
    listing_id = _listing(app, roles.seller, 3, reserved_by=roles.buyer2.lower())
    _buy(client, roles, app, listing_id, roles.buyer)
    index_now(app)
    assert _state(app, listing_id) == (ListingStatus.RESERVED.value, roles.buyer2.lower())
