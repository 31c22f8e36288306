"""The settings a real site must not run with: checked at start when ``ESCROW_ENV=production``.

``make run`` is a local stack with safe local defaults (a generated secret key, the dev wallet,
plain HTTP on loopback, example tenge rates). None of those may reach a public site, so in
production mode :func:`problems` lists every unsafe or missing setting and ``create_app``
refuses to start until all are fixed (docs/configuration.md lists every setting).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

#: ``ESCROW_ENV`` value that turns the checks on.
PRODUCTION = "production"
#: Shortest secret key accepted (characters; ``secrets.token_hex(32)`` gives 64).
MIN_SECRET_KEY_CHARS = 32
#: Keys seen in examples and tests: never a real site's.
KNOWN_WEAK_KEYS = {"test-secret-key", "change-me", "changeme", "secret", "dev", "development"}


class UnsafeSettings(RuntimeError):
    """Production mode with settings a public site must not run with; the message lists each."""

    def __init__(self, found: list[str]) -> None:
        self.problems = found
        lines = "\n".join(f"  - {p}" for p in found)
        super().__init__(
            f"refusing to start in production mode (ESCROW_ENV=production):\n{lines}\n"
            "See docs/configuration.md."
        )


def is_production(environ: Mapping[str, str]) -> bool:
    return environ.get("ESCROW_ENV", "").strip().lower() == PRODUCTION


def _is_loopback(host: str | None) -> bool:
    if not host:
        return True
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def problems(config: Mapping[str, Any], environ: Mapping[str, str]) -> list[str]:
    """Every reason the app's ``config`` (read from ``environ``) is unfit for a public site."""
    found: list[str] = []
    key = environ.get("ESCROW_SECRET_KEY", "")
    if not key:
        found.append(
            "ESCROW_SECRET_KEY is not set: the generated key in the data folder is for one "
            "machine (every host behind the proxy needs the same key)"
        )
    elif len(key) < MIN_SECRET_KEY_CHARS or key.lower() in KNOWN_WEAK_KEYS:
        found.append(
            f"ESCROW_SECRET_KEY is too weak: use at least {MIN_SECRET_KEY_CHARS} random "
            "characters (python -c 'import secrets; print(secrets.token_hex(32))')"
        )
    if config.get("DEV_WALLET"):
        found.append(
            "ESCROW_DEV_WALLET=1: the dev wallet signs with a node's unlocked accounts and is "
            "for a local chain only"
        )
    if not config.get("SESSION_COOKIE_SECURE", True):
        found.append("ESCROW_INSECURE_COOKIES=1: session cookies would be sent over plain HTTP")
    site = urlsplit(str(config.get("SITE_URL", "")))
    if not environ.get("ESCROW_SITE_URL"):
        found.append("ESCROW_SITE_URL is not set: the site's public https:// address")
    elif site.scheme != "https":
        found.append(
            f"ESCROW_SITE_URL is {config.get('SITE_URL')!r}: a public site is served over "
            "https (sign-in messages name this address)"
        )
    elif _is_loopback(site.hostname):
        found.append("ESCROW_SITE_URL names this computer, not the site's public address")
    if not environ.get("ESCROW_RPC_URL"):
        found.append("ESCROW_RPC_URL is not set: the chain node the market reads and writes")
    if not environ.get("DATABASE_URL"):
        found.append(
            "DATABASE_URL is not set: name the database (PostgreSQL for several hosts; a "
            "SQLite file only for a single host)"
        )
    storage = str(config.get("RATELIMIT_STORAGE_URI") or "")
    if storage.startswith("memory://"):
        found.append(
            "ESCROW_RATELIMIT_STORAGE=memory://: each worker would count on its own; use the "
            "database (unset) or redis://"
        )
    for name in ("ESCROW_TENGE_PER_ETH", "ESCROW_TENGE_PER_USD"):
        if name not in environ:
            found.append(
                f"{name} is not set: the built-in rate is an example for local development "
                "(set the rate to show, or an empty value to show no tenge hint)"
            )
    rates_on = config.get("TENGE_PER_ETH") or config.get("TENGE_PER_USD")
    if rates_on and not config.get("TENGE_RATE_DATE"):
        found.append("ESCROW_TENGE_RATE_DATE is not set: say which day the tenge rate is of")
    if config.get("DEBUG") or config.get("TESTING"):
        found.append("Flask debug or testing mode is on")
    return found


def check(config: Mapping[str, Any], environ: Mapping[str, str]) -> None:
    """Raises :class:`UnsafeSettings` in production mode when :func:`problems` finds any."""
    if not is_production(environ):
        return
    found = problems(config, environ)
    if found:
        raise UnsafeSettings(found)
