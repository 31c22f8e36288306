"""The market web app: ``create_app()`` is the factory gunicorn and the tests call."""

from __future__ import annotations

import os
import secrets
from typing import Any

from flask import Flask, jsonify, render_template

from escrow import settings


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.from_mapping(
        # A random key per process unless one is configured: sessions then do not survive a
        # restart, which is safe; production sets ESCROW_SECRET_KEY.
        SECRET_KEY=os.environ.get("ESCROW_SECRET_KEY") or secrets.token_hex(32),
        RPC_URL=settings.rpc_url(),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
    )
    if test_config:
        app.config.update(test_config)

    @app.get("/")
    def index() -> str:
        return render_template("index.html")

    @app.get("/healthz")
    def healthz() -> Any:
        from escrow.chain import connect
        from escrow.errors import EscrowError

        status: dict[str, Any] = {"status": "ok", "chain": None}
        try:
            chain = connect(app.config["RPC_URL"]) if app.config["RPC_URL"] else None
            if chain is not None:
                status["chain"] = {"chain_id": chain.chain_id,
                                   "latest_block": int(chain.w3.eth.block_number)}
        except EscrowError as exc:
            status.update(status="degraded", chain_error=str(exc))
        return jsonify(status), 200 if status["status"] == "ok" else 503

    return app
