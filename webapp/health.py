"""``/healthz``: chain id, latest block, indexer lag and database status as JSON; ``/livez``:
the process answers (no database, no chain), for a proxy's liveness check and as the
benchmark's baseline (the cost of the framework alone)."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, jsonify
from sqlalchemy import func, select, text

from escrow.db.models import UndecodedLog
from escrow.indexer.scanner import indexed_through
from webapp import db
from webapp.chain import gateway
from webapp.urls import redact

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)


@bp.get("/livez")
def livez() -> tuple[str, int, dict[str, str]]:
    return "ok\n", 200, {"Content-Type": "text/plain; charset=utf-8"}


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
        # The market follows every escrow of its deployment (older versions too): it is as
        # far indexed as the one furthest behind.
        addresses = gateway().escrow_addresses()
        indexed = indexed_through(db.session(), chain.chain_id, addresses)
        # Logs stored raw because they could not be decoded: worth a look, but anyone can
        # emit one, so they never make the service unhealthy.
        undecoded = db.session().scalar(
            select(func.count())
            .select_from(UndecodedLog)
            .where(
                UndecodedLog.chain_id == chain.chain_id,
                UndecodedLog.contract_address.in_(addresses),
            )
        )
        report["indexer"] = {
            "last_block": indexed,
            "lag_blocks": latest - indexed if indexed is not None else None,
            "undecoded_logs": int(undecoded or 0),
        }
    except Exception as exc:  # the node being down is exactly what this endpoint reports
        # The node's address can hold credentials (user:password@, an API key in the path):
        # the detail goes to the log with them taken out, the answer names only the kind.
        log.warning("healthz: chain unavailable: %s", redact(exc))
        report["chain"] = {"ok": False, "error": exc.__class__.__name__}
        report["status"] = "degraded"
    return jsonify(report), 200 if report["status"] == "ok" else 503
