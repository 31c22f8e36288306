"""Web app settings, read from the environment in one place with safe local defaults."""

from __future__ import annotations

import os
import secrets
from typing import Any

from escrow import settings
from escrow.db.engine import database_url

MiB = 1024 * 1024


def from_environment() -> dict[str, Any]:
    data = settings.data_dir()
    return {
        # A random key per process unless one is configured: sessions then end at a restart,
        # which is safe. Production sets ESCROW_SECRET_KEY (never committed).
        "SECRET_KEY": os.environ.get("ESCROW_SECRET_KEY") or secrets.token_hex(32),
        "DATABASE_URL": database_url(),
        "RPC_URL": settings.rpc_url(),
        "DATA_DIR": str(data),
        "UPLOAD_DIR": str(data / "uploads"),
        "EVIDENCE_DIR": str(data / "evidence"),
        "MAX_CONTENT_LENGTH": 12 * MiB,
        "MAX_PHOTO_BYTES": 5 * MiB,
        "MAX_EVIDENCE_BYTES": 10 * MiB,
        # The dev wallet signs with the local chain's unlocked accounts. It is only ever on
        # for a local chain id, whatever this says.
        "DEV_WALLET": os.environ.get("ESCROW_DEV_WALLET", "1") != "0",
        "SIWE_STATEMENT": "Sign in to the P2P Escrow market.",
        "SIWE_NONCE_TTL_SECONDS": 10 * 60,
        "RESERVATION_SECONDS": 15 * 60,
        "PAGE_SIZE": 24,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        # Secure cookies unless explicitly serving plain HTTP on loopback (make run).
        "SESSION_COOKIE_SECURE": os.environ.get("ESCROW_INSECURE_COOKIES", "0") != "1",
        "PERMANENT_SESSION_LIFETIME": 7 * 24 * 3600,
        "WTF_CSRF_TIME_LIMIT": None,  # the token lives as long as the session
        "RATELIMIT_STORAGE_URI": os.environ.get("ESCROW_RATELIMIT_STORAGE", "memory://"),
        "RATELIMIT_HEADERS_ENABLED": True,
        "SIGNIN_RATE_LIMIT": "20 per minute",
    }
