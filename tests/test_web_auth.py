"""Sign-In with Ethereum and the dev wallet, through the Flask test client."""

from __future__ import annotations

from typing import Any

from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from flask import Flask
from sqlalchemy import select

from escrow.db.models import User
from helpers import Roles
from web_fixtures import WebUser, sign_in

SIGNED_IN_PAGE = "/auth/signin"


def _signed(account: LocalAccount, message: str) -> str:
    return account.sign_message(encode_defunct(text=message)).signature.to_0x_hex()


def _fresh(app: Flask) -> WebUser:
    return WebUser(app.test_client(), None)


def test_sign_in_binds_the_session_to_the_address(
    app: Flask, roles: Roles, keys: dict[str, LocalAccount]
) -> None:
    user = sign_in(app.test_client(), keys[roles.buyer])
    page = user.client.get("/").get_data(as_text=True)
    assert "Sign out" in page
    with user.client.session_transaction() as session:
        assert session["address"] == roles.buyer.lower()


def test_message_names_domain_chain_and_a_fresh_nonce(app: Flask, roles: Roles) -> None:
    client = app.test_client()
    first = client.get(f"/auth/message?address={roles.buyer}").get_json()
    second = client.get(f"/auth/message?address={roles.buyer}").get_json()
    assert first["nonce"] != second["nonce"]
    text = first["message"]
    assert text.startswith("localhost wants you to sign in with your Ethereum account:")
    assert f"Chain ID: {app.config['CHAIN'].chain_id}" in text
    assert f"Nonce: {first['nonce']}" in text


def test_a_nonce_works_only_once(app: Flask, roles: Roles, keys: dict[str, LocalAccount]) -> None:
    account = keys[roles.buyer]
    user = _fresh(app)
    message = user.client.get(f"/auth/message?address={account.address}").get_json()["message"]
    body = {"message": message, "signature": _signed(account, message)}
    assert user.post_json("/auth/verify", body).status_code == 200
    replay = _fresh(app).post_json("/auth/verify", body)
    assert replay.status_code == 400
    assert "already used" in replay.get_json()["error"]


def test_signature_of_another_key_is_refused(
    app: Flask, roles: Roles, keys: dict[str, LocalAccount]
) -> None:
    user = _fresh(app)
    message = user.client.get(f"/auth/message?address={roles.buyer}").get_json()["message"]
    forged = _signed(keys[roles.seller], message)
    response = user.post_json("/auth/verify", {"message": message, "signature": forged})
    assert response.status_code == 400
    assert "signature" in response.get_json()["error"]
    with user.client.session_transaction() as session:
        assert "address" not in session


def _tampered(app: Flask, roles: Roles, keys: dict[str, LocalAccount], old: str, new: str) -> Any:
    user = _fresh(app)
    message = user.client.get(f"/auth/message?address={roles.buyer}").get_json()["message"]
    assert old in message
    changed = message.replace(old, new)
    return user.post_json(
        "/auth/verify", {"message": changed, "signature": _signed(keys[roles.buyer], changed)}
    )


def test_wrong_domain_is_refused(app: Flask, roles: Roles, keys: dict[str, LocalAccount]) -> None:
    response = _tampered(app, roles, keys, "localhost wants", "evil.example wants")
    assert response.status_code == 400 and "evil.example" in response.get_json()["error"]


def test_wrong_chain_is_refused(app: Flask, roles: Roles, keys: dict[str, LocalAccount]) -> None:
    chain_id = app.config["CHAIN"].chain_id
    response = _tampered(app, roles, keys, f"Chain ID: {chain_id}", "Chain ID: 1")
    assert response.status_code == 400 and "chain" in response.get_json()["error"]


def test_unknown_nonce_is_refused(app: Flask, roles: Roles, keys: dict[str, LocalAccount]) -> None:
    user = _fresh(app)
    message = user.client.get(f"/auth/message?address={roles.buyer}").get_json()["message"]
    nonce = message.split("Nonce: ")[1].split("\n")[0]
    response = _tampered(app, roles, keys, "Nonce: ", "Nonce: x")
    assert response.status_code == 400
    assert nonce  # the original nonce was well formed


def test_malformed_requests_get_clear_errors(app: Flask) -> None:
    user = _fresh(app)
    assert user.client.get("/auth/message?address=nope").status_code == 400
    for body in ({}, {"message": "hello", "signature": "0x12"}, {"message": 5}):
        response = user.post_json("/auth/verify", body)
        assert response.status_code == 400
        assert response.get_json()["error"]


def test_verify_without_csrf_token_is_refused(app: Flask, roles: Roles) -> None:
    response = app.test_client().post(
        "/auth/verify",
        json={"message": "x", "signature": "y"},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 400
    assert "expired" in response.get_json()["error"]


def test_logout_ends_the_session(app: Flask, roles: Roles, keys: dict[str, LocalAccount]) -> None:
    user = sign_in(app.test_client(), keys[roles.buyer])
    assert user.post_json("/auth/logout").status_code == 200
    with user.client.session_transaction() as session:
        assert "address" not in session


def test_dev_wallet_lists_and_signs_for_node_accounts(app: Flask, roles: Roles) -> None:
    user = _fresh(app)
    accounts = user.client.get("/dev-wallet/accounts").get_json()["accounts"]
    assert roles.buyer.lower() in [a["address"] for a in accounts]


def test_dev_wallet_refuses_foreign_accounts_and_methods(app: Flask) -> None:
    user = _fresh(app)
    stranger = "0x" + "12" * 20
    response = user.post_json(
        "/dev-wallet/rpc", {"method": "eth_sendTransaction", "params": [{"from": stranger}]}
    )
    assert response.status_code == 400
    response = user.post_json("/dev-wallet/rpc", {"method": "eth_accounts", "params": [1]})
    assert response.status_code == 400


def test_dev_wallet_is_off_on_other_chains(app: Flask, monkeypatch: Any) -> None:
    monkeypatch.setattr("escrow.deploy.LOCAL_CHAIN_IDS", set())
    monkeypatch.setattr("webapp.chain.LOCAL_CHAIN_IDS", set())
    user = _fresh(app)
    assert user.client.get("/dev-wallet/accounts").status_code == 404
    assert (
        user.post_json(
            "/dev-wallet/rpc", {"method": "personal_sign", "params": ["0x", "0x"]}
        ).status_code
        == 404
    )


def test_healthz_reports_chain_database_and_indexer(app: Flask) -> None:
    report = app.test_client().get("/healthz").get_json()
    assert report["database"]["ok"] is True
    assert report["chain"]["chain_id"] == app.config["CHAIN"].chain_id
    assert report["indexer"]["last_block"] is None  # nothing indexed yet


def test_unknown_page_is_a_friendly_404(app: Flask) -> None:
    response = app.test_client().get("/no/such/page")
    assert response.status_code == 404
    assert "There is nothing here" in response.get_data(as_text=True)


def test_changed_statement_is_refused(
    app: Flask, roles: Roles, keys: dict[str, LocalAccount]
) -> None:
    response = _tampered(
        app, roles, keys, app.config["SIWE_STATEMENT"], "I agree to send all my money."
    )
    assert response.status_code == 400 and "changed" in response.get_json()["error"]


def _who(user: WebUser) -> Any:
    response = user.client.get("/auth/signin", headers={"Accept": "application/json"})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert "Accept" in response.headers["Vary"]
    return response.get_json()["address"]


def test_signin_as_json_says_who_is_signed_in(
    app: Flask, roles: Roles, keys: dict[str, LocalAccount]
) -> None:
    user = sign_in(app.test_client(), keys[roles.buyer])
    assert _who(user) == roles.buyer.lower()
    # Signed out in another tab (the same cookie): the page that asks learns it.
    other_tab = WebUser(user.client, user.address)
    assert other_tab.post_json("/auth/logout").status_code == 200
    assert _who(user) is None
    assert _who(_fresh(app)) is None
    page = user.client.get("/auth/signin")
    assert "<html" in page.get_data(as_text=True) and "Accept" in page.headers["Vary"]


def test_switching_dev_accounts_signs_in_again_as_the_other(
    app: Flask, roles: Roles, keys: dict[str, LocalAccount]
) -> None:
    user = sign_in(app.test_client(), keys[roles.buyer])
    assert user.client.get("/dev-wallet/accounts").get_json()["signedIn"] == roles.buyer.lower()
    with user.client.session_transaction() as session:
        first_login = session["login"]
    # What wallet.js does on a pick: a fresh sign-in as the other account (the browser test
    # has the node sign it; the embedded chain has no personal_sign).
    message = user.client.get(f"/auth/message?address={roles.seller}").get_json()["message"]
    body = {"message": message, "signature": _signed(keys[roles.seller], message)}
    assert user.post_json("/auth/verify", body).status_code == 200
    assert user.client.get("/dev-wallet/accounts").get_json()["signedIn"] == roles.seller.lower()
    assert _who(user) == roles.seller.lower()
    # The buyer's sign-in is over for every copy of the old cookie.
    stale = app.test_client()
    with stale.session_transaction() as session:
        session["address"], session["login"] = roles.buyer.lower(), first_login
    assert _who(WebUser(stale, roles.buyer.lower())) is None


def test_failed_switch_keeps_the_session(
    app: Flask, roles: Roles, keys: dict[str, LocalAccount]
) -> None:
    user = sign_in(app.test_client(), keys[roles.buyer])
    message = user.client.get(f"/auth/message?address={roles.seller}").get_json()["message"]
    # A signature by another key (or none at all) changes nothing.
    bad = {"message": message, "signature": _signed(keys[roles.stranger], message)}
    assert user.post_json("/auth/verify", bad).status_code == 400
    assert _who(user) == roles.buyer.lower()
    assert user.client.get("/dev-wallet/accounts").get_json()["signedIn"] == roles.buyer.lower()


def test_signin_page_says_who_is_signed_in(
    app: Flask, roles: Roles, keys: dict[str, LocalAccount]
) -> None:
    assert "data-signed-in-note" not in _fresh(app).client.get("/auth/signin").get_data(True)
    user = sign_in(app.test_client(), keys[roles.buyer])
    with app.extensions["escrow_sessions"]() as session:
        person = session.scalar(select(User).where(User.address == roles.buyer.lower()))
        person.display_name = "<b>Aigerim</b>"
        session.commit()
    page = user.client.get("/auth/signin").get_data(as_text=True)
    assert "You are signed in as &lt;b&gt;Aigerim&lt;/b&gt;." in page
    assert "<b>Aigerim" not in page
