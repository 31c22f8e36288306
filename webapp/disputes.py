"""Disputes: evidence files (hash committed on chain), the trade's messages, the opener's statement.

An evidence file is stored under its sha256 and its hash goes on chain with ``submitEvidence``,
so everyone can later check that the file the arbitrator saw is the one that was submitted.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    jsonify,
    redirect,
    request,
    send_file,
    url_for,
)
from flask_babel import format_number
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from werkzeug.utils import secure_filename

from escrow.db.evidence import evidence_path, store_evidence
from escrow.db.models import EvidenceFile, Message, Trade, TradeStatus
from webapp import db
from webapp.auth import current_address, login_required, wants_json
from webapp.errors import render_error
from webapp.quotas import evidence_refusal, message_refusal
from webapp.security_headers import FILE_POLICY
from webapp.trade_rules import (
    DISPUTE_STATEMENT_MARK,
    OPEN_STATUSES,
    client_of,
    json_body,
    load_trade,
    note_statement_sent,
    prepare_for,
    role_of,
    terms_of,
)

bp = Blueprint("disputes", __name__)

MAX_MESSAGE_CHARS = 2000
MAX_NOTE_CHARS = 2000
EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "application/pdf": ".pdf",
    "text/plain": ".txt",
}


def sniff_type(data: bytes) -> str | None:
    """The content type from the file's first bytes, or None if it is not one we accept.

    The browser's claimed type and the file name are ignored: only the content counts.
    """
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if any(ord(c) < 32 and c not in "\t\n\r\f" for c in text):
        return None
    return "text/plain"


def _display_name(filename: str | None, content_type: str) -> str:
    stem = secure_filename(filename or "")[:200]
    extension = EXTENSIONS[content_type]
    if not stem:
        return "evidence" + extension
    return stem if stem.lower().endswith(extension) else stem + extension


@bp.post("/trades/<int:trade_pk>/evidence")
@login_required
def upload(trade_pk: int) -> Any:
    """Stores a file for the trade and returns the ``submitEvidence`` transaction for its hash."""
    trade, role = load_trade(trade_pk)
    me = current_address()
    assert me is not None
    if trade.status not in OPEN_STATUSES:
        return render_error(409, _("The trade is finished; evidence can no longer be added."))
    if not may_post(trade, role):
        return render_error(403, ARBITRATOR_WAITS)
    upload_file = request.files.get("file")
    if upload_file is None or not upload_file.filename:
        return render_error(
            400, _("Choose a file: an image (JPEG, PNG, GIF or WebP), a PDF or a plain-text file.")
        )
    note = (request.form.get("note") or "").strip()
    if len(note) > MAX_NOTE_CHARS:
        return render_error(
            400,
            _(
                "The note is too long (at most %(max)s characters).",
                max=format_number(MAX_NOTE_CHARS),
            ),
        )
    limit = int(current_app.config["MAX_EVIDENCE_BYTES"])
    data = upload_file.stream.read(limit + 1)
    if len(data) > limit:
        return render_error(
            413, _("The file is too large: at most %(mb)d MB.", mb=limit // (1024 * 1024))
        )
    if not data:
        return render_error(400, _("The file is empty."))
    content_type = sniff_type(data)
    if content_type is None:
        return render_error(
            400,
            _(
                "That file type is not accepted. Upload an image (JPEG, PNG, GIF or WebP), a PDF "
                "or a plain-text file."
            ),
        )

    session_db = db.session()
    row = session_db.scalar(
        select(EvidenceFile).where(
            EvidenceFile.trade_id == trade.id,
            EvidenceFile.sha256 == hashlib.sha256(data).hexdigest(),
        )
    )
    if row is None:  # the same file again takes no more room
        refusal = evidence_refusal(session_db, trade.id, me, len(data))
        if refusal:
            return render_error(429, refusal)
    stored = store_evidence(data, root=Path(current_app.config["EVIDENCE_DIR"]), max_bytes=limit)
    if row is None:
        row = EvidenceFile(
            trade_id=trade.id,
            uploaded_by=me,
            original_name=_display_name(upload_file.filename, content_type),
            content_type=content_type,
            size_bytes=stored.size_bytes,
            sha256=stored.sha256,
            storage_path=stored.storage_path,
        )
        session_db.add(row)
        session_db.flush()
        session_db.add(
            Message(
                trade_id=trade.id,
                sender=me,
                evidence_file_id=row.id,
                body=note or f"Added evidence: {row.original_name}",
            )
        )
    session_db.commit()
    uri = url_for("disputes.download", evidence_id=row.id, _external=True)
    call = client_of(trade).calls.submit_evidence(
        int(trade.onchain_id), terms_of(trade), uri, bytes.fromhex(stored.sha256)
    )
    tx = prepare_for(trade, call, me)
    return jsonify(
        tx=tx,
        evidence_id=row.id,
        sha256=stored.sha256,
        uri=uri,
        redirect=url_for("trades.show", trade_pk=trade.id) + "#evidence",
    )


@bp.get("/evidence/<int:evidence_id>")
@login_required
def download(evidence_id: int) -> Any:
    session_db = db.session()
    row = session_db.get(EvidenceFile, evidence_id)
    if row is None:
        abort(404)
    # A file whose trade was undone by a reorganisation is kept detached until it reappears.
    trade = session_db.get(Trade, row.trade_id) if row.trade_id is not None else None
    if trade is None or role_of(trade, current_address()) is None:
        abort(
            403,
            _("Only the buyer, the seller and the arbitrator of this trade can see its evidence."),
        )
    try:
        path = evidence_path(row.storage_path, Path(current_app.config["EVIDENCE_DIR"]))
    except ValueError:
        abort(404)
    if not path.is_file():
        abort(404, _("The file is missing from the evidence store."))
    response = send_file(
        path,
        mimetype=row.content_type,
        # Images open in the browser; a PDF or a text file is downloaded, never shown as a page.
        as_attachment=not row.content_type.startswith("image/"),
        download_name=row.original_name,
        max_age=0,
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = FILE_POLICY
    response.headers["Cache-Control"] = "private, no-store"
    return response


# ------------------------------------------------------------------ messages


ARBITRATOR_WAITS = _l("The arbitrator joins the conversation once a dispute is opened.")


def may_post(trade: Trade, role: str) -> bool:
    """Who may add messages and evidence files to a trade: its buyer and seller, and its
    arbitrator once a dispute is opened."""
    if role in ("buyer", "seller"):
        return True
    return role == "arbitrator" and (
        trade.dispute is not None or trade.status == TradeStatus.DISPUTED.value
    )


def _message_size() -> str:
    return _("Write a message of 1 to %(max)s characters.", max=format_number(MAX_MESSAGE_CHARS))


@bp.post("/trades/<int:trade_pk>/messages")
@login_required
def post_message(trade_pk: int) -> Any:
    trade, role = load_trade(trade_pk)
    if not may_post(trade, role):
        return render_error(403, ARBITRATOR_WAITS)
    source = request.form if request.form else json_body()
    raw = source.get("body")
    if not isinstance(raw, str):
        return render_error(400, _message_size())
    body = raw.strip()
    # Only the dispute action writes statements; a message cannot pass itself off as one.
    while body.startswith(DISPUTE_STATEMENT_MARK.strip()):
        body = body[len(DISPUTE_STATEMENT_MARK.strip()) :].strip()
    if not 1 <= len(body) <= MAX_MESSAGE_CHARS:
        return render_error(400, _message_size())
    me = current_address()
    assert me is not None
    session_db = db.session()
    refusal = message_refusal(session_db, me)
    if refusal:
        return render_error(429, refusal)
    message = Message(trade_id=trade.id, sender=me, body=body)
    session_db.add(message)
    session_db.commit()
    if wants_json():
        return jsonify(id=message.id)
    return redirect(message_return_path(trade, source.get("next")) + "#messages")


def message_return_path(trade: Trade, wanted: Any) -> str:
    """Where the message form sends its writer back: the page it was posted from when that is
    one of this trade's pages (the trade page or its case file), else the trade page. Only
    these local paths are accepted, so the form cannot send anyone elsewhere."""
    trade_page = url_for("trades.show", trade_pk=trade.id)
    pages = {trade_page}
    if "arbitration.case" in current_app.view_functions:
        pages.add(url_for("arbitration.case", trade_pk=trade.id))
    return wanted if isinstance(wanted, str) and wanted in pages else trade_page


# ------------------------------------------------------------------ the opener's statement


@bp.post("/trades/<int:trade_pk>/statement")
@login_required
def statement_sent(trade_pk: int) -> Any:
    """Called by the wallet script once the openDispute transaction was sent. The statement
    stays on the server and is published when the chain shows the dispute (see
    ``trade_rules.sync_dispute_statement``)."""
    trade, role = load_trade(trade_pk)
    me = current_address()
    assert me is not None
    tx_hash = json_body().get("tx_hash")
    if role not in ("buyer", "seller") or not note_statement_sent(db.session(), trade, me, tx_hash):
        return render_error(409, _("There is no dispute statement waiting for this trade."))
    return jsonify(ok=True)
