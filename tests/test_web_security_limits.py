"""Write limits: per-user quotas counted in the database (messages, evidence, listings, photo
bytes), the per-user request rate limit on every write, and the client address behind a proxy.

A refused write answers 429 with a message that says what the limit is (a JSON ``error`` or
the page with the message), never a 500, and changes nothing that was stored before.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from PIL import Image
from sqlalchemy import func, select

from escrow.chain import Chain
from escrow.client import EscrowClient
from escrow.db.models import EvidenceFile, Listing, Message, User
from escrow.deploy import Deployment
from helpers import Roles
from web_fixtures import (
    WebUser,
    add_listing,
    app_settings,
    db_session,
    funded_trade,
    listing_form,
)
from webapp import create_app

LISTING = listing_form()


def count(app: Flask, model: Any, *where: Any) -> int:
    with db_session(app) as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def message(user: WebUser, trade_pk: int, body: str) -> Any:
    return user.post_json(f"/trades/{trade_pk}/messages", {"body": body})


def evidence(user: WebUser, trade_pk: int, data: bytes, name: str = "note.txt") -> Any:
    return user.client.post(
        f"/trades/{trade_pk}/evidence",
        data={"file": (io.BytesIO(data), name), "note": ""},
        headers={"X-CSRFToken": user.csrf(), "Accept": "application/json"},
        content_type="multipart/form-data",
    )


def evidence_files(app: Flask) -> list[Path]:
    folder = Path(app.config["EVIDENCE_DIR"])
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def backdate(app: Flask, model: Any, age: timedelta) -> None:
    """Moves every row of ``model`` ``age`` into the past."""
    with db_session(app) as session:
        for row in session.scalars(select(model)):
            row.created_at = datetime.now(UTC) - age
        session.commit()


# ---------------------------------------------------------------------------- messages


def test_messages_are_limited_per_user_and_minute(
    app: Flask, web: Any, roles: Roles, client: EscrowClient
) -> None:
    """Regression: 150 messages in a row were all accepted."""
    pk = funded_trade(app, client, roles)
    buyer = web("buyer", roles)
    limit = app.config["MESSAGES_PER_MINUTE"]
    statuses = [message(buyer, pk, f"Message {n}").status_code for n in range(limit + 5)]
    assert statuses == [200] * limit + [429] * 5
    refused = message(buyer, pk, "One more")
    assert f"You sent {limit} messages in the last minute" in refused.get_json()["error"]
    # The form (no JavaScript) gets the page with the same message.
    page = buyer.post_form(f"/trades/{pk}/messages", {"body": "From the form"})
    assert page.status_code == 429 and "in the last minute" in page.get_data(as_text=True)
    # Nothing stored before was lost; the other side of the trade can still write.
    assert count(app, Message) == limit
    assert message(web("seller", roles), pk, "I am here").status_code == 200


def test_messages_are_limited_per_hour(
    app: Flask, web: Any, roles: Roles, client: EscrowClient
) -> None:
    pk = funded_trade(app, client, roles)
    buyer = web("buyer", roles)
    app.config["MESSAGES_PER_HOUR"] = 4
    for n in range(4):
        assert message(buyer, pk, f"Earlier {n}").status_code == 200
    backdate(app, Message, timedelta(minutes=30))  # outside the minute, inside the hour
    refused = message(buyer, pk, "Too many")
    assert refused.status_code == 429
    assert "in the last hour" in refused.get_json()["error"]
    backdate(app, Message, timedelta(minutes=61))
    assert message(buyer, pk, "An hour later").status_code == 200


# ---------------------------------------------------------------------------- evidence


def test_evidence_files_per_trade_and_uploader(
    app: Flask, web: Any, roles: Roles, client: EscrowClient
) -> None:
    pk = funded_trade(app, client, roles)
    buyer = web("buyer", roles)
    app.config["EVIDENCE_FILES_PER_TRADE"] = 2
    assert evidence(buyer, pk, b"First file\n").status_code == 200
    assert evidence(buyer, pk, b"Second file\n").status_code == 200
    stored = evidence_files(app)
    refused = evidence(buyer, pk, b"Third file\n")
    assert refused.status_code == 429
    assert "already added 2 evidence files to this trade" in refused.get_json()["error"]
    assert evidence_files(app) == stored and count(app, EvidenceFile) == 2
    # The same file again takes no room; the other side has room of its own.
    assert evidence(buyer, pk, b"First file\n").status_code == 200
    assert evidence(web("seller", roles), pk, b"Seller's file\n").status_code == 200


def test_evidence_bytes_per_trade(app: Flask, web: Any, roles: Roles, client: EscrowClient) -> None:
    pk = funded_trade(app, client, roles)
    buyer = web("buyer", roles)
    app.config["EVIDENCE_BYTES_PER_TRADE"] = 100
    assert evidence(buyer, pk, b"a" * 80).status_code == 200
    refused = evidence(buyer, pk, b"b" * 30)
    assert refused.status_code == 429 and "Add a smaller file" in refused.get_json()["error"]
    assert evidence(buyer, pk, b"c" * 20).status_code == 200
    assert count(app, EvidenceFile) == 2


def test_evidence_per_user_and_day(
    app: Flask, web: Any, roles: Roles, client: EscrowClient
) -> None:
    first, second = funded_trade(app, client, roles), funded_trade(app, client, roles)
    buyer = web("buyer", roles)
    app.config["EVIDENCE_FILES_PER_USER_DAY"] = 2
    assert evidence(buyer, first, b"One\n").status_code == 200
    assert evidence(buyer, second, b"Two\n").status_code == 200
    refused = evidence(buyer, second, b"Three\n")
    assert refused.status_code == 429 and "last 24 hours" in refused.get_json()["error"]
    backdate(app, EvidenceFile, timedelta(hours=25))
    assert evidence(buyer, second, b"Three\n").status_code == 200

    app.config["EVIDENCE_BYTES_PER_USER_DAY"] = 50
    big = evidence(buyer, first, b"x" * 60)
    assert big.status_code == 429 and "last 24 hours" in big.get_json()["error"]


# ---------------------------------------------------------------------------- listings


def create(user: WebUser, **fields: Any) -> Any:
    return user.post_form("/listings/new", {**LISTING, **fields})


def test_listings_per_seller_and_day(app: Flask, web: Any, roles: Roles) -> None:
    seller = web("seller", roles)
    app.config["LISTINGS_PER_DAY"] = 3
    for n in range(3):
        assert create(seller, title=f"Listing {n}").status_code == 302
    refused = create(seller, title="Fourth listing")
    page = refused.get_data(as_text=True)
    assert refused.status_code == 429
    assert "You created 3 listings in the last 24 hours" in page
    assert 'value="Fourth listing"' in page  # what was typed is still there
    assert count(app, Listing) == 3
    # Another seller is not affected, and yesterday's listings do not count.
    assert create(web("buyer", roles)).status_code == 302
    backdate(app, Listing, timedelta(hours=25))
    assert create(seller, title="Fourth listing").status_code == 302


def test_listings_on_the_market_per_seller(app: Flask, web: Any, roles: Roles) -> None:
    app.config["ACTIVE_LISTINGS_PER_SELLER"] = 2
    for title in ("One", "Two"):
        add_listing(app, roles.seller, title=title)
    seller = web("seller", roles)
    refused = create(seller)
    assert refused.status_code == 429
    assert "You have 2 listings on the market" in refused.get_data(as_text=True)
    with db_session(app) as session:  # a sold one leaves room
        session.scalars(select(Listing)).first().status = "sold"
        session.commit()
    assert create(seller).status_code == 302


def jpeg(seed: int, size: tuple[int, int] = (64, 48)) -> bytes:
    out = io.BytesIO()
    Image.effect_noise(size, 60 + seed).convert("RGB").save(out, "JPEG", quality=95)
    return out.getvalue()


def test_photo_bytes_per_seller(app: Flask, web: Any, roles: Roles) -> None:
    seller = web("seller", roles)
    photo = jpeg(1)
    assert (
        seller.post_form(
            "/listings/new",
            {**LISTING, "photos": [(io.BytesIO(photo), "a.jpg")]},
            content_type="multipart/form-data",
        ).status_code
        == 302
    )
    (name,) = next(iter(listing_photos(app)))
    used = (Path(app.config["UPLOAD_DIR"]) / name).stat().st_size
    app.config["PHOTO_BYTES_PER_SELLER"] = used + used // 2
    refused = seller.post_form(
        "/listings/new",
        {**LISTING, "photos": [(io.BytesIO(jpeg(2)), "b.jpg")]},
        content_type="multipart/form-data",
    )
    assert refused.status_code == 400
    assert "allowed per seller" in refused.get_data(as_text=True)
    assert count(app, Listing) == 1 and len(list(Path(app.config["UPLOAD_DIR"]).iterdir())) == 1
    # Replacing the photo frees its room first.
    with db_session(app) as session:
        listing_id = session.scalars(select(Listing.id)).one()
    replaced = seller.post_form(
        f"/listings/{listing_id}/edit",
        {**LISTING, "remove_photo": name, "photos": [(io.BytesIO(jpeg(2)), "b.jpg")]},
        content_type="multipart/form-data",
    )
    assert replaced.status_code == 302
    (photos,) = listing_photos(app)
    assert len(photos) == 1 and photos[0] != name


def listing_photos(app: Flask) -> list[list[str]]:
    with db_session(app) as session:
        return [list(p) for p in session.scalars(select(Listing.photos).order_by(Listing.id))]


# ---------------------------------------------------------------------------- request rate


def test_every_write_is_rate_limited_per_user(
    app: Flask, web: Any, roles: Roles, client: EscrowClient
) -> None:
    pk = funded_trade(app, client, roles)
    app.config["WRITE_RATE_LIMIT"] = "3 per minute"
    buyer = web("buyer", roles)
    statuses = [message(buyer, pk, f"Hello {n}").status_code for n in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = buyer.post_form("/listings/new", LISTING)
    assert refused.status_code == 429
    assert "Too many attempts" in refused.get_data(as_text=True)
    assert count(app, Listing) == 0
    # Reading is not limited, and another user has a count of their own.
    assert buyer.client.get(f"/trades/{pk}").status_code == 200
    assert message(web("seller", roles), pk, "Hi").status_code == 200


def make_app(
    chain: Chain, deployment: Deployment, web_db_url: str, tmp_path: Path, **settings: Any
) -> Flask:
    return create_app(
        app_settings(
            web_db_url, tmp_path, chain, deployment, WRITE_RATE_LIMIT="2 per minute", **settings
        )
    )


@pytest.mark.parametrize("proxies", [0, 1])
def test_client_address_behind_a_proxy(
    chain: Chain,
    deployment: Deployment,
    web_db_url: str,
    tmp_path: Path,
    proxies: int,
) -> None:
    """With PROXY_COUNT proxies in front, each client is counted by the address the proxy
    saw; without, X-Forwarded-For is ignored, so a client cannot pick a fresh address."""
    app = make_app(chain, deployment, web_db_url, tmp_path, PROXY_COUNT=proxies)
    try:
        visitor = WebUser(app.test_client(), None)
        token = visitor.csrf()

        def sign_in_attempt(address: str) -> int:
            response = visitor.client.post(
                "/auth/verify",
                json={"message": "example.com wants you to sign in", "signature": "0x00"},
                headers={
                    "X-CSRFToken": token,
                    "Accept": "application/json",
                    "X-Forwarded-For": address,
                },
            )
            assert response.get_json()["error"]
            return int(response.status_code)

        assert [sign_in_attempt("203.0.113.7") for _ in range(3)] == [400, 400, 429]
        other_client = sign_in_attempt("198.51.100.9")
        assert other_client == (400 if proxies else 429)
    finally:
        app.extensions["escrow_engine"].dispose()


def test_the_quota_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from webapp import config

    monkeypatch.setenv("ESCROW_LISTINGS_PER_DAY", "50")
    monkeypatch.setenv("ESCROW_PROXY_COUNT", "2")
    settings = config.limits_and_headers()
    assert settings["LISTINGS_PER_DAY"] == 50 and settings["PROXY_COUNT"] == 2
    monkeypatch.setenv("ESCROW_MESSAGES_PER_MINUTE", "-1")
    with pytest.raises(ValueError, match="must not be negative"):
        config.limits_and_headers()


def test_users_are_counted_apart(app: Flask, web: Any, roles: Roles) -> None:
    """The quotas count by wallet address, whoever else writes at the same time."""
    app.config["LISTINGS_PER_DAY"] = 1
    assert create(web("seller", roles)).status_code == 302
    assert create(web("buyer", roles)).status_code == 302
    assert create(web("seller", roles)).status_code == 429
    with db_session(app) as session:
        sellers = session.scalars(select(User.address).join(Listing, Listing.seller_id == User.id))
        assert sorted(sellers) == sorted([roles.seller.lower(), roles.buyer.lower()])
