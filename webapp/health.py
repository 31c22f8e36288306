"""``/healthz``: chain id, latest block, indexer lag and database status as JSON."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from sqlalchemy import select, text

from escrow.db.models import IndexerCheckpoint
from webapp import db
from webapp.chain import gateway

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> tuple[Any, int]:
    report: dict[str, Any] = {"status": "ok"}
    try:
        db.session().execute(text("SELECT 1"))
        report["database"] = {"ok": True}
    except Exception as exc:  # any driver error means the database is not usable
        report["database"] = {"ok": False, "error": exc.__class__.__name__}
        report["status"] = "degraded"
    try:
        chain = gateway().chain()
        latest = int(chain.w3.eth.block_number)
        report["chain"] = {"ok": True, "chain_id": chain.chain_id, "latest_block": latest}
        address = gateway().deployment().escrow.address.lower()
        checkpoint = db.session().scalar(
            select(IndexerCheckpoint).where(
                IndexerCheckpoint.chain_id == chain.chain_id,
                IndexerCheckpoint.contract_address == address,
            )
        )
        indexed = checkpoint.last_block if checkpoint else None
        report["indexer"] = {
            "last_block": indexed,
            "lag_blocks": latest - indexed if indexed is not None else None,
        }
    except Exception as exc:  # the node being down is exactly what this endpoint reports
        report["chain"] = {"ok": False, "error": str(exc)[:200]}
        report["status"] = "degraded"
    return jsonify(report), 200 if report["status"] == "ok" else 503
