"""Evidence files (type by content, size, access, hash committed on chain) and trade messages."""

from __future__ import annotations

import hashlib
import io
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from escrow.chain import Chain
from escrow.client import EscrowClient
from escrow.db.models import EvidenceFile, Message, Trade, TradeEvent
from helpers import Roles
from web_fixtures import WebUser, db_session, funded_trade, index_now, send
from webapp.disputes import sniff_type

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(64))
PDF = b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n"


def upload(
    user: WebUser,
    trade_pk: int,
    data: bytes,
    name: str = "photo.png",
    note: str = "Box was crushed",
) -> Any:
    return user.client.post(
        f"/trades/{trade_pk}/evidence",
        data={"file": (io.BytesIO(data), name), "note": note, "csrf_token": user.csrf()},
        headers={"X-CSRFToken": user.csrf(), "Accept": "application/json"},
        content_type="multipart/form-data",
    )


@pytest.mark.parametrize(
    "data,expected",
    [
        (PNG, "image/png"),
        (b"\xff\xd8\xff\xe0rest", "image/jpeg"),
        (b"GIF89a...", "image/gif"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
        (PDF, "application/pdf"),
        ("Tracking: RR123 — доставлено\n".encode(), "text/plain"),
        (b"PK\x03\x04zip", None),
        (b"MZ\x90\x00\x03", None),
        (b"\xfe\xff\x00binary", None),
        (b"<html>\x00</html>", None),
    ],
)
def test_type_is_taken_from_the_content(data: bytes, expected: str | None) -> None:
    assert sniff_type(data) == expected


def test_evidence_hash_is_committed_on_chain(
    app: Flask, web: Any, roles: Roles, client: EscrowClient, chain: Chain
) -> None:
    pk = funded_trade(app, client, roles)
    buyer = web("buyer", roles)
    response = upload(buyer, pk, PNG)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    sha = hashlib.sha256(PNG).hexdigest()
    assert body["sha256"] == sha
    assert body["uri"] == f"http://localhost/evidence/{body['evidence_id']}"
    send(chain, body["tx"])
    index_now(app)
    with db_session(app) as session:
        row = session.get(EvidenceFile, body["evidence_id"])
        assert row.sha256 == sha and row.content_type == "image/png"
        assert row.onchain_tx_hash is not None and row.onchain_uri == body["uri"]
        event = session.scalar(select(TradeEvent).where(TradeEvent.event == "EvidenceSubmitted"))
        assert event.args["contentHash"] == "0x" + sha
        note = session.scalar(select(Message).where(Message.evidence_file_id == row.id))
        assert note.body == "Box was crushed"
    page = web("seller", roles).client.get(f"/trades/{pk}").get_data(as_text=True)
    assert "photo.png" in page and "recorded" in page and "Box was crushed" in page
    # The same file again reuses its row (the hash is unique per trade).
    again = upload(buyer, pk, PNG, name="again.png")
    assert again.status_code == 200 and again.get_json()["evidence_id"] == body["evidence_id"]


def test_evidence_download_access(app: Flask, web: Any, roles: Roles, client: EscrowClient) -> None:
    pk = funded_trade(app, client, roles)
    evidence_id = upload(web("seller", roles), pk, PDF, name="../../receipt.pdf").get_json()[
        "evidence_id"
    ]
    for role in ("buyer", "seller", "arbitrator"):
        response = web(role, roles).client.get(f"/evidence/{evidence_id}")
        assert response.status_code == 200, role
        assert response.data == PDF
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        disposition = response.headers["Content-Disposition"]
        assert disposition.startswith("attachment") and "receipt.pdf" in disposition
        assert ".." not in disposition
        assert response.mimetype == "application/pdf"
        response.close()
    assert web("stranger", roles).client.get(f"/evidence/{evidence_id}").status_code == 403
    assert web(None).client.get(f"/evidence/{evidence_id}").status_code == 302
    assert web("buyer", roles).client.get("/evidence/999999").status_code == 404


def test_evidence_refusals(app: Flask, web: Any, roles: Roles, client: EscrowClient) -> None:
    pk = funded_trade(app, client, roles)
    buyer = web("buyer", roles)
    wrong = upload(buyer, pk, b"PK\x03\x04" + b"\x00" * 100, name="photo.png")
    assert wrong.status_code == 400 and "not accepted" in wrong.get_json()["error"]
    app.config["MAX_EVIDENCE_BYTES"] = 1024
    big = upload(buyer, pk, PNG + b"\x00" * 2000)
    assert big.status_code == 413 and "too large" in big.get_json()["error"]
    assert upload(buyer, pk, b"").status_code == 400
    missing = buyer.client.post(
        f"/trades/{pk}/evidence",
        data={"csrf_token": buyer.csrf()},
        headers={"Accept": "application/json"},
    )
    assert missing.status_code == 400 and "Choose a file" in missing.get_json()["error"]
    assert upload(buyer, pk, PNG, note="x" * 2001).status_code == 400
    assert upload(web("stranger", roles), pk, PNG).status_code == 403
    assert upload(buyer, 999999, PNG).status_code == 404
    anonymous = web(None)
    response = anonymous.client.post(
        f"/trades/{pk}/evidence",
        headers={"X-CSRFToken": anonymous.csrf(), "Accept": "application/json"},
    )
    assert response.status_code == 401
    with db_session(app) as session:
        assert session.scalar(select(EvidenceFile)) is None


def test_no_evidence_once_the_trade_is_finished(
    app: Flask, web: Any, roles: Roles, client: EscrowClient
) -> None:
    pk = funded_trade(app, client, roles)
    with db_session(app) as session:
        onchain_id = session.get(Trade, pk).onchain_id
    terms, _ = client.terms_of(onchain_id)
    client.confirm_receipt(onchain_id, terms, sender=roles.buyer)
    index_now(app)
    assert upload(web("buyer", roles), pk, PNG).status_code == 409


def test_messages_by_role(app: Flask, web: Any, roles: Roles, client: EscrowClient) -> None:
    pk = funded_trade(app, client, roles)
    buyer, arbitrator = web("buyer", roles), web("arbitrator", roles)
    sent = buyer.post_form(f"/trades/{pk}/messages", {"body": "When will you ship?"})
    assert sent.status_code == 302 and sent.headers["Location"].endswith(f"/trades/{pk}#messages")
    seller = web("seller", roles)
    assert seller.post_form(f"/trades/{pk}/messages", {"body": "Tomorrow"}).status_code == 302
    page = seller.client.get(f"/trades/{pk}").get_data(as_text=True)
    assert "When will you ship?" in page and "Tomorrow" in page
    # The arbitrator reads along but joins only once there is a dispute.
    assert arbitrator.post_form(f"/trades/{pk}/messages", {"body": "Hello"}).status_code == 403
    assert (
        web("stranger", roles).post_form(f"/trades/{pk}/messages", {"body": "Hi"}).status_code
        == 403
    )
    assert web(None).post_form(f"/trades/{pk}/messages", {"body": "Hi"}).status_code == 302
    assert buyer.post_form(f"/trades/{pk}/messages", {"body": "   "}).status_code == 400
    assert buyer.post_form(f"/trades/{pk}/messages", {"body": "x" * 2001}).status_code == 400
    assert buyer.post_form("/trades/999999/messages", {"body": "Hi"}).status_code == 404
    no_csrf = buyer.client.post(f"/trades/{pk}/messages", data={"body": "Hi"})
    assert no_csrf.status_code == 400

    with db_session(app) as session:
        onchain_id = session.get(Trade, pk).onchain_id
    terms, _ = client.terms_of(onchain_id)
    client.open_dispute(onchain_id, terms, sender=roles.seller)
    index_now(app)
    joined = arbitrator.post_json(f"/trades/{pk}/messages", {"body": "Please send photos."})
    assert joined.status_code == 200
    assert "Please send photos." in buyer.client.get(f"/trades/{pk}").get_data(as_text=True)


def test_trade_messages_go_through_the_phishing_guard(
    app: Flask, web: Any, roles: Roles, client: EscrowClient
) -> None:
    """After payment the scam moves to the trade's own messages ("pay the delivery here",
    "send your card for the refund"): the reader sees those parts masked, with a warning, and
    the arbitrator's case page too; plain messages read as written."""
    pk = funded_trade(app, client, roles)
    seller = web("seller", roles)
    scam = "Оплатите доставку тут: https://olx-kz.delivery-pay.com/pay и пришлите номер карты"
    assert seller.post_form(f"/trades/{pk}/messages", {"body": scam}).status_code == 302
    assert seller.post_form(f"/trades/{pk}/messages", {"body": "Shipped today"}).status_code == 302
    page = web("buyer", roles).client.get(f"/trades/{pk}").get_data(as_text=True)
    assert "phishing-warning" in page and 'class="masked"' in page
    assert '<a href="https://olx-kz' not in page and "Shipped today" in page
    assert "js/messages.js" in page
    with db_session(app) as session:
        stored = session.scalars(select(Message.body).where(Message.trade_id == pk)).all()
    assert scam in stored, "the message is kept as written; only its display is guarded"


def test_a_message_cannot_pose_as_the_dispute_statement(
    app: Flask,
    web: Any,
    roles: Roles,
    client: EscrowClient,
) -> None:
    pk = funded_trade(app, client, roles)
    seller = web("seller", roles)
    seller.post_form(f"/trades/{pk}/messages", {"body": "[Dispute statement] I shipped it"})
    with db_session(app) as session:
        bodies = session.scalars(select(Message.body).where(Message.trade_id == pk)).all()
    assert bodies == ["I shipped it"]
    assert seller.post_json(f"/trades/{pk}/statement", {"tx_hash": "0x"}).status_code == 409


def test_a_detached_evidence_file_is_kept_but_not_served(
    app: Flask, web: Any, roles: Roles, client: EscrowClient
) -> None:
    """A reorganisation that undoes the trade detaches its files (the indexer reattaches them
    when the trade reappears); meanwhile nobody is served the file and nothing fails."""
    pk = funded_trade(app, client, roles)
    evidence_id = upload(web("seller", roles), pk, PDF).get_json()["evidence_id"]
    with db_session(app) as session:
        session.get(EvidenceFile, evidence_id).trade_id = None
        session.commit()
    for role in ("buyer", "seller", "stranger"):
        response = web(role, roles).client.get(f"/evidence/{evidence_id}")
        assert response.status_code == 403, role
