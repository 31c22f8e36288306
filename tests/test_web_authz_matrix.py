"""Who may call which web route: every route × anonymous, buyer, seller, arbitrator, stranger.

The table below is the web app's authorisation policy as data. Each row is one request against
a real target of the scene in ``authz_cases`` (a finished, an open and a disputed trade,
listings, a photo, an evidence file) and the exact outcome for each role, in the order
anonymous, buyer, seller, arbitrator, stranger:

* a status code, or
* ``SIGNIN``: a redirect to the sign-in page (an anonymous visitor of a page or form), or
* ``MOVED``: a redirect elsewhere (a form that did its work and sends the user on).

A request that is refused (any 4xx or ``SIGNIN``) must leave every database row and every
stored file as it was. ``test_every_route_has_a_row`` walks ``app.url_map``: a new route
without a row here fails, so each route gets an explicit authorisation decision.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from authz_cases import (
    NOWHERE,
    PNG,
    Scene,
    assert_no_trace,
    build_scene,
    db_state,
    files_state,
    state_diff,
)
from flask import Flask

from escrow.chain import Chain
from escrow.client import EscrowClient
from helpers import ONE_ETH, USD, Roles
from web_fixtures import WebUser

SIGNIN = "signin"
MOVED = "moved"
Outcome = int | str
ROLE_NAMES = ("anonymous", "buyer", "seller", "arbitrator", "stranger")


def cells(
    anonymous: Outcome, buyer: Outcome, seller: Outcome, arbitrator: Outcome, stranger: Outcome
) -> dict[str, Outcome]:
    return dict(zip(ROLE_NAMES, (anonymous, buyer, seller, arbitrator, stranger), strict=True))


def everyone(outcome: Outcome) -> dict[str, Outcome]:
    return cells(outcome, outcome, outcome, outcome, outcome)


@dataclass(frozen=True)
class Case:
    endpoint: str
    method: str
    #: Formatted with the scene's ids (``{open}``, ``{listing}``...) and ``{buyer_address}``.
    path: str
    expect: dict[str, Outcome]
    #: "json" (JSON body, Accept: JSON), "form" (form fields), "file" (multipart with a PNG).
    kind: str = "none"
    data: dict[str, Any] = field(default_factory=dict)
    #: Runs after every other case, because it ends the session.
    last: bool = False

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}" + (f" {self.data}" if self.data else "")


LISTING_FORM = {
    "title": "Road bike",
    "description": "Good as new",
    "price": "0.25",
    "currency": "ETH",
    "quantity": "1",
    "category": "bikes",
    "city": "Almaty",
}
STATEMENT = {"statement": "The parcel never arrived."}
# Quantities as numbers: the embedded test chain takes no hex strings (a node does).
RPC_SIGN = {
    "method": "eth_sendTransaction",
    "params": [{"from": "{owner_address}", "to": "{owner_address}", "value": 0, "gas": 21_000}],
}
RPC_SIGN_AS_BUYER = {
    "method": "eth_sendTransaction",
    "params": [{"from": "{buyer_address}", "to": "{buyer_address}", "value": 0, "gas": 21_000}],
}

# endpoint, method, path -> anonymous, buyer, seller, arbitrator, stranger
# fmt: off
MATRIX: tuple[Case, ...] = (
    # ---------------------------------------------------------------- listings
    Case("listings.index", "GET", "/", everyone(200)),
    Case("listings.index", "GET", "/?q=bike&category=bikes&currency=ETH&min=0.1&max=2&page=2",
         everyone(200)),
    Case("listings.detail", "GET", "/listings/{listing}", everyone(200)),
    Case("listings.detail", "GET", "/listings/{listing_withdrawn}", cells(404, 404, 200, 404, 404)),
    Case("listings.detail", "GET", "/listings/" + str(NOWHERE), everyone(404)),
    Case("listings.mine", "GET", "/listings/mine", cells(SIGNIN, 200, 200, 200, 200)),
    Case("listings.create", "GET", "/listings/new", cells(SIGNIN, 200, 200, 200, 200)),
    Case("listings.create", "POST", "/listings/new", cells(SIGNIN, MOVED, MOVED, MOVED, MOVED),
         "form", LISTING_FORM),
    Case("listings.edit", "GET", "/listings/{listing}/edit", cells(SIGNIN, 403, 200, 403, 403)),
    Case("listings.edit", "GET", f"/listings/{NOWHERE}/edit", cells(SIGNIN, 404, 404, 404, 404)),
    Case("listings.edit", "POST", "/listings/{listing_edit}/edit",
         cells(SIGNIN, 403, MOVED, 403, 403), "form", LISTING_FORM),
    Case("listings.pause", "POST", "/listings/{listing_pause}/pause",
         cells(SIGNIN, 403, MOVED, 403, 403), "form", {"confirm": "y"}),
    Case("listings.pause", "POST", f"/listings/{NOWHERE}/pause",
         cells(SIGNIN, 404, 404, 404, 404), "form", {"confirm": "y"}),
    Case("listings.delete", "POST", "/listings/{listing_delete}/delete",
         cells(SIGNIN, 403, MOVED, 403, 403), "form", {"confirm": "y"}),
    Case("listings.delete", "POST", f"/listings/{NOWHERE}/delete",
         cells(SIGNIN, 404, 404, 404, 404), "form", {"confirm": "y"}),
    Case("listings.upload", "GET", "/uploads/{photo}", everyone(200)),
    Case("listings.upload", "GET", "/uploads/..%2Fweb.sqlite3", everyone(404)),
    Case("listings.upload", "GET", "/uploads/" + "f" * 32 + ".png", everyone(404)),
    # ---------------------------------------------------------------- buying
    # The arbitrator may buy from others (another arbitrator is chosen for that trade).
    # Another buyer's checkout hold is not there for anyone else (404, nothing changes);
    # these come before the buyer's new checkouts below, which replace the open hold.
    Case("trades.release_hold", "POST", "/checkout/{hold_release}/release",
         cells(401, 200, 404, 404, 404), "json", {"reason": "refused"}),
    Case("trades.hold_paid", "POST", "/checkout/{hold_paid}/paid",
         cells(401, 400, 404, 404, 404), "json", {"tx_hash": "{tx_hash}"}),
    Case("trades.hold_paid", "POST", f"/checkout/{NOWHERE}/paid",
         cells(401, 404, 404, 404, 404), "json", {"tx_hash": "0x" + "00" * 32}),
    Case("trades.hold_failed", "POST", "/checkout/{hold_paid}/failed",
         cells(401, 409, 404, 404, 404), "json", {"tx_hash": "{tx_hash}"}),
    Case("trades.hold_failed", "POST", f"/checkout/{NOWHERE}/failed",
         cells(401, 404, 404, 404, 404), "json", {"tx_hash": "0x" + "00" * 32}),
    Case("trades.buy", "POST", "/listings/{listing}/buy", cells(401, 200, 409, 200, 200), "json",
         {"quote": {"amount": str(ONE_ETH), "currency": "ETH", "version": "1"}}),
    Case("trades.buy", "POST", "/listings/{listing_usd}/buy", cells(401, 200, 409, 200, 200),
         "json", {"quote": {"amount": str(25 * USD), "currency": "USD", "version": "1"}}),
    Case("trades.buy", "POST", "/listings/{listing_withdrawn}/buy",
         cells(401, 409, 409, 409, 409), "json"),
    Case("trades.buy", "POST", f"/listings/{NOWHERE}/buy", cells(401, 404, 404, 404, 404), "json"),
    # ---------------------------------------------------------------- trade pages
    Case("trades.index", "GET", "/trades", cells(SIGNIN, 200, 200, 200, 200)),
    Case("trades.index", "GET", "/trades?role=seller&status=open&page=2",
         cells(SIGNIN, 200, 200, 200, 200)),
    Case("trades.show", "GET", "/trades/{open}", cells(SIGNIN, 200, 200, 200, 200)),
    Case("trades.show", "GET", "/trades/{disputed}", cells(SIGNIN, 200, 200, 200, 200)),
    Case("trades.show", "GET", "/trades/{done}", cells(SIGNIN, 200, 200, 200, 200)),
    Case("trades.show", "GET", f"/trades/{NOWHERE}", cells(SIGNIN, 404, 404, 404, 404)),
    # ---------------------------------------------------------------- trade actions
    Case("trades.act", "POST", "/trades/{open}/actions/ship", cells(401, 403, 200, 403, 403),
         "json", {"tracking": "RR123456789KZ"}),
    Case("trades.act", "POST", "/trades/{open}/actions/confirm", cells(401, 200, 403, 403, 403),
         "json"),
    Case("trades.act", "POST", "/trades/{open}/actions/seller_refund",
         cells(401, 403, 200, 403, 403), "json"),
    Case("trades.act", "POST", "/trades/{open}/actions/propose_split",
         cells(401, 200, 200, 403, 403), "json", {"buyer_percent": "40"}),
    Case("trades.act", "POST", "/trades/{open}/actions/accept_split",
         cells(401, 409, 409, 403, 403), "json"),
    Case("trades.act", "POST", "/trades/{open}/actions/dispute", cells(401, 200, 200, 403, 403),
         "json", STATEMENT),
    # Contract v2: receipt and extension belong to the shipped state; the open trade is funded.
    Case("trades.act", "POST", "/trades/{open}/actions/received", cells(401, 409, 403, 403, 403),
         "json"),
    Case("trades.act", "POST", "/trades/{open}/actions/request_extension",
         cells(401, 409, 403, 403, 403), "json", {"extra_days": "3"}),
    Case("trades.act", "POST", "/trades/{open}/actions/grant_extension",
         cells(401, 403, 409, 403, 403), "json"),
    Case("trades.act", "POST", "/trades/{open}/actions/cancel_split",
         cells(401, 409, 409, 403, 403), "json"),
    # Timeout exits are for anyone signed in (the contract lets anyone send them), and only
    # once the timeout has passed.
    Case("trades.act", "POST", "/trades/{open}/actions/release", cells(401, 409, 409, 409, 409),
         "json"),
    Case("trades.act", "POST", "/trades/{open}/actions/refund", cells(401, 409, 409, 409, 409),
         "json"),
    Case("trades.act", "POST", "/trades/{disputed}/actions/resolve",
         cells(401, 409, 409, 409, 409), "json"),
    Case("trades.act", "POST", "/trades/{disputed}/actions/dispute",
         cells(401, 409, 409, 403, 403), "json", STATEMENT),
    Case("trades.act", "POST", "/trades/{done}/actions/confirm", cells(401, 409, 403, 403, 403),
         "json"),
    Case("trades.act", "POST", "/trades/{open}/actions/steal", cells(401, 404, 404, 404, 404),
         "json"),
    Case("trades.act", "POST", f"/trades/{NOWHERE}/actions/confirm",
         cells(401, 404, 404, 404, 404), "json"),
    # ---------------------------------------------------------------- evidence and messages
    Case("disputes.upload", "POST", "/trades/{disputed}/evidence",
         cells(401, 200, 200, 200, 403), "file"),
    # Like messages: the arbitrator adds evidence only once there is a dispute.
    Case("disputes.upload", "POST", "/trades/{open}/evidence", cells(401, 200, 200, 403, 403),
         "file"),
    Case("disputes.upload", "POST", "/trades/{done}/evidence", cells(401, 409, 409, 409, 403),
         "file"),
    Case("disputes.upload", "POST", f"/trades/{NOWHERE}/evidence",
         cells(401, 404, 404, 404, 404), "file"),
    Case("disputes.download", "GET", "/evidence/{evidence}", cells(SIGNIN, 200, 200, 200, 403)),
    Case("disputes.download", "GET", f"/evidence/{NOWHERE}", cells(SIGNIN, 404, 404, 404, 404)),
    # The arbitrator joins the conversation only once there is a dispute.
    Case("disputes.post_message", "POST", "/trades/{open}/messages",
         cells(SIGNIN, MOVED, MOVED, 403, 403), "form", {"body": "When will you ship?"}),
    Case("disputes.post_message", "POST", "/trades/{disputed}/messages",
         cells(SIGNIN, MOVED, MOVED, MOVED, 403), "form", {"body": "Please send photos."}),
    Case("disputes.post_message", "POST", f"/trades/{NOWHERE}/messages",
         cells(SIGNIN, 404, 404, 404, 404), "form", {"body": "Hello"}),
    Case("disputes.statement_sent", "POST", "/trades/{disputed}/statement",
         cells(401, 409, 409, 409, 403), "json", {"tx_hash": "0x" + "ab" * 32}),
    # ---------------------------------------------------------------- chat before buying
    # Only the conversation's buyer and seller see it; for anyone else it does not exist.
    Case("notifications.index", "GET", "/notifications", cells(SIGNIN, 200, 200, 200, 200)),
    Case("notifications.open_one", "GET", f"/notifications/{NOWHERE}",
         cells(SIGNIN, 404, 404, 404, 404)),
    Case("notifications.mark_all_read", "POST", "/notifications/read",
         cells(SIGNIN, MOVED, MOVED, MOVED, MOVED), kind="form"),
    Case("notifications.poll", "GET", "/notifications/poll", cells(SIGNIN, 200, 200, 200, 200)),
    Case("notifications.poll", "GET", "/notifications/poll?trade={open}",
         cells(SIGNIN, 200, 200, 200, 404)),
    Case("notifications.poll", "GET", f"/notifications/poll?trade={NOWHERE}",
         cells(SIGNIN, 404, 404, 404, 404)),
    Case("notifications.settings", "GET", "/notifications/settings",
         cells(SIGNIN, 200, 200, 200, 200)),
    Case("notifications.settings", "POST", "/notifications/settings",
         cells(SIGNIN, 400, 400, 400, 400), kind="form", data={"email": "not an address"}),
    Case("notifications.settings", "POST", "/notifications/settings",
         cells(SIGNIN, MOVED, MOVED, MOVED, MOVED), kind="form",
         data={"email": "me@example.kz", "email_enabled": "1"}),
    Case("messages.inbox", "GET", "/messages", cells(SIGNIN, 200, 200, 200, 200)),
    Case("messages.show", "GET", "/messages/{conversation}", cells(SIGNIN, 200, 200, 404, 404)),
    Case("messages.show", "GET", f"/messages/{NOWHERE}", cells(SIGNIN, 404, 404, 404, 404)),
    Case("messages.reply", "POST", "/messages/{conversation}",
         cells(SIGNIN, MOVED, MOVED, 404, 404), "form", {"body": "Can we meet at 6?"}),
    Case("messages.reply", "POST", f"/messages/{NOWHERE}", cells(SIGNIN, 404, 404, 404, 404),
         "form", {"body": "Hello"}),
    # A seller cannot message themselves; a withdrawn listing starts no conversation.
    Case("messages.ask", "POST", "/listings/{listing}/ask", cells(SIGNIN, MOVED, 403, MOVED, MOVED),
         "form", {"body": "Is it still for sale?"}),
    Case("messages.ask", "POST", "/listings/{listing_withdrawn}/ask",
         cells(SIGNIN, 404, 403, 404, 404), "form", {"body": "Is it still for sale?"}),
    Case("messages.ask", "POST", f"/listings/{NOWHERE}/ask", cells(SIGNIN, 404, 404, 404, 404),
         "form", {"body": "Hello"}),
    # ---------------------------------------------------------------- profiles and ratings
    Case("profiles.rate_trade", "POST", "/trades/{done}/rating", cells(401, 201, 201, 403, 403),
         "json", {"score": 5, "comment": "Smooth"}),
    Case("profiles.rate_trade", "POST", "/trades/{open}/rating", cells(401, 400, 400, 403, 403),
         "json", {"score": 5}),
    Case("profiles.rate_trade", "POST", f"/trades/{NOWHERE}/rating",
         cells(401, 404, 404, 404, 404), "json", {"score": 5}),
    Case("profiles.profile", "GET", "/u/{seller_address}", everyone(200)),
    Case("profiles.profile", "GET", "/u/0x" + "ab" * 20, everyone(404)),
    Case("profiles.profile", "GET", "/u/not-an-address", everyone(404)),
    Case("profiles.me", "GET", "/me", cells(SIGNIN, 200, 200, 200, 200)),
    Case("profiles.me", "POST", "/me", cells(SIGNIN, MOVED, MOVED, MOVED, MOVED), "form",
         {"display_name": "Aigerim", "languages": "Kazakh, Russian"}),
    Case("profiles.arbitrators", "GET", "/arbitrators", everyone(200)),
    # ---------------------------------------------------------------- arbitration
    Case("arbitration.index", "GET", "/arbitration", cells(SIGNIN, 403, 403, 200, 403)),
    Case("arbitration.case", "GET", "/arbitration/{disputed}", cells(SIGNIN, 403, 403, 200, 403)),
    Case("arbitration.case", "GET", "/arbitration/{open}", cells(SIGNIN, 403, 403, 200, 403)),
    Case("arbitration.case", "GET", f"/arbitration/{NOWHERE}", cells(SIGNIN, 404, 404, 404, 404)),
    Case("arbitration.rule", "POST", "/arbitration/{disputed}/rule",
         cells(401, 403, 403, 200, 403), "json", {"buyer_percent": 50}),
    Case("arbitration.rule", "POST", "/arbitration/{open}/rule", cells(401, 403, 403, 409, 403),
         "json", {"buyer_percent": 50}),
    Case("arbitration.rule", "POST", f"/arbitration/{NOWHERE}/rule",
         cells(401, 404, 404, 404, 404), "json", {"buyer_percent": 50}),
    # ---------------------------------------------------------------- sign-in, dev wallet
    Case("auth.signin", "GET", "/auth/signin", everyone(200)),
    Case("auth.message", "GET", "/auth/message?address={buyer_address}", everyone(200)),
    Case("auth.message", "GET", "/auth/message?address=nobody", everyone(400)),
    Case("auth.verify", "POST", "/auth/verify", everyone(400), "json",
         {"message": "example.com wants you to sign in", "signature": "0x00"}),
    # By design on a local chain only (see test_dev_wallet_is_off_on_other_chains), for this
    # computer: the node's unlocked demo accounts, each signing only as the signed-in one.
    Case("auth.dev_accounts", "GET", "/dev-wallet/accounts", everyone(200)),
    Case("auth.dev_rpc", "POST", "/dev-wallet/rpc", everyone(403), "json", RPC_SIGN),
    Case("auth.dev_rpc", "POST", "/dev-wallet/rpc", cells(403, 200, 403, 403, 403), "json",
         RPC_SIGN_AS_BUYER),
    Case("auth.dev_rpc", "POST", "/dev-wallet/rpc", everyone(400), "json",
         {"method": "eth_sendTransaction", "params": [{"from": "0x" + "12" * 20}]}),
    Case("auth.logout", "POST", "/auth/logout", everyone(MOVED), "form", last=True),
    # ---------------------------------------------------------------- public JSON and files
    Case("health.healthz", "GET", "/healthz", everyone(200)),
    Case("health.livez", "GET", "/livez", everyone(200)),
    Case("health.status", "GET", "/status", everyone(200)),
    Case("health.favicon", "GET", "/favicon.ico", everyone(200)),
    Case("tx.tx_status", "GET", "/api/tx/{tx_hash}", everyone(200)),
    Case("tx.tx_status", "GET", "/api/tx/0x1234", everyone(404)),
    Case("static", "GET", "/static/css/app.css", everyone(200)),
    # ---------------------------------------------------------------- languages
    Case("languages.catalogue", "GET", "/i18n/kk.js", everyone(200)),
    Case("languages.catalogue", "GET", "/i18n/xx.js", everyone(404)),
    Case("languages.choose", "POST", "/lang", everyone(MOVED), "form", {"lang": "ru"}),
    Case("languages.choose", "POST", "/lang", everyone(400), "form", {"lang": "fr"}),
)
# fmt: on

#: Rules that need no row (the framework's own).
EXEMPT = {"static"}


def _format(value: Any, names: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return value.format(**names)
    if isinstance(value, dict):
        return {k: _format(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_format(v, names) for v in value]
    return value


def send_case(user: WebUser, case: Case, names: dict[str, Any]) -> Any:
    path = case.path.format(**names)
    data = _format(case.data, names)
    if case.method == "GET":
        return user.client.get(path)
    token = user.csrf()
    if case.kind == "json":
        return user.client.post(
            path, json=data, headers={"X-CSRFToken": token, "Accept": "application/json"}
        )
    if case.kind == "file":
        return user.client.post(
            path,
            data={"file": (io.BytesIO(PNG + path.encode()), "box.png"), **data},
            headers={"X-CSRFToken": token, "Accept": "application/json"},
            content_type="multipart/form-data",
        )
    return user.client.post(path, data={**data, "csrf_token": token})


def outcome_of(response: Any) -> Outcome:
    if response.status_code == 302:
        location = response.headers["Location"]
        return SIGNIN if location.startswith("/auth/signin") else MOVED
    return int(response.status_code)


def refused(outcome: Outcome) -> bool:
    return outcome == SIGNIN or (isinstance(outcome, int) and outcome >= 400)


def ordered(cases: tuple[Case, ...]) -> list[Case]:
    return sorted(cases, key=lambda c: c.last)


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_route_matrix(
    role: str,
    app: Flask,
    web: Callable[..., WebUser],
    roles: Roles,
    client: EscrowClient,
    chain: Chain,
) -> None:
    # The table checks who may do what; the write rate limit (tested on its own in
    # test_web_security_limits.py) would otherwise refuse the later rows of a long table.
    app.config["WRITE_RATE_LIMIT"] = "100000 per minute"
    scene: Scene = build_scene(app, client, chain, roles, web("buyer", roles))
    user = web(None if role == "anonymous" else role, roles)
    names = {
        **scene.values(),
        "buyer_address": roles.buyer,
        "owner_address": roles.owner,
        "seller_address": roles.seller.lower(),
    }
    problems: list[str] = []
    for case in ordered(MATRIX):
        expected = case.expect[role]
        rows, files = db_state(app), files_state(app)
        response = send_case(user, case, names)
        body = response.get_data().decode("utf-8", "replace")
        response.close()  # file downloads hold the file open until closed
        got = outcome_of(response)
        assert response.status_code != 500, f"{case.id} as {role}: {body[:300]}"
        assert_no_trace(body)
        if got != expected:
            problems.append(f"{case.id} as {role}: expected {expected}, got {got} ({body[:160]!r})")
            continue
        if refused(got):
            changed = state_diff(rows, db_state(app))
            if changed or files != files_state(app):
                problems.append(
                    f"{case.id} as {role} was refused but changed {changed} "
                    f"{files ^ files_state(app)}"
                )
            if isinstance(got, int) and case.method == "POST":
                message = (response.get_json(silent=True) or {}).get("error") or body
                assert message.strip(), f"{case.id} as {role}: refused without a message"
    assert not problems, "\n".join(problems)


def _rule_methods(app: Flask) -> set[tuple[str, str]]:
    return {
        (rule.endpoint, method)
        for rule in app.url_map.iter_rules()
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
    }


def test_every_route_has_a_row(app: Flask) -> None:
    """A route (and each of its methods) without a row here has no authorisation decision."""
    covered = {(case.endpoint, case.method) for case in MATRIX}
    missing = {(e, m) for e, m in _rule_methods(app) if e not in EXEMPT} - covered
    assert not missing, f"routes without a row in MATRIX: {sorted(missing)}"
    unknown = covered - _rule_methods(app)
    assert not unknown, f"rows for routes that do not exist: {sorted(unknown)}"


def test_every_row_names_every_role() -> None:
    for case in MATRIX:
        assert set(case.expect) == set(ROLE_NAMES), case.id


def test_rows_hit_the_endpoint_they_name(app: Flask) -> None:
    """Each row's path is routed to the endpoint the row names (so the table cannot drift)."""
    adapter = app.url_map.bind("localhost")
    names: dict[str, Any] = {name: 1 for name in Scene.__dataclass_fields__}
    names.update(
        photo="0" * 32 + ".png",
        tx_hash="0x" + "ab" * 32,
        buyer_address="0x" + "11" * 20,
        seller_address="0x" + "22" * 20,
        owner_address="0x" + "33" * 20,
    )
    for case in MATRIX:
        path = case.path.format(**names).split("?")[0].replace("%2F", "/")
        try:
            endpoint, _ = adapter.match(path, method=case.method)
        except Exception:  # a path no rule matches is fine only for 404 rows
            assert set(case.expect.values()) == {404}, case.id
            continue
        assert endpoint == case.endpoint, case.id


def test_dev_wallet_is_not_there_off_a_local_chain(
    app: Flask, web: Callable[..., WebUser], roles: Roles, monkeypatch: Any
) -> None:
    """The one route open to everyone that signs: it does not exist on a real chain."""
    monkeypatch.setattr("webapp.chain.LOCAL_CHAIN_IDS", set())
    for role in ("anonymous", "buyer"):
        user = web(None if role == "anonymous" else role, roles)
        names = {"owner_address": roles.owner}
        response = send_case(
            user,
            Case("auth.dev_rpc", "POST", "/dev-wallet/rpc", everyone(404), "json", RPC_SIGN),
            names,
        )
        assert response.status_code == 404, role
        assert user.client.get("/dev-wallet/accounts").status_code == 404
