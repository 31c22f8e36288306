"""Bad input at every form and JSON endpoint, generated with Hypothesis.

For every request the properties are the same: never a 500 and never a stack trace; a refused
request says why (a JSON ``error`` or the form shown again with its error) and stores nothing;
text that is stored is shown escaped. Each test builds its scene once and keeps what the
examples share in a state the properties allow (ratings and reservations are reset between
examples). Known bugs have an explicit ``@example`` and a plain regression test below.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from authz_cases import PNG, Scene, assert_no_trace, build_scene, db_state, state_diff
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from flask import Flask
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image
from sqlalchemy import delete, func, select, update

from escrow.chain import Chain
from escrow.client import EscrowClient
from escrow.db.models import (
    CheckoutHold,
    EvidenceFile,
    Listing,
    ListingStatus,
    LoginNonce,
    Message,
    Rating,
    User,
)
from helpers import Roles
from web_fixtures import WebUser, db_session
from webapp.listings import CATEGORIES, PHOTO_NAME
from webapp.views import to_units

FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FEW = settings(FUZZ, max_examples=25)

# ------------------------------------------------------------------ strategies

NASTY = (
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "{{ 7*7 }}",
    "1e309",
    "-1e309",
    "NaN",
    "Infinity",
    "-1",
    "0",
    "-0.0",
    "0x10",
    "1_000",
    "1,5",
    "1.2.3",
    "١٢٣",
    "１２",
    "9" * 80,
    "0." + "0" * 30 + "1",
    "115792089237316195423570985008687907853269984665640564039457584007913129639936",
    "",
    "   ",
    "\x00",
    "\u202eevil",
    "' OR 1=1 --",
    "../../etc/passwd",
    "%00",
)
nasty_text = st.one_of(st.sampled_from(NASTY), st.text(max_size=60))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**300), max_value=2**300),
    st.floats(allow_nan=True, allow_infinity=True),
    nasty_text,
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
TRAVERSAL_NAMES = (
    "../../../etc/passwd",
    "..\\..\\windows\\win.ini",
    "/etc/shadow",
    "....//....//x.png",
    "%2e%2e%2fx.png",
    "photo.png\x00.exe",
    ".htaccess",
    "a" * 300 + ".png",
    "фото.png",
    "<script>.png",
    "",
    " ",
)
file_names = st.one_of(st.sampled_from(TRAVERSAL_NAMES), st.text(min_size=1, max_size=40))
HEADS = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff\xe0",
    b"GIF89a",
    b"%PDF-1.7\n",
    b"RIFF\0\0\0\0WEBP",
    b"",
)
file_bodies = st.builds(
    lambda head, rest: head + rest, st.sampled_from(HEADS), st.binary(max_size=1500)
)


def _real_png() -> bytes:
    """A PNG that decodes: photos are decoded and re-encoded, so only these are stored."""
    out = io.BytesIO()
    Image.new("RGB", (3, 2), (10, 20, 30)).save(out, "PNG")
    return out.getvalue()


REAL_PNG = _real_png()

# ------------------------------------------------------------------ checking responses

FIELD_ERROR = re.compile(r'<span class="field-error">([^<]+)</span>')
ERROR_PAGE = re.compile(r'<section class="error-page">.*?<p>([^<]+)</p>', re.S)
FLASH = re.compile(r'<p class="flash (?:error|warning)" role="alert">([^<]+)</p>')


def error_text(response: Any) -> str:
    data = response.get_json(silent=True)
    if isinstance(data, dict):
        return str(data.get("error") or "")
    body = response.get_data().decode("utf-8", "replace")
    found = FIELD_ERROR.findall(body) + ERROR_PAGE.findall(body) + FLASH.findall(body)
    return " ".join(found)


def check(response: Any, allowed: set[int], what: str = "") -> str:
    """Never a 500 or a trace; an allowed status; a refusal with a message. Returns the body."""
    body = response.get_data().decode("utf-8", "replace")
    response.close()
    assert response.status_code != 500, f"{what}: 500 {body[:300]}"
    assert_no_trace(body)
    assert response.status_code in allowed, f"{what}: {response.status_code} {body[:300]}"
    if response.status_code >= 400:
        assert error_text(response).strip(), f"{what}: refused without a message: {body[:300]}"
    return body


def stray_files(app: Flask) -> list[Path]:
    """Files under the data folder that are neither uploads, evidence nor the database."""
    data = Path(app.config["DATA_DIR"]).resolve()
    homes = [Path(app.config[k]).resolve() for k in ("UPLOAD_DIR", "EVIDENCE_DIR")]
    return [
        p
        for p in data.rglob("*")
        if p.is_file()
        and "sqlite3" not in p.name
        and not any(p.resolve().is_relative_to(home) for home in homes)
    ]


def count(app: Flask, model: Any) -> int:
    with db_session(app) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def refused_changed_nothing(app: Flask, before: dict[str, Any], what: str = "") -> None:
    changed = [t for t in state_diff(before, db_state(app)) if t != "login_nonces"]
    assert not changed, f"{what}: a refused request changed {changed}"


XSS_MARKERS = ("<script>alert(", "<img src=x onerror=")


def shown_escaped(page: str, text: str) -> None:
    """Text with markup in it never reaches the page as markup."""
    for marker in XSS_MARKERS:
        if marker in text:
            assert marker not in page, f"{text!r} is on the page unescaped"
    if "<" in text and len(text.strip()) >= 8:
        assert text.strip() not in page, f"{text!r} is on the page unescaped"


# ------------------------------------------------------------------ fixtures


class Market:
    """The scene with signed-in browsers for the buyer, the seller and the arbitrator."""

    def __init__(
        self,
        app: Flask,
        scene: Scene,
        roles: Roles,
        users: dict[str, WebUser],
        tokens: dict[str, str],
    ) -> None:
        self.app, self.scene, self.roles, self.users, self.tokens = app, scene, roles, users, tokens

    def __repr__(self) -> str:  # keeps Hypothesis' failure reports short
        return "Market(...)"

    def post(self, role: str, path: str, **kwargs: Any) -> Any:
        headers = {"X-CSRFToken": self.tokens[role], **kwargs.pop("headers", {})}
        return self.users[role].client.post(path, headers=headers, **kwargs)

    def post_json(self, role: str, path: str, data: Any) -> Any:
        return self.post(role, path, json=data, headers={"Accept": "application/json"})

    def post_raw_json(self, role: str, path: str, text: str) -> Any:
        return self.post(
            role,
            path,
            data=text,
            content_type="application/json",
            headers={"Accept": "application/json"},
        )

    def post_form(self, role: str, path: str, data: dict[str, Any], **kwargs: Any) -> Any:
        return self.post(role, path, data={**data, "csrf_token": self.tokens[role]}, **kwargs)

    def get(self, role: str, path: str) -> Any:
        return self.users[role].client.get(path)


@pytest.fixture
def fuzz_app(app: Flask) -> Flask:
    # Examples sign in and try sign-in messages far more often than a person could, and
    # write messages, evidence and listings faster than the quotas allow
    # (tests/test_web_security_limits.py tests those).
    app.config["SIGNIN_RATE_LIMIT"] = "100000 per minute"
    app.config["WRITE_RATE_LIMIT"] = "100000 per minute"
    for name in (
        "MESSAGES_PER_MINUTE",
        "MESSAGES_PER_HOUR",
        "EVIDENCE_FILES_PER_TRADE",
        "EVIDENCE_FILES_PER_USER_DAY",
        "LISTINGS_PER_DAY",
        "ACTIVE_LISTINGS_PER_SELLER",
    ):
        app.config[name] = 100_000
    return app


@pytest.fixture
def market(
    fuzz_app: Flask, web: Callable[..., WebUser], roles: Roles, client: EscrowClient, chain: Chain
) -> Market:
    users = {role: web(role, roles) for role in ("buyer", "seller", "arbitrator")}
    users["anonymous"] = web(None)
    scene = build_scene(fuzz_app, client, chain, roles, users["buyer"])
    tokens = {role: user.csrf() for role, user in users.items()}
    return Market(fuzz_app, scene, roles, users, tokens)


# ------------------------------------------------------------------ listings

prices = st.one_of(
    nasty_text,
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
    st.integers(min_value=-(10**80), max_value=10**80).map(str),
)
quantities = st.one_of(nasty_text, st.integers(min_value=-(10**30), max_value=10**30).map(str))
categories = st.one_of(st.sampled_from(sorted(CATEGORIES)), nasty_text)
currencies = st.one_of(st.sampled_from(["ETH", "USD"]), nasty_text)


def _listing_form(
    draw_title: str, price: str, currency: str, quantity: str, category: str
) -> dict[str, str]:
    return {
        "title": draw_title,
        "description": draw_title * 3,
        "price": price,
        "currency": currency,
        "quantity": quantity,
        "category": category,
        "city": draw_title[:100],
    }


def _expect_listing(form: dict[str, str], listing: Listing) -> None:
    assert listing.title == form["title"].strip()
    assert listing.price == to_units(form["price"].strip(), form["currency"]) > 0
    assert listing.currency in ("ETH", "USD") and listing.category in CATEGORIES
    assert 1 <= listing.quantity <= 1000


@FUZZ
@given(
    title=nasty_text, price=prices, currency=currencies, quantity=quantities, category=categories
)
@example(
    title="<script>alert(1)</script>", price="1.5", currency="ETH", quantity="1", category="bikes"
)
@example(title="Bike", price="1e309", currency="ETH", quantity="1", category="bikes")
@example(title="Bike", price="-1", currency="USD", quantity="99999999999999999999", category="x")
def test_listing_create(
    market: Market, title: str, price: str, currency: str, quantity: str, category: str
) -> None:
    app = market.app
    form = _listing_form(title, price, currency, quantity, category)
    before = db_state(app)
    response = market.post_form("seller", "/listings/new", form)
    check(response, {302, 400}, f"create {form}")
    if response.status_code == 400:
        refused_changed_nothing(app, before, "create")
        return
    with db_session(app) as session:
        listing = session.scalars(select(Listing).order_by(Listing.id.desc())).first()
        assert listing is not None
        _expect_listing(form, listing)
        listing_id = listing.id
    page = check(market.get("buyer", f"/listings/{listing_id}"), {200})
    shown_escaped(page, title)
    shown_escaped(check(market.get("buyer", "/?q=" + quote(title.strip()[:100])), {200}), title)


@FUZZ
@given(
    title=nasty_text, price=prices, currency=currencies, quantity=quantities, category=categories
)
def test_listing_edit(
    market: Market, title: str, price: str, currency: str, quantity: str, category: str
) -> None:
    app = market.app
    pk = market.scene.listing_edit
    form = _listing_form(title, price, currency, quantity, category)
    before = db_state(app)
    response = market.post_form("seller", f"/listings/{pk}/edit", form)
    check(response, {302, 400}, f"edit {form}")
    if response.status_code == 400:
        refused_changed_nothing(app, before, "edit")
        return
    with db_session(app) as session:
        listing = session.get(Listing, pk)
        assert listing is not None
        _expect_listing(form, listing)
    shown_escaped(check(market.get("seller", f"/listings/{pk}/edit"), {200}), title)


@FEW
@given(files=st.lists(st.tuples(file_bodies, file_names), min_size=1, max_size=3))
@example(files=[(PNG, "../../../etc/passwd")])
@example(files=[(b"MZ\x90\x00" + b"\x00" * 100, "photo.png")])
@example(files=[(PNG + b"\x00" * 3000, "big.png")])
@example(files=[(REAL_PNG, "photo.png"), (REAL_PNG + b"trailing bytes", "x.png")])
def test_photo_uploads(market: Market, files: list[tuple[bytes, str]]) -> None:
    app = market.app
    app.config["MAX_PHOTO_BYTES"] = 2048
    uploads = Path(app.config["UPLOAD_DIR"])
    form = _listing_form("Photo test", "1", "ETH", "1", "other")
    before, on_disk = db_state(app), set(uploads.iterdir())
    data: dict[str, Any] = {**form, "photos": [(io.BytesIO(body), name) for body, name in files]}
    response = market.post_form("seller", "/listings/new", data, content_type="multipart/form-data")
    check(response, {302, 400}, f"photos {[(len(b), n) for b, n in files]}")
    assert not stray_files(app)
    assert all(PHOTO_NAME.match(p.name) for p in uploads.iterdir())
    if response.status_code == 400:
        refused_changed_nothing(app, before, "photos")
        assert set(uploads.iterdir()) == on_disk
        return
    with db_session(app) as session:
        listing = session.scalars(select(Listing).order_by(Listing.id.desc())).first()
        assert listing is not None
        names = list(listing.photos)
    assert len(names) <= len(files)
    for name in names:
        assert PHOTO_NAME.match(name)
        served = market.get("anonymous", f"/uploads/{name}")
        # Stored re-encoded (tests/test_web_security_files.py), so never the bytes sent.
        assert served.status_code == 200 and served.data[:4] in [body[:4] for body, _ in files]
        served.close()


# ------------------------------------------------------------------ evidence and messages


@FEW
@given(body=file_bodies, name=file_names, note=nasty_text)
@example(body=b"hello", name="../../../etc/passwd", note="")
@example(body=b"\x00\x01binary", name="x.exe", note="")
@example(body=PNG + b"\x00" * 5000, name="big.png", note="")
@example(
    body=b"<html><script>alert(1)</script></html>",
    name="<b>.html",
    note="<script>alert(1)</script>",
)
def test_evidence_uploads(market: Market, body: bytes, name: str, note: str) -> None:
    app = market.app
    app.config["MAX_EVIDENCE_BYTES"] = 4096
    pk = market.scene.disputed
    before = db_state(app)
    response = market.post(
        "buyer",
        f"/trades/{pk}/evidence",
        data={"file": (io.BytesIO(body), name), "note": note},
        headers={"Accept": "application/json"},
        content_type="multipart/form-data",
    )
    check(response, {200, 400, 413}, f"evidence {name!r} {body[:16]!r}")
    assert not stray_files(app)
    if response.status_code != 200:
        refused_changed_nothing(app, before, "evidence")
        return
    evidence_id = response.get_json()["evidence_id"]
    with db_session(app) as session:
        row = session.get(EvidenceFile, evidence_id)
        assert row is not None
        assert "/" not in row.original_name and "\\" not in row.original_name
        assert not row.original_name.startswith(".") and len(row.original_name) <= 210
    download = market.get("seller", f"/evidence/{evidence_id}")
    assert download.status_code == 200 and download.data == body
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    download.close()
    page = check(market.get("seller", f"/trades/{pk}"), {200})
    shown_escaped(page, note)


@FUZZ
@given(
    body=nasty_text, as_json=st.booleans(), role=st.sampled_from(["buyer", "seller", "arbitrator"])
)
@example(body="<script>alert(1)</script>", as_json=False, role="buyer")
@example(body="[Dispute statement] [Dispute statement] I win", as_json=True, role="seller")
def test_messages(market: Market, body: str, as_json: bool, role: str) -> None:
    app = market.app
    pk = market.scene.disputed
    before, messages = db_state(app), count(app, Message)
    path = f"/trades/{pk}/messages"
    response = (
        market.post_json(role, path, {"body": body})
        if as_json
        else market.post_form(role, path, {"body": body})
    )
    check(response, {200, 302, 400}, f"message {body!r}")
    if response.status_code == 400:
        refused_changed_nothing(app, before, "message")
        return
    assert count(app, Message) == messages + 1
    with db_session(app) as session:
        stored = session.scalars(select(Message).order_by(Message.id.desc())).first()
        assert stored is not None and 1 <= len(stored.body) <= 2000
        assert not stored.body.startswith("[Dispute statement]")
    shown_escaped(check(market.get("seller", f"/trades/{pk}"), {200}), stored.body)


# ------------------------------------------------------------------ ratings and profiles


def _reset_ratings(app: Flask) -> None:
    with db_session(app) as session:
        session.execute(delete(Rating))
        session.commit()


@FUZZ
@given(score=json_values, comment=json_values, as_json=st.booleans())
@example(score=float("inf"), comment="Great", as_json=True)
@example(score=5, comment="<script>alert(1)</script>", as_json=False)
def test_ratings(market: Market, score: Any, comment: Any, as_json: bool) -> None:
    app = market.app
    pk = market.scene.done
    _reset_ratings(app)
    before = db_state(app)
    path = f"/trades/{pk}/rating"
    if as_json:
        response = market.post_json("buyer", path, {"score": score, "comment": comment})
        check(response, {201, 400}, f"rating {score!r} {comment!r}")
        accepted = response.status_code == 201
    else:
        form = {"score": str(score), "comment": str(comment)}
        response = market.post_form("buyer", path, form, headers={"Accept": "application/json"})
        check(response, {201, 400}, f"rating {form}")
        accepted = response.status_code == 201
    if not accepted:
        refused_changed_nothing(app, before, "rating")
        return
    with db_session(app) as session:
        rating = session.scalar(select(Rating))
        assert rating is not None and 1 <= rating.score <= 5
        assert rating.comment is None or len(rating.comment) <= 1000
        text = rating.comment or ""
    shown_escaped(check(market.get("anonymous", f"/u/{market.roles.seller.lower()}"), {200}), text)


@FUZZ
@given(
    name=nasty_text,
    languages=st.one_of(nasty_text, st.lists(nasty_text, max_size=10).map(", ".join)),
)
@example(name="<script>alert(1)</script>", languages="English, <b>bold</b>")
@example(name="x" * 65, languages=", ".join(["English"] * 9))
def test_profile_edit(market: Market, name: str, languages: str) -> None:
    app = market.app
    before = db_state(app)
    response = market.post_form("buyer", "/me", {"display_name": name, "languages": languages})
    check(response, {302, 400}, f"profile {name!r} {languages!r}")
    if response.status_code == 400:
        refused_changed_nothing(app, before, "profile")
        return
    with db_session(app) as session:
        user = session.scalar(select(User).where(User.address == market.roles.buyer.lower()))
        assert user is not None
        assert user.display_name is None or len(user.display_name) <= 64
        assert len(user.languages) <= 8
    page = check(market.get("anonymous", f"/u/{market.roles.buyer.lower()}"), {200})
    shown_escaped(page, name)


# ------------------------------------------------------------------ buying


def _free_listings(app: Flask, *ids: int) -> None:
    """Every example starts with the items free and no checkout history."""
    with db_session(app) as session:
        session.execute(
            update(Listing)
            .where(Listing.id.in_(ids))
            .values(status=ListingStatus.ACTIVE.value, reserved_by=None, reserved_until=None)
        )
        # Checkout holds (the scene's too) would end or be replaced by the next checkout.
        session.execute(delete(CheckoutHold))
        session.execute(update(Listing).values(reserved_by=None, reserved_until=None))
        session.commit()


def count_open_holds(app: Flask) -> int:
    with db_session(app) as session:
        return int(
            session.scalar(select(func.count(CheckoutHold.id)).where(CheckoutHold.state != "ended"))
            or 0
        )


def _quote(app: Flask, pk: int) -> dict[str, str]:
    """The quote the listing page shows (what a real buyer's request carries)."""
    with db_session(app) as session:
        listing = session.get(Listing, pk)
        assert listing is not None
        return {
            "amount": str(listing.price),
            "currency": listing.currency,
            "version": str(listing.version),
        }


signatures = st.one_of(
    json_values,
    st.binary(min_size=0, max_size=70).map(lambda b: "0x" + b.hex()),
    st.binary(min_size=65, max_size=65).map(lambda b: "0x" + b.hex()),
)
permits = st.one_of(
    json_values,
    st.fixed_dictionaries({"signature": signatures, "deadline": json_values}),
    st.fixed_dictionaries(
        {
            "signature": st.binary(min_size=65, max_size=65).map(lambda b: "0x" + b.hex()),
            "deadline": st.integers(min_value=-(2**300), max_value=2**300),
        }
    ),
)
arbitrators = st.one_of(
    json_values,
    st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex()),
    st.sampled_from(["0x" + "00" * 20, "0X" + "AB" * 20]),
)


@FEW
@given(usd=st.booleans(), arbitrator=arbitrators, permit=permits, with_permit=st.booleans())
@example(
    usd=True,
    arbitrator=None,
    permit={"signature": "0x" + "11" * 65, "deadline": float("inf")},
    with_permit=True,
)
@example(
    usd=True,
    arbitrator=None,
    permit={"signature": "0x" + "11" * 65, "deadline": -5},
    with_permit=True,
)
@example(
    usd=True,
    arbitrator=None,
    permit={"signature": "0x" + "11" * 65, "deadline": 2**300},
    with_permit=True,
)
@example(
    usd=True,
    arbitrator=None,
    permit={"signature": "0x" + "11" * 65, "deadline": 2**40},
    with_permit=True,
)
@example(usd=False, arbitrator="<script>", permit=None, with_permit=False)
def test_buy_with_bogus_payloads(
    market: Market, usd: bool, arbitrator: Any, permit: Any, with_permit: bool
) -> None:
    app = market.app
    scene = market.scene
    pk = scene.listing_usd if usd else scene.listing
    _free_listings(app, scene.listing_usd, scene.listing)
    body: dict[str, Any] = {"quote": _quote(app, pk)}
    if arbitrator is not None:
        body["arbitrator"] = arbitrator
    if with_permit:
        body["permit"] = permit
    # A refused purchase may have held the item for a moment: only its timestamp may change,
    # and the ended hold is kept as the record of an unfinished checkout.
    before = db_state(app, ignore=("updated_at",), tables_ignored=("checkout_holds",))
    response = market.post_json("buyer", f"/listings/{pk}/buy", body)
    check(response, {200, 400, 409}, f"buy {body!r}")
    if response.status_code != 200:
        after = db_state(app, ignore=("updated_at",), tables_ignored=("checkout_holds",))
        assert not state_diff(before, after), body
        assert count_open_holds(app) == 0, body
        return
    data = response.get_json()
    assert "tx" in data or "permit" in data
    with db_session(app) as session:
        listing = session.get(Listing, pk)
        assert listing is not None and listing.reserved_by == market.roles.buyer.lower()


# ------------------------------------------------------------------ trade actions and ruling

ACTION_NAMES = (
    "ship",
    "confirm",
    "release",
    "refund",
    "seller_refund",
    "propose_split",
    "accept_split",
    "dispute",
    "resolve",
)
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "buyer_percent": json_values,
            "tracking": json_values,
            "statement": json_values,
        },
    ),
)


@FUZZ
@given(
    name=st.one_of(st.sampled_from(ACTION_NAMES), nasty_text),
    role=st.sampled_from(["buyer", "seller", "arbitrator"]),
    trade=st.sampled_from(["open", "disputed", "done"]),
    body=bodies,
)
@example(name="propose_split", role="buyer", trade="open", body={"buyer_percent": float("nan")})
@example(name="propose_split", role="buyer", trade="open", body={"buyer_percent": float("inf")})
@example(name="propose_split", role="seller", trade="open", body={"buyer_percent": "1e309"})
@example(name="propose_split", role="seller", trade="open", body={"buyer_percent": -1})
@example(name="propose_split", role="seller", trade="open", body={"buyer_percent": "12.345"})
@example(name="ship", role="seller", trade="open", body={"tracking": {"a": [1]}})
@example(name="dispute", role="buyer", trade="open", body={"statement": "x" * 2001})
def test_trade_actions(market: Market, name: str, role: str, trade: str, body: Any) -> None:
    app = market.app
    pk = getattr(market.scene, trade)
    before = db_state(app)
    response = market.post_json(role, f"/trades/{pk}/actions/{quote(name, safe='')}", body)
    check(response, {200, 400, 403, 404, 405, 409}, f"{name} by {role} on {trade} with {body!r}")
    assert not state_diff(before, db_state(app)), "a trade action changed the database"
    if response.status_code == 200:
        tx = response.get_json()["tx"]
        assert tx["from"].lower() == market.roles.by_name(role).lower() and tx["data"].startswith(
            "0x"
        )
        percent = body.get("buyer_percent") if isinstance(body, dict) else None
        if name == "propose_split":
            value = Decimal(str(percent).strip())
            assert value.is_finite() and 0 <= value <= 100


def _whole_percent(value: Any) -> int | None:
    try:
        number = int(str(value).strip())
    except ValueError:
        return None
    return number if 0 <= number <= 100 else None


@FUZZ
@given(percent=json_values)
@example(percent="1e309")
@example(percent=float("nan"))
@example(percent=float("inf"))
@example(percent=" 42 ")
@example(percent="9" * 5000)
def test_rule_with_bogus_percent(market: Market, percent: Any) -> None:
    app = market.app
    before = db_state(app)
    response = market.post_json(
        "arbitrator", f"/arbitration/{market.scene.disputed}/rule", {"buyer_percent": percent}
    )
    check(response, {200, 400}, f"rule {percent!r}")
    assert (response.status_code == 200) == (_whole_percent(percent) is not None), percent
    if response.status_code != 200:
        refused_changed_nothing(app, before, "rule")


# ------------------------------------------------------------------ sign-in


def _signed(account: LocalAccount, text: str) -> str:
    return account.sign_message(encode_defunct(text=text)).signature.to_0x_hex()


def _fresh_message(user: WebUser, address: str) -> tuple[str, str]:
    data = user.client.get(f"/auth/message?address={address}").get_json()
    return str(data["message"]), str(data["nonce"])


def _signed_in(user: WebUser) -> bool:
    with user.client.session_transaction() as session:
        return "address" in session


@pytest.fixture
def siwe(fuzz_app: Flask, web: Callable[..., WebUser]) -> Callable[[], WebUser]:
    """A fresh anonymous browser for each example."""
    return lambda: web(None)


MUTATIONS: dict[str, Callable[[str, str], str]] = {
    "domain": lambda m, _n: m.replace("localhost wants", "evil.example wants", 1),
    "uri": lambda m, _n: m.replace("URI: http://localhost", "URI: http://evil.example", 1),
    "chain": lambda m, _n: re.sub(r"Chain ID: \d+", "Chain ID: 1", m),
    "nonce": lambda m, n: m.replace(n, "A" * len(n)),
    "address": lambda m, _n: re.sub(r"0x[0-9a-fA-F]{40}", "0x" + "Ab" * 20, m, count=1),
    "expired": lambda m, _n: re.sub(
        r"Expiration Time: \S+", "Expiration Time: 2001-01-01T00:00:00.000Z", m
    ),
    "future": lambda m, _n: re.sub(r"Issued At: \S+", "Issued At: 2999-01-01T00:00:00.000Z", m),
    "truncated": lambda m, _n: m[: len(m) // 2],
    "empty signature line": lambda m, _n: m.replace("\n\n", "\n", 1),
    "extra line": lambda m, _n: m + "\nResources:\n- https://evil.example",
    "statement": lambda m, _n: m.replace("Sign in to", "Send all money to", 1),
    "version": lambda m, _n: m.replace("Version: 1", "Version: 2", 1),
}


#: Parts of the message the server does not compare with what it issued: the signature covers
#: them, so only the address's owner can change them, and the nonce still works only once.
UNCHECKED = {"future", "extra line", "statement"}


@FEW
@given(mutation=st.sampled_from(sorted(MUTATIONS)), signer=st.sampled_from(["buyer", "seller"]))
def test_siwe_tampered_messages(
    siwe: Callable[[], WebUser],
    fuzz_app: Flask,
    roles: Roles,
    keys: dict[str, LocalAccount],
    mutation: str,
    signer: str,
) -> None:
    user = siwe()
    message, nonce = _fresh_message(user, roles.buyer)
    changed = MUTATIONS[mutation](message, nonce)
    assert changed != message, mutation
    signature = _signed(keys[roles.by_name(signer)], changed)
    users = count(fuzz_app, User)
    response = user.post_json("/auth/verify", {"message": changed, "signature": signature})
    if mutation in UNCHECKED and signer == "buyer":
        # The wallet's owner signed the text as changed; nothing the server checks was changed.
        check(response, {200, 400}, mutation)
        return
    check(response, {400}, f"{mutation} signed by {signer}")
    assert not _signed_in(user) and count(fuzz_app, User) == users
    with db_session(fuzz_app) as session:
        row = session.scalar(select(LoginNonce).where(LoginNonce.nonce == nonce))
        assert row is not None and row.used_at is None


@FUZZ
@given(message=st.one_of(nasty_text, json_values), signature=st.one_of(signatures, nasty_text))
@example(message="x" * 5000, signature="0x")
@example(message=None, signature=None)
def test_siwe_garbage(
    siwe: Callable[[], WebUser], fuzz_app: Flask, message: Any, signature: Any
) -> None:
    user = siwe()
    users = count(fuzz_app, User)
    response = user.post_json("/auth/verify", {"message": message, "signature": signature})
    check(response, {400}, f"verify {message!r} {signature!r}")
    assert not _signed_in(user) and count(fuzz_app, User) == users


@FEW
@given(signature=st.one_of(signatures, nasty_text))
def test_siwe_real_message_garbage_signature(
    siwe: Callable[[], WebUser], fuzz_app: Flask, roles: Roles, signature: Any
) -> None:
    user = siwe()
    message, nonce = _fresh_message(user, roles.buyer)
    response = user.post_json("/auth/verify", {"message": message, "signature": signature})
    check(response, {400}, f"signature {signature!r}")
    assert not _signed_in(user)
    with db_session(fuzz_app) as session:
        assert session.scalar(select(LoginNonce.used_at).where(LoginNonce.nonce == nonce)) is None


def test_siwe_replayed_and_expired_nonces(
    fuzz_app: Flask, web: Callable[..., WebUser], roles: Roles, keys: dict[str, LocalAccount]
) -> None:
    account = keys[roles.buyer]
    first = web(None)
    message, nonce = _fresh_message(first, account.address)
    body = {"message": message, "signature": _signed(account, message)}
    assert first.post_json("/auth/verify", body).status_code == 200
    for _ in range(3):
        replay = web(None)
        assert "already used" in error_text(replay.post_json("/auth/verify", body))
        assert not _signed_in(replay)

    expired = web(None)
    message, nonce = _fresh_message(expired, account.address)
    with db_session(fuzz_app) as session:
        session.execute(
            update(LoginNonce)
            .where(LoginNonce.nonce == nonce)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        session.commit()
    response = expired.post_json(
        "/auth/verify", {"message": message, "signature": _signed(account, message)}
    )
    check(response, {400})
    assert "expired" in error_text(response) and not _signed_in(expired)

    # A nonce handed out for one address does not sign in another, even with a valid signature.
    other = web(None)
    message, nonce = _fresh_message(other, roles.buyer)
    forged = message.replace(account.address, keys[roles.seller].address)
    response = other.post_json(
        "/auth/verify", {"message": forged, "signature": _signed(keys[roles.seller], forged)}
    )
    check(response, {400})
    assert not _signed_in(other)


# ------------------------------------------------------------------ public JSON endpoints


@FUZZ
@given(
    tx_hash=st.one_of(nasty_text, st.binary(min_size=32, max_size=32).map(lambda b: "0x" + b.hex()))
)
@example(tx_hash="0x" + "g" * 64)
@example(tx_hash="0x" + "00" * 32)
def test_tx_status_with_bogus_hashes(fuzz_app: Flask, tx_hash: str) -> None:
    response = fuzz_app.test_client().get("/api/tx/" + quote(tx_hash, safe=""))
    check(response, {200, 404}, f"tx {tx_hash!r}")
    data = response.get_json()
    assert isinstance(data, dict)
    if response.status_code == 200:
        assert data["status"] in ("pending", "mined", "failed")


NOT_DEV = "0x" + "12" * 20
rpc_params = st.one_of(
    json_values,
    st.lists(json_values, min_size=1, max_size=3),
    st.lists(
        st.fixed_dictionaries({"from": st.one_of(json_values, st.just(NOT_DEV))}),
        min_size=1,
        max_size=2,
    ),
)


@FUZZ
@given(
    method=st.one_of(
        st.sampled_from(
            ["personal_sign", "eth_sendTransaction", "eth_signTypedData_v4", "eth_accounts"]
        ),
        nasty_text,
    ),
    params=rpc_params,
)
@example(method="eth_sendTransaction", params=["x"])
@example(method="personal_sign", params=["0x00"])
@example(method="eth_signTypedData_v4", params=[{"from": NOT_DEV}])
def test_dev_wallet_rpc_with_bogus_calls(market: Market, method: str, params: Any) -> None:
    """No signer here is a dev account, so every call must be refused before the node."""
    response = market.post_json(
        "anonymous", "/dev-wallet/rpc", {"method": method, "params": params}
    )
    check(response, {400}, f"rpc {method!r} {params!r}")


@FEW
@given(payload=json_values)
@example(payload=[1, 2])
def test_dev_wallet_rpc_with_bodies_that_are_not_objects(market: Market, payload: Any) -> None:
    response = market.post_json("anonymous", "/dev-wallet/rpc", payload)
    check(response, {400}, f"rpc body {payload!r}")


# ------------------------------------------------------------------ pages with query strings

page_args = st.dictionaries(
    st.sampled_from(
        ["q", "category", "currency", "city", "min", "max", "sort", "page", "status", "role"]
    ),
    st.one_of(nasty_text, st.integers(min_value=-(10**40), max_value=10**40).map(str)),
    max_size=6,
)


@FUZZ
@given(path=st.sampled_from(["/", "/trades", "/listings/mine", "/arbitration"]), args=page_args)
@example(path="/trades", args={"page": "99999999999999999999"})
@example(path="/", args={"currency": "ETH", "min": "1e309", "max": "-1"})
def test_pages_with_bogus_query_strings(market: Market, path: str, args: dict[str, str]) -> None:
    role = "arbitrator" if path == "/arbitration" else "buyer"
    page = check(market.get(role, f"{path}?{urlencode(args)}"), {200}, f"{path} {args}")
    for value in args.values():
        shown_escaped(page, value)


# ------------------------------------------------------------------ known bugs, one by one


def test_trades_page_number_beyond_sqlite_integers(market: Market) -> None:
    check(market.get("buyer", "/trades?page=99999999999999999999"), {200})


@pytest.mark.parametrize(
    "params",
    [["not an object"], [["list"]], [42]],
    ids=["string", "list", "number"],
)
def test_dev_wallet_send_transaction_params_must_be_objects(
    market: Market, params: list[Any]
) -> None:
    check(
        market.post_json(
            "anonymous", "/dev-wallet/rpc", {"method": "eth_sendTransaction", "params": params}
        ),
        {400},
    )


def test_dev_wallet_personal_sign_needs_two_params(market: Market) -> None:
    check(
        market.post_json(
            "anonymous", "/dev-wallet/rpc", {"method": "personal_sign", "params": ["0x00"]}
        ),
        {400},
    )


def test_dev_wallet_body_must_be_an_object(market: Market) -> None:
    check(market.post_json("anonymous", "/dev-wallet/rpc", ["eth_sendTransaction"]), {400})


def test_rating_score_of_infinity_is_refused(market: Market) -> None:
    path = f"/trades/{market.scene.done}/rating"
    check(market.post_raw_json("buyer", path, '{"score": 1e309}'), {400})
    assert count(market.app, Rating) == 0


@pytest.mark.parametrize("deadline", ["1e309", "-5", str(2**300)])
def test_buy_permit_deadline_out_of_range_is_refused(market: Market, deadline: str) -> None:
    pk = market.scene.listing_usd
    _free_listings(market.app, pk)
    quoted = json.dumps({"quote": _quote(market.app, pk)})[1:-1]
    raw = "{" + quoted + ', "permit": {"signature": "0x' + "11" * 65 + '", "deadline": '
    raw += deadline + "}}"
    check(market.post_raw_json("buyer", f"/listings/{pk}/buy", raw), {400})
    with db_session(market.app) as session:
        listing = session.get(Listing, pk)
        assert listing is not None and listing.status == ListingStatus.ACTIVE.value
        assert listing.reserved_by is None
    assert count_open_holds(market.app) == 0


@pytest.mark.parametrize(
    "path,payload",
    [
        ("/listings/new", "[1, 2]"),
        ("/listings/new", '"a string"'),
        ("/listings/new", '{"title": "Bike", "price": "1", "quantity": {"n": 1}}'),
        ("/listings/new", '{"title": {"t": 1}, "price": "1", "quantity": 1, "category": "bikes"}'),
        ("/me", '{"display_name": {"a": 1}}'),
        ("/me", '{"languages": {"English": 1}}'),
        ("/trades/{done}/rating", '{"score": 5, "comment": true}'),
        ("/trades/{done}/rating", '{"score": 5, "comment": {"text": "ok"}}'),
        ("/trades/{done}/rating", '{"score": {"value": 5}}'),
    ],
)
def test_form_endpoints_refuse_json_of_the_wrong_shape(
    market: Market, path: str, payload: str
) -> None:
    """Flask-WTF forms also read JSON bodies; values that are not text must be refused."""
    before = db_state(market.app)
    check(market.post_raw_json("buyer", path.format(**market.scene.values()), payload), {400})
    refused_changed_nothing(market.app, before)


def test_a_message_body_must_be_text(market: Market) -> None:
    pk = market.scene.open
    messages = count(market.app, Message)
    for body in (["a", "b"], {"text": "hi"}):
        check(
            market.post_json("buyer", f"/trades/{pk}/messages", {"body": body}), {400}, repr(body)
        )
    assert count(market.app, Message) == messages
