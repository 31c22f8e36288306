"""``/healthz``: chain id, latest block, indexer lag and database status as JSON; ``/status``:
the same for people, as a page; ``/livez``: the process answers (no database, no chain), for a
proxy's liveness check and as the benchmark's baseline (the cost of the framework alone);
``/favicon.ico``: the site's icon for browsers that ask for it there."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, current_app, jsonify, render_template, send_from_directory
from sqlalchemy import func, select, text
from werkzeug.wrappers import Response

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


@bp.get("/favicon.ico")
def favicon() -> Response:
    """The SVG icon: browsers ask for /favicon.ico whatever the page's <link rel="icon"> says,
    and every browser that reads SVG icons takes it by its type."""
    folder = current_app.static_folder or "static"
    return send_from_directory(folder, "favicon.svg", mimetype="image/svg+xml", max_age=86400)


@bp.get("/healthz")
def healthz() -> tuple[Any, int]:
    report = service_report()
    return jsonify(report), 200 if report["status"] == "ok" else 503


@bp.get("/status")
def status() -> tuple[str, int]:
    """The service's state in words: whether the chain and the database answer and how far
    the indexer is behind; 503 when something is down, like ``/healthz``."""
    report = service_report()
    return render_template("status.html", report=report), 200 if report["status"] == "ok" else 503


def service_report() -> dict[str, Any]:
    """Database, chain and indexer state (``/healthz``'s JSON body)."""
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
    return report
