"""Fixtures for the web app tests: an app on the embedded chain and a fresh SQLite database,
a signed-in test client per role, and the indexer run in-process."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from flask import Flask
from flask.testing import FlaskClient

from escrow.chain import Chain
from escrow.db.engine import upgrade
from escrow.deploy import Deployment
from escrow.indexer.scanner import Indexer
from webapp import create_app

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


@pytest.fixture
def web_db_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'web.sqlite3'}"
    upgrade(url)
    return url


@pytest.fixture
def app(chain: Chain, deployment: Deployment, web_db_url: str, tmp_path: Path) -> Iterator[Flask]:
    app = create_app({
        "TESTING": True,
        "DATABASE_URL": web_db_url,
        "CHAIN": chain,
        "DEPLOYMENT": deployment,
        "DATA_DIR": str(tmp_path),
        "UPLOAD_DIR": str(tmp_path / "uploads"),
        "EVIDENCE_DIR": str(tmp_path / "evidence"),
        "SESSION_COOKIE_SECURE": False,
        "SECRET_KEY": "test-secret-key",
    })
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
        return self.client.post(url, json=data or {}, headers={"X-CSRFToken": self.csrf(),
                                                               "Accept": "application/json"})

    def post_form(self, url: str, data: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        return self.client.post(url, data={**(data or {}), "csrf_token": self.csrf()}, **kwargs)


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
    from helpers import Roles

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
    indexer = Indexer(gateway.chain().w3, app.extensions["escrow_engine"],
                      deployment.escrow.address.lower(),
                      start_block=deployment.escrow.block_number)
    return int(indexer.sync().events)
