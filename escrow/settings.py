"""Settings read from the environment in one place, with safe local defaults."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(os.environ.get("ESCROW_PROJECT_ROOT", Path(__file__).resolve().parents[1]))


def data_dir() -> Path:
    """Where chain state, deployments, the database and uploads live (``ESCROW_DATA_DIR``)."""
    return Path(os.environ.get("ESCROW_DATA_DIR", PROJECT_ROOT / "data"))


def rpc_url() -> str | None:
    """JSON-RPC endpoint of the chain (``ESCROW_RPC_URL``); ``None`` means the embedded chain."""
    return os.environ.get("ESCROW_RPC_URL") or None


def anvil_binary() -> Path:
    configured = os.environ.get("ESCROW_ANVIL")
    if configured:
        return Path(configured)
    return PROJECT_ROOT / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"


def private_key() -> str | None:
    """Key that signs when the node has no unlocked account (``ESCROW_PRIVATE_KEY``)."""
    return os.environ.get("ESCROW_PRIVATE_KEY") or None
