"""Only the right trade sells a listing: the listing reference is public, so a trade is linked
to a listing only when it pays the listing's seller its price in its currency, or matches what
a checkout hold of that listing quoted to that buyer."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from escrow.client import ETH, EscrowClient, Funded
from escrow.db.models import CheckoutHold, HoldState, Listing, ListingStatus, Trade, User
from escrow.deploy import Deployment
from escrow.indexer.scanner import Indexer, recorded_stablecoin
from helpers import DAY, Roles

PRICE = 5_000_000  # wei for an ETH listing, micro-dollars for a USD one


def _listing(
    app: Flask,
    seller: str,
    *,
    price: int = PRICE,
    currency: str = "ETH",
    reserved_by: str | None = None,
) -> tuple[int, bytes]:
    with Session(app.extensions["escrow_engine"]) as session:
        user = session.scalar(select(User).where(User.address == seller.lower()))
        if user is None:
            user = User(address=seller.lower())
            session.add(user)
            session.flush()
        ref = secrets.token_bytes(32)
        listing = Listing(
            ref="0x" + ref.hex(),
            seller_id=user.id,
            title="Lamp",
            price=price,
            currency=currency,
            quantity=1,
            reserved_by=reserved_by.lower() if reserved_by else None,
            reserved_until=datetime.now(UTC) + timedelta(minutes=15) if reserved_by else None,
        )
        session.add(listing)
        session.commit()
        return listing.id, ref


def _hold(
    app: Flask, listing_id: int, buyer: str, seller: str, token: str, amount: int, currency: str
) -> int:
    with Session(app.extensions["escrow_engine"]) as session:
        hold = CheckoutHold(
            listing_id=listing_id,
            buyer=buyer.lower(),
            seller=seller.lower(),
            token=token.lower(),
            amount=amount,
            currency=currency,
            listing_version=1,
            state=HoldState.PAYMENT.value,
            expires_at=datetime.now(UTC) + timedelta(minutes=15),
        )
        session.add(hold)
        session.commit()
        return hold.id


def _fund(
    client: EscrowClient,
    roles: Roles,
    ref: bytes,
    *,
    buyer: str,
    seller: str | None = None,
    amount: int = PRICE,
    token: str = ETH,
) -> Funded:
    if int(token, 16) != 0:
        client.approve(token, amount, sender=buyer)
    return client.fund(
        seller=seller or roles.seller,
        arbitrator=roles.arbitrator,
        token=token,
        amount=amount,
        ship_by=client.chain.latest_timestamp() + DAY,
        inspection_period=DAY,
        listing_ref=ref,
        sender=buyer,
    )


def _index(app: Flask, deployment: Deployment) -> None:
    gateway = app.extensions["escrow_chain"]
    assert deployment.stablecoin is not None
    Indexer(
        gateway.chain().w3,
        app.extensions["escrow_engine"],
        deployment.escrow.address.lower(),
        start_block=deployment.escrow.block_number,
        stablecoin=deployment.stablecoin.address,
    ).sync()


def _listing_state(app: Flask, listing_id: int) -> tuple[str, str | None]:
    with Session(app.extensions["escrow_engine"]) as session:
        listing = session.get(Listing, listing_id)
        assert listing is not None
        return listing.status, listing.reserved_by


def _linked(app: Flask, funded: Funded) -> int | None:
    with Session(app.extensions["escrow_engine"]) as session:
        trade = session.scalar(select(Trade).where(Trade.onchain_id == funded.trade_id))
        assert trade is not None, "the trade itself is always indexed"
        return trade.listing_id


def test_a_strangers_trade_quoting_the_ref_does_not_sell_the_listing(
    app: Flask, client: EscrowClient, deployment: Deployment, roles: Roles
) -> None:
    assert deployment.stablecoin is not None
    coin = deployment.stablecoin.address
    listing_id, ref = _listing(app, roles.seller, reserved_by=roles.buyer)
    # A 1-wei trade to an address of the stranger's own, quoting the public ref.
    own_seller = _fund(client, roles, ref, buyer=roles.stranger, seller=roles.buyer2, amount=1)
    # Right seller, wrong amount; right seller and amount, wrong token.
    cheap = _fund(client, roles, ref, buyer=roles.stranger, amount=1)
    other_token = _fund(client, roles, ref, buyer=roles.stranger, token=coin)
    _index(app, deployment)
    for funded in (own_seller, cheap, other_token):
        assert _linked(app, funded) is None
    # Still on sale, and the honest buyer's reservation still holds.
    assert _listing_state(app, listing_id) == (ListingStatus.ACTIVE.value, roles.buyer.lower())

    honest = _fund(client, roles, ref, buyer=roles.buyer)
    _index(app, deployment)
    assert _linked(app, honest) == listing_id
    assert _listing_state(app, listing_id) == (ListingStatus.SOLD.value, None)
    # The strangers' trades are kept, quoting the ref, and still unlinked.
    for funded in (own_seller, cheap, other_token):
        assert _linked(app, funded) is None


def test_a_usd_listing_is_bought_with_the_stablecoin_only(
    app: Flask, client: EscrowClient, deployment: Deployment, roles: Roles
) -> None:
    assert deployment.stablecoin is not None
    listing_id, ref = _listing(app, roles.seller, currency="USD")
    in_eth = _fund(client, roles, ref, buyer=roles.stranger)  # same number, in wei
    _index(app, deployment)
    assert _linked(app, in_eth) is None
    assert _listing_state(app, listing_id)[0] == ListingStatus.ACTIVE.value
    in_usd = _fund(client, roles, ref, buyer=roles.buyer, token=deployment.stablecoin.address)
    _index(app, deployment)
    assert _linked(app, in_usd) == listing_id
    assert _listing_state(app, listing_id)[0] == ListingStatus.SOLD.value


def test_a_trade_matching_a_hold_is_linked_after_a_price_change(
    app: Flask, client: EscrowClient, deployment: Deployment, roles: Roles
) -> None:
    listing_id, ref = _listing(app, roles.seller)
    hold_id = _hold(app, listing_id, roles.buyer, roles.seller, ETH, PRICE, "ETH")
    with Session(app.extensions["escrow_engine"]) as session:
        listing = session.get(Listing, listing_id)
        assert listing is not None
        listing.price, listing.version = 2 * PRICE, 2  # the seller raised the price meanwhile
        session.commit()
    # Another buyer paying the old price matches neither the listing nor a hold of theirs.
    other = _fund(client, roles, ref, buyer=roles.stranger)
    _index(app, deployment)
    assert _linked(app, other) is None
    assert _listing_state(app, listing_id)[0] == ListingStatus.ACTIVE.value

    quoted = _fund(client, roles, ref, buyer=roles.buyer)  # what the hold quoted
    _index(app, deployment)
    assert _linked(app, quoted) == listing_id
    assert _listing_state(app, listing_id)[0] == ListingStatus.SOLD.value
    with Session(app.extensions["escrow_engine"]) as session:
        hold = session.get(CheckoutHold, hold_id)
        assert hold is not None
        assert (hold.state, hold.end_reason) == (HoldState.ENDED.value, "funded")
        assert hold.ended_at is not None


def test_the_stablecoin_comes_from_the_deployment_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "deployments"
    folder.mkdir()
    escrow, coin = "0x" + "ab" * 20, "0x" + "CD" * 20
    (folder / "5.json").write_text(
        json.dumps({"escrow": {"address": escrow}, "stablecoin": {"address": coin}})
    )
    (folder / "6.json").write_text("{not json")
    monkeypatch.setenv("ESCROW_DATA_DIR", str(tmp_path))
    assert recorded_stablecoin(5, escrow.upper().replace("0X", "0x")) == coin.lower()
    assert recorded_stablecoin(5, "0x" + "99" * 20) is None  # another contract's record
    assert recorded_stablecoin(6, escrow) is None
    assert recorded_stablecoin(7, escrow) is None
