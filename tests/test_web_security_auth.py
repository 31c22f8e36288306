"""Sign-in, sessions, redirects, the dev wallet and error messages, as an attacker tries them
(the findings of an OWASP ASVS level 2 review; SECURITY.md lists which test covers what).

Everything here runs on the embedded chain through the Flask test client; the checks that
need the production stack (gunicorn, anvil) are in tests/test_web_security_stack.py.
"""

from __future__ import annotations

import functools
import logging
import re
import statistics
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from flask import Flask
from sqlalchemy import select

from escrow.chain import Chain
from escrow.db.models import LoginNonce, Rating, Trade, User
from helpers import ONE_ETH, Roles
from web_fixtures import CSRF_META, WebUser, app_settings, db_session, sign_in
from webapp import config, create_app
from webapp.urls import redact, safe_next

NODE_URL = "http://user:secret@127.0.0.1:1/v3/abcdef0123456789abcdef0123456789"
NODE_KEY = "abcdef0123456789abcdef0123456789"


def _signed(account: LocalAccount, text: str) -> str:
    return account.sign_message(encode_defunct(text=text)).signature.to_0x_hex()


def _fresh(app: Flask, remote_addr: str | None = None) -> WebUser:
    client = app.test_client()
    if remote_addr:
        client.environ_base["REMOTE_ADDR"] = remote_addr
    return WebUser(client, None)


def _signed_in(user: WebUser) -> bool:
    return user.client.get("/me", headers={"Accept": "application/json"}).status_code == 200


# ------------------------------------------------------------------ sign-in relayed by phishing


def test_requests_naming_another_host_are_refused(app: Flask, roles: Roles) -> None:
    """A phishing site relaying requests under its own name (or a DNS-rebound one) gets no
    sign-in message, no page and no dev wallet."""
    client = app.test_client()
    for path in (f"/auth/message?address={roles.buyer}", "/", "/healthz", "/dev-wallet/accounts"):
        response = client.get(path, headers={"Host": "evil.example"})
        assert response.status_code == 400, path
        assert "evil.example" not in response.get_data(as_text=True)
    # The test client's own host name keeps working.
    assert client.get(f"/auth/message?address={roles.buyer}").status_code == 200


def test_message_names_the_configured_site_whatever_the_host_header(
    app: Flask, roles: Roles
) -> None:
    app.config.update(SITE_URL="http://127.0.0.1:5000", TRUSTED_HOSTS=["127.0.0.1", "localhost"])
    for host in ("localhost:5000", "127.0.0.1:5000"):
        text = (
            app.test_client()
            .get(f"/auth/message?address={roles.buyer}", headers={"Host": host})
            .get_json()["message"]
        )
        assert text.startswith("127.0.0.1:5000 wants you to sign in with your Ethereum account:")
        assert "\nURI: http://127.0.0.1:5000\n" in text


def test_relayed_signin_gives_the_phishing_site_no_session(
    app: Flask, roles: Roles, keys: dict[str, LocalAccount]
) -> None:
    """Even with the host check off, a message the victim signed on evil.example (where the
    wallet shows that name) does not sign anyone in here."""
    app.config["TRUSTED_HOSTS"] = None
    phisher = _fresh(app)
    evil = {"Host": "evil.example"}
    text = phisher.client.get(f"/auth/message?address={roles.buyer}", headers=evil).get_json()[
        "message"
    ]
    assert text.startswith("localhost wants you")
    # What the phishing page shows the victim: a message for the page's own name.
    shown = text.replace("localhost wants", "evil.example wants", 1).replace(
        "URI: http://localhost", "URI: http://evil.example", 1
    )
    page = phisher.client.get("/auth/signin", headers=evil).get_data(as_text=True)
    match = CSRF_META.search(page)
    assert match
    response = phisher.client.post(
        "/auth/verify",
        json={"message": shown, "signature": _signed(keys[roles.buyer], shown)},
        headers={**evil, "X-CSRFToken": match.group(1), "Accept": "application/json"},
    )
    assert response.status_code == 400
    assert not _signed_in(phisher)


def test_site_url_setting_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    assert config.site_url(None) == "http://127.0.0.1:5000"
    assert config.site_url("https://market.example/") == "https://market.example"
    for bad in (
        "market.example",
        "ftp://market.example",
        "https://u:p@market.example",
        "https://x/a",
    ):
        with pytest.raises(ValueError):
            config.site_url(bad)
    assert config.trusted_hosts(None, "http://127.0.0.1:5000") == ["127.0.0.1", "localhost"]
    assert config.trusted_hosts(None, "https://market.example") == ["market.example"]
    assert config.trusted_hosts("a.example, b.example", "https://a.example") == [
        "a.example",
        "b.example",
    ]
    monkeypatch.delenv("ESCROW_SITE_URL", raising=False)
    monkeypatch.delenv("ESCROW_TRUSTED_HOSTS", raising=False)
    settings = config.from_environment()
    assert settings["SITE_URL"] == "http://127.0.0.1:5000"
    assert settings["TRUSTED_HOSTS"] == ["127.0.0.1", "localhost"]


# ------------------------------------------------------------------ junk that stalls the server

MAX_MESSAGE = 1000


def _junk(nonce: str = "") -> str:
    """A message-shaped text of the largest accepted length: what the parser choked on."""
    head = "localhost wants you to sign in with your Ethereum account:\n" + "0x" + "Ab" * 20
    nonce_line = f"\nNonce: {nonce}" if nonce else ""
    body = "\n\n" + "Sign in: " + "a-b " * 400
    return (head + nonce_line + body)[:MAX_MESSAGE]


def _server_ms(call: Callable[[], Any], runs: int = 9) -> tuple[float, Any]:
    times, response = [], None
    for _ in range(runs):
        started = time.perf_counter()
        response = call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), response


def test_junk_message_is_refused_without_parsing(app: Flask, roles: Roles) -> None:
    app.config["SIGNIN_RATE_LIMIT"] = "100000 per minute"
    assert app.config["SIWE_MAX_MESSAGE_CHARS"] == MAX_MESSAGE
    user = _fresh(app)
    nonce = user.client.get(f"/auth/message?address={roles.buyer}").get_json()["nonce"]
    token = user.csrf()
    headers = {"X-CSRFToken": token, "Accept": "application/json"}
    for junk in (_junk(), _junk(nonce)):
        assert len(junk) == MAX_MESSAGE
        body = {"message": junk, "signature": "0x" + "11" * 65}
        median, response = _server_ms(
            functools.partial(user.client.post, "/auth/verify", json=body, headers=headers)
        )
        print(f"/auth/verify with a {len(junk)}-character junk message: {median:.2f} ms")
        assert response.status_code == 400
        # A parser fed this text backtracks for seconds; refusing it unparsed takes about a
        # millisecond. The bound is loose so that a busy machine does not fail the test.
        assert median < 100, f"{median:.1f} ms for a junk message"
    longer = "x" * (MAX_MESSAGE + 1)
    response = user.client.post(
        "/auth/verify", json={"message": longer, "signature": "0x"}, headers=headers
    )
    assert response.status_code == 400 and "too long" in response.get_json()["error"]
    # The nonce the junk named is still there for the real message.
    with db_session(app) as session:
        assert session.scalar(select(LoginNonce.used_at).where(LoginNonce.nonce == nonce)) is None


# ------------------------------------------------------------------ open redirects

EVIL_NEXT = [
    "/\\evil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    "//evil.example",
    "/%5Cevil.example",
    "https://evil.example/",
    "/%09/evil.example",
]


@pytest.mark.parametrize("target", EVIL_NEXT)
def test_safe_next_refuses_other_sites(target: str) -> None:
    assert safe_next(target, "/home") == "/home"


def test_safe_next_keeps_local_paths() -> None:
    for target in ("/", "/trades/3?tab=messages#chat", "/?q=caf%C3%A9&page=2", "/u/0xab"):
        assert safe_next(target, "/home") == target


@pytest.mark.parametrize("raw", ["/%5Cevil.example", "/%09/evil.example", "/%0A/evil.example"])
def test_signin_page_does_not_send_people_elsewhere(app: Flask, raw: str) -> None:
    page = app.test_client().get(f"/auth/signin?next={raw}").get_data(as_text=True)
    assert re.findall(r'data-next="([^"]*)"', page) == ["/", "/"]


def test_verify_answers_only_local_next(
    app: Flask, roles: Roles, keys: dict[str, LocalAccount]
) -> None:
    for target in EVIL_NEXT:
        user = _fresh(app)
        account = keys[roles.buyer]
        text = user.client.get(f"/auth/message?address={account.address}").get_json()["message"]
        body = {"message": text, "signature": _signed(account, text), "next": target}
        response = user.post_json("/auth/verify", body)
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["next"] == "/", target


def _finished_trade(app: Flask, roles: Roles) -> int:
    now = datetime.now(UTC)
    with db_session(app) as session:
        trade = Trade(
            chain_id=1,
            contract_address="0x" + "1" * 40,
            onchain_id=7,
            listing_ref="0x" + "0" * 64,
            buyer=roles.buyer.lower(),
            seller=roles.seller.lower(),
            arbitrator="0x" + "a" * 40,
            token="0x" + "0" * 40,
            amount=ONE_ETH,
            ship_by=now,
            inspection_period=86400,
            arbitrator_fee_bps=0,
            platform_fee_bps=0,
            terms_hash="0x",
            status="Released",
            funded_at=now,
            funded_block=7,
            funded_tx="0x" + "07" * 32,
            last_event_block=7,
        )
        session.add(trade)
        session.commit()
        return int(trade.id)


@pytest.mark.parametrize("target", ["/trades\r\nSet-Cookie: x=1", "/\\evil.example"])
def test_rating_next_stays_on_site(app: Flask, web: Any, roles: Roles, target: str) -> None:
    trade_id = _finished_trade(app, roles)
    response = web("buyer", roles).post_form(
        f"/trades/{trade_id}/rating", {"score": "4", "next": target}
    )
    assert response.status_code == 302
    assert response.headers["Location"] == f"/u/{roles.seller.lower()}"
    with db_session(app) as session:
        assert session.scalar(select(Rating.score).where(Rating.trade_id == trade_id)) == 4


# ------------------------------------------------------------------ the node's address in answers


@pytest.fixture
def app_node_down(web_db_url: str, tmp_path: Path) -> Iterator[Flask]:
    """The app with a node URL holding credentials and an API key, and nothing listening."""
    app = create_app(app_settings(web_db_url, tmp_path, RPC_URL=NODE_URL))
    yield app
    app.extensions["escrow_engine"].dispose()


def test_node_credentials_never_reach_a_response(
    app_node_down: Flask, roles: Roles, caplog: pytest.LogCaptureFixture
) -> None:
    user = _fresh(app_node_down)
    token = user.csrf()
    json_headers = {"X-CSRFToken": token, "Accept": "application/json"}
    calls = [
        lambda: user.client.get("/healthz"),
        lambda: user.client.get(f"/auth/message?address={roles.buyer}"),
        lambda: user.client.post(
            "/auth/verify",
            json={"message": "Nonce: abcdefgh12", "signature": "0x"},
            headers=json_headers,
        ),
        lambda: user.client.get("/"),
        lambda: user.client.get("/listings/1"),
        lambda: user.client.get("/arbitrators"),
        lambda: user.client.get("/dev-wallet/accounts"),
        lambda: user.client.post(
            "/dev-wallet/rpc",
            json={"method": "personal_sign", "params": ["0x00", roles.buyer]},
            headers=json_headers,
        ),
        lambda: user.client.get("/api/tx/0x" + "ab" * 32),
    ]
    with caplog.at_level(logging.INFO):
        statuses = []
        for call in calls:
            response = call()
            body = response.get_data(as_text=True)
            statuses.append(response.status_code)
            for secret in ("secret", NODE_KEY, "user:"):
                assert secret not in body, (response.request.path, body[:300])
    assert 503 in statuses  # the node being down was reported
    health = user.client.get("/healthz").get_json()
    assert health["chain"]["ok"] is False and health["status"] == "degraded"
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "***" in logged  # the detail is logged, with the credentials taken out
    assert "secret" not in logged and NODE_KEY not in logged


def test_redact_takes_credentials_out_of_node_errors() -> None:
    text = f"cannot reach the chain node at {NODE_URL} (ConnectionError)"
    assert (
        redact(text)
        == "cannot reach the chain node at http://***@127.0.0.1:1/v3/*** (ConnectionError)"
    )
    pool = f"HTTPConnectionPool(host='127.0.0.1', port=1): retries exceeded, url: /v3/{NODE_KEY}"
    assert NODE_KEY not in redact(pool)
    assert (
        redact("https://rpc.example/?apikey=SECRET&x=1 failed") == "https://rpc.example/?*** failed"
    )
    assert redact("InvalidStatus: the trade moved on") == "InvalidStatus: the trade moved on"


# ------------------------------------------------------------------ the dev wallet


def test_dev_wallet_is_off_unless_turned_on(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ESCROW_DEV_WALLET", raising=False)
    assert config.from_environment()["DEV_WALLET"] is False
    monkeypatch.setenv("ESCROW_DEV_WALLET", "1")
    assert config.from_environment()["DEV_WALLET"] is True
    app.config["DEV_WALLET"] = False
    assert app.test_client().get("/dev-wallet/accounts").status_code == 404


@pytest.mark.parametrize("remote", ["192.168.1.20", "10.0.0.2", "2001:db8::1"])
def test_dev_wallet_answers_only_this_computer(app: Flask, roles: Roles, remote: str) -> None:
    user = _fresh(app, remote)
    assert user.client.get("/dev-wallet/accounts").status_code == 404
    response = user.post_json(
        "/dev-wallet/rpc",
        {"method": "personal_sign", "params": ["0x00", roles.buyer]},
    )
    assert response.status_code == 404
    assert "dev-account" not in user.client.get("/auth/signin").get_data(as_text=True)
    for loopback in ("127.0.0.1", "::1", "127.0.3.7"):
        local = _fresh(app, loopback).client
        assert local.get("/dev-wallet/accounts").status_code == 200, loopback


def test_dev_wallet_refuses_a_dns_rebound_host(app: Flask) -> None:
    """A page on attacker.example whose name now points at 127.0.0.1: the browser sends
    ``Host: attacker.example`` from loopback."""
    rebound = {"Host": "attacker.example:5000"}
    client = app.test_client()
    assert client.get("/dev-wallet/accounts", headers=rebound).status_code == 400
    app.config["TRUSTED_HOSTS"] = None  # even with the host check switched off
    assert client.get("/dev-wallet/accounts", headers=rebound).status_code == 404
    assert client.get("/dev-wallet/accounts").status_code == 200


def _send_as(user: WebUser, sender: str) -> Any:
    return user.post_json(
        "/dev-wallet/rpc",
        {
            "method": "eth_sendTransaction",
            "params": [{"from": sender, "to": sender, "value": 0, "gas": 21_000}],
        },
    )


def test_dev_wallet_sends_only_as_the_signed_in_account(
    app: Flask, chain: Chain, roles: Roles, keys: dict[str, LocalAccount]
) -> None:
    buyer = sign_in(app.test_client(), keys[roles.buyer])
    seller = chain.w3.to_checksum_address(roles.seller)
    before = chain.w3.eth.get_transaction_count(seller)
    for sender in (roles.seller, roles.owner):
        response = _send_as(buyer, sender)
        assert response.status_code == 403, response.get_json()
        assert "signed in" in response.get_json()["error"]
    typed = buyer.post_json(
        "/dev-wallet/rpc", {"method": "eth_signTypedData_v4", "params": [roles.seller, "{}"]}
    )
    assert typed.status_code == 403
    assert chain.w3.eth.get_transaction_count(seller) == before
    mine = _send_as(buyer, roles.buyer)
    assert mine.status_code == 200, mine.get_json()
    assert mine.get_json()["result"]


def test_dev_wallet_before_signin_signs_only_the_signin_message(
    app: Flask,
    chain: Chain,
    roles: Roles,
    keys: dict[str, LocalAccount],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What wallet.js does: personal_sign of the message /auth/message gave, as the address
    it names. The embedded chain cannot personal_sign, so local keys sign as anvil would."""
    real_rpc = chain.rpc

    def rpc(method: str, params: list[Any]) -> Any:
        if method == "personal_sign":
            text = bytes.fromhex(params[0][2:]).decode()
            return _signed(keys[chain.w3.to_checksum_address(params[1])], text)
        return real_rpc(method, params)

    monkeypatch.setattr(chain, "rpc", rpc)
    user = _fresh(app)
    assert _send_as(user, roles.buyer).status_code == 403  # nothing is sent before sign-in

    def sign(text: str, address: str) -> Any:
        return user.post_json(
            "/dev-wallet/rpc",
            {"method": "personal_sign", "params": ["0x" + text.encode().hex(), address]},
        )

    assert sign("Transfer everything", roles.buyer.lower()).status_code == 403
    text = user.client.get(f"/auth/message?address={roles.buyer}").get_json()["message"]
    assert sign(text, roles.seller.lower()).status_code == 403  # written for the buyer
    assert (
        _fresh(app)
        .post_json(  # another browser was not given this message
            "/dev-wallet/rpc",
            {
                "method": "personal_sign",
                "params": ["0x" + text.encode().hex(), roles.buyer.lower()],
            },
        )
        .status_code
        == 403
    )
    signed = sign(text, roles.buyer.lower())
    assert signed.status_code == 200, signed.get_json()
    response = user.post_json(
        "/auth/verify", {"message": text, "signature": signed.get_json()["result"]}
    )
    assert response.status_code == 200, response.get_json()
    assert _signed_in(user)
    assert sign(text, roles.buyer.lower()).status_code == 200  # now its own account signs


# ------------------------------------------------------------------ sessions


def test_copied_cookie_stops_working_after_logout(
    app: Flask, roles: Roles, keys: dict[str, LocalAccount]
) -> None:
    user = sign_in(app.test_client(), keys[roles.buyer])
    cookie = user.client.get_cookie("session")
    assert cookie is not None
    thief = app.test_client()
    thief.set_cookie("session", cookie.value)
    assert thief.get("/me", headers={"Accept": "application/json"}).status_code == 200
    assert user.post_json("/auth/logout").status_code == 200
    assert thief.get("/me", headers={"Accept": "application/json"}).status_code == 401
    assert "Sign out" not in thief.get("/").get_data(as_text=True)


def test_signing_in_again_ends_the_previous_signin(
    app: Flask, roles: Roles, keys: dict[str, LocalAccount]
) -> None:
    user = sign_in(app.test_client(), keys[roles.buyer])
    cookie = user.client.get_cookie("session")
    assert cookie is not None
    copy = app.test_client()
    copy.set_cookie("session", cookie.value)
    sign_in(user.client, keys[roles.seller])  # the same browser switches accounts
    assert copy.get("/me", headers={"Accept": "application/json"}).status_code == 401
    assert user.client.get("/me", headers={"Accept": "application/json"}).status_code == 200


def test_a_session_ends_with_its_lifetime(
    app: Flask, roles: Roles, keys: dict[str, LocalAccount]
) -> None:
    user = sign_in(app.test_client(), keys[roles.buyer])
    with user.client.session_transaction() as session:
        login = session["login"]
    with db_session(app) as session:
        row = session.get(LoginNonce, login)
        assert row is not None
        row.used_at = datetime.now(UTC) - timedelta(days=8)
        session.commit()
    assert not _signed_in(user)


def test_expired_signin_nonces_are_purged(
    app: Flask, roles: Roles, keys: dict[str, LocalAccount]
) -> None:
    now = datetime.now(UTC)
    hour, week = timedelta(hours=1), timedelta(days=7)
    rows = {
        "expired": (now - hour, None),
        "fresh": (now + hour, None),
        "session": (now - hour, now - 2 * hour),  # a sign-in whose session is still valid
        "old session": (now - week - 2 * hour, now - week - 3 * hour),
    }
    with db_session(app) as session:
        for name, (expires, used) in rows.items():
            nonce = name.replace(" ", "") + "0" * 12
            session.add(
                LoginNonce(
                    nonce=nonce,
                    address=roles.buyer.lower(),
                    created_at=expires - timedelta(minutes=10),
                    expires_at=expires,
                    used_at=used,
                )
            )
        session.commit()
    app.test_client().get(f"/auth/message?address={roles.seller}")
    with db_session(app) as session:
        left = set(session.scalars(select(LoginNonce.nonce)))
    assert {"fresh000000000000", "session000000000000"} <= left
    assert "expired000000000000" not in left and "oldsession000000000000" not in left
    assert len(left) == 3  # and the one just issued


# ------------------------------------------------------------------ display names

ADDRESS_LIKE = [
    "0x2B5AD5c4795c026514f8317c7a215E218DcCD6cF",
    "0X2b5ad5c4",
    "0х2b5ad5",  # Cyrillic х
    "Ох2b5ad5",  # Cyrillic О and х
    "０ｘ２ｂ５",  # full-width
    "\u200b0x2b5a",  # a zero-width space in front
    "Seller 0x2b5ad5c4",
]


@pytest.mark.parametrize("name", ADDRESS_LIKE)
def test_display_name_that_looks_like_an_address_is_refused(
    app: Flask, web: Any, roles: Roles, name: str
) -> None:
    user = web("buyer", roles)
    response = user.post_form("/me", {"display_name": name, "languages": ""})
    assert response.status_code == 400
    assert "cannot look like a wallet address" in response.get_data(as_text=True)
    with db_session(app) as session:
        stored = session.scalar(
            select(User.display_name).where(User.address == roles.buyer.lower())
        )
    assert stored is None


@pytest.mark.parametrize("name", ["Oxford Bikes", "Oxana", "Max", "Box 12"])
def test_ordinary_display_names_are_kept(app: Flask, web: Any, roles: Roles, name: str) -> None:
    response = web("buyer", roles).post_form("/me", {"display_name": name, "languages": ""})
    assert response.status_code == 302
    with db_session(app) as session:
        stored = session.scalar(
            select(User.display_name).where(User.address == roles.buyer.lower())
        )
    assert stored == name
