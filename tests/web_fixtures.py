"""Fixtures for the web app tests: an app on the embedded chain and a fresh SQLite database,
a signed-in test client per role, and the indexer run in-process."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from escrow.chain import Chain
from escrow.client import EscrowClient
from escrow.db.engine import upgrade
from escrow.db.models import CheckoutHold, Listing, Trade, User
from escrow.deploy import Deployment
from escrow.indexer.scanner import Indexer
from helpers import ONE_ETH, Roles, open_trade
from webapp import create_app

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


@pytest.fixture
def web_db_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'web.sqlite3'}"
    upgrade(url)
    return url


def app_settings(
    web_db_url: str,
    tmp_path: Path,
    chain: Chain | None = None,
    deployment: Deployment | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """The test app's settings (``create_app``'s test config), with ``overrides`` on top."""
    settings: dict[str, Any] = {
        "TESTING": True,
        "DATABASE_URL": web_db_url,
        "DATA_DIR": str(tmp_path),
        "UPLOAD_DIR": str(tmp_path / "uploads"),
        "EVIDENCE_DIR": str(tmp_path / "evidence"),
        "SESSION_COOKIE_SECURE": False,
        "SECRET_KEY": "test-secret-key",
        # The test client's default host: messages are written for it and only it is served.
        "SITE_URL": "http://localhost",
        "TRUSTED_HOSTS": ["localhost"],
        "DEV_WALLET": True,
        # The test client sends no Accept-Language: these tests read the English texts (the
        # market's own default for such a visitor is Russian; see tests/test_i18n.py).
        "DEFAULT_LANGUAGE": "en",
        # Tests move chain time and look at the page at once: no reuse of the chain time read.
        "CHAIN_TIME_CACHE_MS": 0,
    }
    if chain is not None:
        settings["CHAIN"] = chain
    if deployment is not None:
        settings["DEPLOYMENT"] = deployment
    return {**settings, **overrides}


@pytest.fixture
def app(chain: Chain, deployment: Deployment, web_db_url: str, tmp_path: Path) -> Iterator[Flask]:
    app = create_app(app_settings(web_db_url, tmp_path, chain, deployment))
    yield app
    app.extensions["escrow_engine"].dispose()


@dataclass
class WebUser:
    """A test client signed in (or not) as one wallet, sending CSRF tokens like a browser."""

    client: FlaskClient
    address: str | None
    account: LocalAccount | None = None

    def csrf(self) -> str:
        page = self.client.get("/auth/signin").get_data(as_text=True)
        match = CSRF_META.search(page)
        assert match, "no CSRF token on the page"
        return match.group(1)

    def post_json(self, url: str, data: dict[str, Any] | None = None) -> Any:
        return self.client.post(
            url, json=data or {}, headers={"X-CSRFToken": self.csrf(), "Accept": "application/json"}
        )

    def post_form(self, url: str, data: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        return self.client.post(url, data={**(data or {}), "csrf_token": self.csrf()}, **kwargs)

    def quote(self, listing_id: int) -> dict[str, str]:
        """The quote the listing page's Buy form would send now."""
        return quote_on_page(self.client.get(f"/listings/{listing_id}").get_data(as_text=True))

    def buy(
        self,
        listing_id: int,
        data: dict[str, Any] | None = None,
        quote: dict[str, str] | None = None,
    ) -> Any:
        """Buys as the page does: the quote shown on the listing page goes with the request
        (``quote``: one read earlier, as a tab left open would send)."""
        body = {"quote": quote or self.quote(listing_id), **(data or {})}
        return self.post_json(f"/listings/{listing_id}/buy", body)


def sign_in(client: FlaskClient, account: LocalAccount) -> WebUser:
    user = WebUser(client, account.address.lower(), account)
    message = client.get(f"/auth/message?address={account.address}").get_json()["message"]
    signature = account.sign_message(encode_defunct(text=message)).signature.to_0x_hex()
    response = user.post_json("/auth/verify", {"message": message, "signature": signature})
    assert response.status_code == 200, response.get_json()
    return user


@pytest.fixture
def web(app: Flask, keys: dict[str, LocalAccount]) -> Any:
    """``web("buyer")`` etc.: a fresh client signed in as that role (or anonymous)."""

    def make(role: str | None, roles: Roles | None = None) -> WebUser:
        client = app.test_client()
        if role is None:
            return WebUser(client, None)
        assert roles is not None
        return sign_in(client, keys[roles.by_name(role)])

    return make


def index_now(app: Flask) -> int:
    """Runs the indexer once, in-process, up to the chain head; returns events applied."""
    gateway = app.extensions["escrow_chain"]
    deployment = gateway.deployment()
    indexer = Indexer(
        gateway.chain().w3,
        app.extensions["escrow_engine"],
        deployment.escrow.address.lower(),
        start_block=deployment.escrow.block_number,
    )
    return int(indexer.sync().events)


# ------------------------------------------------------------------ data helpers


def db_session(app: Flask) -> Any:
    return app.extensions["escrow_sessions"]()


def add_listing(
    app: Flask,
    seller: str,
    *,
    price: int = ONE_ETH,
    currency: str = "ETH",
    quantity: int = 1,
    title: str = "Bicycle",
    delivery_days: int = 10,
) -> tuple[int, str]:
    """A listing by ``seller`` (id, ref), written straight to the database."""
    seller = seller.lower()
    with db_session(app) as session:
        user = session.scalar(select(User).where(User.address == seller))
        if user is None:
            user = User(address=seller, languages=[])
            session.add(user)
            session.flush()
        ref = "0x" + hashlib.sha256(secrets.token_bytes(16)).hexdigest()
        listing = Listing(
            ref=ref,
            seller_id=user.id,
            title=title,
            price=price,
            currency=currency,
            quantity=quantity,
            delivery_days=delivery_days,
            photos=[],
        )
        session.add(listing)
        session.commit()
        return listing.id, ref


def listing_form(**override: Any) -> dict[str, Any]:
    """The sell form's fields as a seller fills them in, with ``override`` on top."""
    return {
        "title": "Road bike",
        "description": "Light and fast",
        "price": "0.5",
        "currency": "ETH",
        "quantity": "1",
        "category": "bikes",
        "city": "Astana",
        "delivery_days": "10",
        **override,
    }


def add_hold(app: Flask, listing_id: int, buyer: str, *, seconds: int = 120) -> int:
    """A wallet hold of ``listing_id`` by ``buyer`` as a checkout starts it (its id)."""
    now = datetime.now(UTC)
    with db_session(app) as session:
        listing = session.get(Listing, listing_id)
        assert listing is not None
        hold = CheckoutHold(
            listing_id=listing_id,
            buyer=buyer.lower(),
            seller=listing.seller.address,
            token="0x" + "00" * 20,
            amount=int(listing.price),
            currency=listing.currency,
            listing_version=listing.version or 1,
            state="wallet",
            created_at=now,
            expires_at=now + timedelta(seconds=seconds),
        )
        session.add(hold)
        if listing.quantity == 1:
            listing.reserved_by = buyer.lower()
            listing.reserved_until = hold.expires_at
        session.commit()
        return hold.id


QUOTE_FIELD = re.compile(r'<input type="hidden" name="(amount|currency|version)" value="([^"]*)">')


def quote_on_page(html: str) -> dict[str, str]:
    """The quote a listing page's Buy form sends (amount, currency, version)."""
    quote = dict(QUOTE_FIELD.findall(html))
    assert set(quote) == {"amount", "currency", "version"}, "no Buy form on the page"
    return quote


def send(chain: Chain, tx: dict[str, Any]) -> Any:
    """Sends an unsigned transaction an endpoint returned, as the browser wallet would."""
    params = dict(tx)
    for key in ("value", "gas", "chainId"):
        if key in params:
            params[key] = int(params[key], 16)
    tx_hash = chain.w3.eth.send_transaction(params)  # type: ignore[arg-type]
    receipt = chain.w3.eth.wait_for_transaction_receipt(tx_hash)
    assert receipt["status"] == 1
    return receipt


def trade_row(app: Flask, onchain_id: int | None = None) -> Trade:
    with db_session(app) as session:
        query = select(Trade).order_by(Trade.id.desc())
        if onchain_id is not None:
            query = query.where(Trade.onchain_id == onchain_id)
        trade = session.scalars(query).first()
        assert trade is not None
        session.expunge(trade)
        return trade


def funded_trade(app: Flask, client: EscrowClient, roles: Roles, **kwargs: Any) -> int:
    """Funds a trade on chain, indexes it and returns its primary key."""
    funded = open_trade(client, roles, **kwargs)
    index_now(app)
    return trade_row(app, funded.trade_id).id


def listing_row(app: Flask, listing_id: int) -> Listing:
    with db_session(app) as session:
        listing = session.get(Listing, listing_id)
        assert listing is not None
        session.expunge(listing)
        return listing
