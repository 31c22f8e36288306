"""A market scene for web authorisation and bad-input tests, and helpers to compare state.

The scene has a listing of the seller's for every kind of request (view, buy, edit, pause,
delete, a withdrawn one, a dollar one), a photo, one finished, one open and one disputed
trade, and an evidence file on the disputed trade, so that every route has a real target.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import select

from escrow.chain import Chain
from escrow.client import EscrowClient
from escrow.db.models import (
    Base,
    Conversation,
    ConversationMessage,
    Listing,
    ListingStatus,
    Trade,
    User,
)
from helpers import USD, Roles
from web_fixtures import WebUser, add_hold, add_listing, db_session, funded_trade, index_now

ROLES: tuple[str | None, ...] = (None, "buyer", "seller", "arbitrator", "stranger")
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(64))
PHOTO_NAME = "0123456789abcdef0123456789abcdef.png"
NOWHERE = 999_999
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|File \"/|werkzeug\.exceptions")


@dataclass
class Scene:
    listing: int  # active, for viewing, editing (GET) and buying
    listing_edit: int
    listing_pause: int
    listing_delete: int
    listing_withdrawn: int
    listing_usd: int
    hold_release: int  # the buyer's checkout holds
    hold_paid: int
    done: int  # trade primary keys
    open: int
    disputed: int
    evidence: int
    tx_hash: str
    photo: str = PHOTO_NAME
    conversation: int = 0  # the buyer's questions to the seller about ``listing``

    def values(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _onchain_id(app: Flask, pk: int) -> int:
    with db_session(app) as session:
        trade = session.get(Trade, pk)
        assert trade is not None
        return int(trade.onchain_id)


def build_scene(
    app: Flask, client: EscrowClient, chain: Chain, roles: Roles, uploader: WebUser
) -> Scene:
    """Builds the scene; ``uploader`` (the buyer, signed in) adds the evidence file."""
    ids = {
        name: add_listing(app, roles.seller, title=f"Listing {name}")[0]
        for name in ("view", "edit", "pause", "delete", "withdrawn")
    }
    usd, _ = add_listing(app, roles.seller, price=25 * USD, currency="USD", title="Lamp")
    holds = [
        add_hold(app, add_listing(app, roles.seller, title=f"Held {n}")[0], roles.buyer)
        for n in (1, 2)
    ]
    uploads = Path(app.config["UPLOAD_DIR"])
    uploads.mkdir(parents=True, exist_ok=True)
    (uploads / PHOTO_NAME).write_bytes(PNG)
    with db_session(app) as session:
        session.get(Listing, ids["view"]).photos = [PHOTO_NAME]
        session.get(Listing, ids["withdrawn"]).status = ListingStatus.WITHDRAWN.value
        session.commit()

    done = funded_trade(app, client, roles)
    onchain = _onchain_id(app, done)
    terms, _ = client.terms_of(onchain)
    client.confirm_receipt(onchain, terms, sender=roles.buyer)
    open_pk = funded_trade(app, client, roles)
    disputed = funded_trade(app, client, roles)
    onchain = _onchain_id(app, disputed)
    terms, _ = client.terms_of(onchain)
    result = client.open_dispute(onchain, terms, sender=roles.buyer)
    index_now(app)
    evidence = uploader.client.post(
        f"/trades/{disputed}/evidence",
        data={"file": (io.BytesIO(PNG), "box.png"), "note": "Crushed box"},
        headers={"X-CSRFToken": uploader.csrf(), "Accept": "application/json"},
        content_type="multipart/form-data",
    )
    assert evidence.status_code == 200, evidence.get_data(as_text=True)
    with db_session(app) as session:
        statuses = {pk: session.get(Trade, pk).status for pk in (done, open_pk, disputed)}
        conversation = _conversation(session, ids["view"], roles.buyer)
    assert statuses == {done: "Released", open_pk: "Funded", disputed: "Disputed"}, statuses
    return Scene(
        listing=ids["view"],
        listing_edit=ids["edit"],
        listing_pause=ids["pause"],
        listing_delete=ids["delete"],
        listing_withdrawn=ids["withdrawn"],
        listing_usd=usd,
        hold_release=holds[0],
        hold_paid=holds[1],
        done=done,
        open=open_pk,
        disputed=disputed,
        evidence=int(evidence.get_json()["evidence_id"]),
        tx_hash=result.tx_hash if result.tx_hash.startswith("0x") else "0x" + result.tx_hash,
        conversation=conversation,
    )


def _conversation(session: Any, listing_id: int, buyer: str) -> int:
    """The buyer's conversation with the seller about a listing, with one message."""
    listing = session.get(Listing, listing_id)
    user = session.scalar(select(User).where(User.address == buyer.lower()))
    if user is None:
        user = User(address=buyer.lower(), languages=[])
        session.add(user)
        session.flush()
    conversation = Conversation(
        listing_id=listing.id,
        listing_title=listing.title,
        buyer_id=user.id,
        seller_id=listing.seller_id,
    )
    session.add(conversation)
    session.flush()
    session.add(
        ConversationMessage(conversation_id=conversation.id, sender_id=user.id, body="Still there?")
    )
    session.commit()
    return int(conversation.id)


# ------------------------------------------------------------------ state to compare


def db_state(
    app: Flask, ignore: tuple[str, ...] = (), tables_ignored: tuple[str, ...] = ()
) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (but the ``ignore`` columns and ``tables_ignored``), so a
    refused request can be shown to have changed nothing. The request rate-limit counters
    (``rate_limits``) are left out: every request counts there, refused or not."""
    state: dict[str, list[tuple[Any, ...]]] = {}
    with db_session(app) as session:
        for table in Base.metadata.sorted_tables:
            if table.name in tables_ignored or table.name == "rate_limits":
                continue
            columns = [c for c in table.columns if c.name not in ignore]
            rows = session.execute(select(*columns)).all()
            state[table.name] = sorted(tuple(map(repr, row)) for row in rows)
    return state


def files_state(app: Flask) -> set[str]:
    """Every file under the data folder (uploads, evidence), relative to it."""
    root = Path(app.config["DATA_DIR"])
    return {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file()
        and not p.name.endswith(("sqlite3", "sqlite3-journal", "sqlite3-wal", "sqlite3-shm"))
    }


def state_diff(
    before: dict[str, list[tuple[Any, ...]]], after: dict[str, list[tuple[Any, ...]]]
) -> list[str]:
    return [name for name in before if before[name] != after.get(name)]


def assert_no_trace(body: str) -> None:
    assert not TRACEBACK.search(body), body[:2000]
