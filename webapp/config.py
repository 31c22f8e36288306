"""Web app settings, read from the environment in one place with safe local defaults."""

from __future__ import annotations

import os
import secrets
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from escrow import settings
from escrow.db.engine import database_url

MiB = 1024 * 1024
#: Example rates for local development, so that pages show the "≈ … ₸" hints: not market data.
#: A real site sets ESCROW_TENGE_PER_ETH, ESCROW_TENGE_PER_USD and ESCROW_TENGE_RATE_DATE from
#: the rate it means to show (an empty value or 0 turns a hint off).
DEFAULT_TENGE_PER_ETH = "1500000"
DEFAULT_TENGE_PER_USD = "500"
#: The site's address when ``ESCROW_SITE_URL`` is not set: what ``make run`` serves.
LOCAL_SITE_URL = "http://127.0.0.1:5000"
LOOPBACK_NAMES = ("127.0.0.1", "localhost")


def _local_secret_key(data: Path) -> str:
    """A random key kept in the data folder (mode 600), shared by every worker process and
    kept across restarts. Production sets ESCROW_SECRET_KEY instead; no key is ever committed.
    """
    path = data / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    data.mkdir(parents=True, exist_ok=True)
    # Write a complete file under a private name, then link it into place: workers starting
    # together all end up reading the one key that got there first.
    tmp = data / f".secret_key.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32))
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip()


def site_url(value: str | None) -> str:
    """The canonical origin (``scheme://host[:port]``) sign-in messages are written for and
    checked against, whatever Host header a request names. Anything else is a setup error."""
    url = (value or LOCAL_SITE_URL).strip().rstrip("/")
    parts = urlsplit(url)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.username is not None
        or parts.path
        or parts.query
        or parts.fragment
    ):
        raise ValueError(f"ESCROW_SITE_URL must look like https://market.example, not {url!r}")
    return url


def trusted_hosts(value: str | None, site: str) -> list[str]:
    """Host names requests may name (ports are not compared): ``ESCROW_TRUSTED_HOSTS``
    (comma-separated), by default the site's own host, and both loopback names for a site on
    loopback. Requests naming another host are refused."""
    names = [n.strip().lower() for n in (value or "").split(",") if n.strip()]
    if names:
        return names
    host = (urlsplit(site).hostname or "").lower()
    return [host, *(n for n in LOOPBACK_NAMES if n != host)] if host in LOOPBACK_NAMES else [host]


def from_environment() -> dict[str, Any]:
    data = settings.data_dir()
    site = site_url(os.environ.get("ESCROW_SITE_URL"))
    return {
        "SECRET_KEY": os.environ.get("ESCROW_SECRET_KEY") or _local_secret_key(data),
        "DATABASE_URL": database_url(),
        "RPC_URL": settings.rpc_url(),
        "DATA_DIR": str(data),
        "UPLOAD_DIR": str(data / "uploads"),
        "EVIDENCE_DIR": str(data / "evidence"),
        "MAX_CONTENT_LENGTH": 12 * MiB,
        "MAX_PHOTO_BYTES": 5 * MiB,
        "MAX_EVIDENCE_BYTES": 10 * MiB,
        # The dev wallet signs with the local chain's unlocked accounts: off unless the local
        # stack turns it on, and even then only for a local chain id and loopback clients.
        "DEV_WALLET": os.environ.get("ESCROW_DEV_WALLET", "0") == "1",
        "SITE_URL": site,
        "TRUSTED_HOSTS": trusted_hosts(os.environ.get("ESCROW_TRUSTED_HOSTS"), site),
        "SIWE_STATEMENT": "Sign in to the P2P Escrow market.",
        "SIWE_NONCE_TTL_SECONDS": 10 * 60,
        # A message this server writes is about 300 characters; longer ones are refused unread.
        "SIWE_MAX_MESSAGE_CHARS": 1000,
        # Checkout holds (webapp/checkout.py): while the wallet is open, while a reported
        # payment is mined, and how many unfinished checkouts a buyer may leave per window.
        "WALLET_HOLD_SECONDS": 120,
        "PAYMENT_HOLD_SECONDS": 10 * 60,
        "ABANDON_LIMIT": 5,
        "ABANDON_WINDOW_SECONDS": 30 * 60,
        "PAGE_SIZE": 24,
        # How long a worker reuses the chain time it read for showing pages (trade_rules.page_now).
        "CHAIN_TIME_CACHE_MS": _env_int("ESCROW_CHAIN_TIME_CACHE_MS", 1000),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        # Secure cookies unless explicitly serving plain HTTP on loopback (make run).
        "SESSION_COOKIE_SECURE": os.environ.get("ESCROW_INSECURE_COOKIES", "0") != "1",
        "PERMANENT_SESSION_LIFETIME": 7 * 24 * 3600,
        # The cookie is sent again only when the session changes: a session ends 7 days after
        # its sign-in whatever the cookie says (auth._session_address), so re-signing it on
        # every response would only cost time.
        "SESSION_REFRESH_EACH_REQUEST": False,
        "WTF_CSRF_TIME_LIMIT": None,  # the token lives as long as the session
        # Where Flask-Limiter counts requests (SIGNIN_RATE_LIMIT, WRITE_RATE_LIMIT). Empty: in
        # the app's own database (DATABASE_URL, see webapp/ratelimit_storage.py), one count for
        # all workers; or a limits URI such as "redis://host:6379" or "memory://" (per worker).
        "RATELIMIT_STORAGE_URI": os.environ.get("ESCROW_RATELIMIT_STORAGE", ""),
        "RATELIMIT_HEADERS_ENABLED": True,
        "SIGNIN_RATE_LIMIT": os.environ.get("ESCROW_SIGNIN_RATE_LIMIT", "20 per minute"),
        **limits_and_headers(),
        **tenge_rates(),
        **notification_settings(),
    }


SMTP_SECURITY = ("starttls", "ssl", "none")


def notification_settings() -> dict[str, Any]:
    """The notifier (``python -m webapp.notify``) and its e-mails (``webapp/mailer.py``).

    ``ESCROW_SMTP_HOST`` empty (the default): no e-mails at all, and the settings page says so.
    ``ESCROW_SMTP_SECURITY`` is ``starttls`` (default), ``ssl`` (SMTPS) or ``none`` (only for a
    relay on the same machine). The password comes from the environment, never from a file here.
    """
    security = os.environ.get("ESCROW_SMTP_SECURITY", "starttls").strip().lower() or "starttls"
    if security not in SMTP_SECURITY:
        raise ValueError(f"ESCROW_SMTP_SECURITY must be one of {SMTP_SECURITY}, not {security!r}")
    interval = os.environ.get("ESCROW_NOTIFY_INTERVAL", "5").strip() or "5"
    try:
        seconds = float(interval)
    except ValueError:
        raise ValueError(f"ESCROW_NOTIFY_INTERVAL must be seconds, not {interval!r}") from None
    if not 0 < seconds <= 3600:
        raise ValueError(f"ESCROW_NOTIFY_INTERVAL must be between 0 and 3600, not {interval!r}")
    return {
        "NOTIFY_INTERVAL": seconds,
        "SMTP_HOST": os.environ.get("ESCROW_SMTP_HOST", "").strip(),
        "SMTP_PORT": _env_int("ESCROW_SMTP_PORT", 587),
        "SMTP_USER": os.environ.get("ESCROW_SMTP_USER", ""),
        "SMTP_PASSWORD": os.environ.get("ESCROW_SMTP_PASSWORD", ""),
        "SMTP_FROM": os.environ.get("ESCROW_SMTP_FROM", "").strip() or "market@localhost",
        "SMTP_SECURITY": security,
        "SMTP_TIMEOUT": 20.0,
    }


def tenge_rates() -> dict[str, Any]:
    """How many tenge one ETH and one dollar are worth, for the "≈ 1 234 567 ₸" hints beside
    ETH and USD prices (``webapp.views.approx_tenge``), and the day that rate is of.

    Read from the environment, never from the network: ``ESCROW_TENGE_PER_ETH``,
    ``ESCROW_TENGE_PER_USD`` (decimal numbers; empty or 0: no hint for that currency) and
    ``ESCROW_TENGE_RATE_DATE`` (``YYYY-MM-DD``; empty: the hint names no date).
    """
    return {
        "TENGE_PER_ETH": _env_rate("ESCROW_TENGE_PER_ETH", DEFAULT_TENGE_PER_ETH),
        "TENGE_PER_USD": _env_rate("ESCROW_TENGE_PER_USD", DEFAULT_TENGE_PER_USD),
        "TENGE_RATE_DATE": _env_date("ESCROW_TENGE_RATE_DATE"),
    }


def _env_rate(name: str, default: str) -> Decimal | None:
    text = os.environ.get(name, default).strip().replace(" ", "").replace("_", "")
    if not text:
        return None
    try:
        rate = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{name} must be a decimal number like 520.35, not {text!r}") from None
    if not rate.is_finite() or rate < 0:
        raise ValueError(f"{name} must be a positive number, not {text!r}")
    return rate or None


def _env_date(name: str) -> date | None:
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{name} must be a date like 2026-11-30, not {text!r}") from None


def _env_int(name: str, default: int) -> int:
    value = int(os.environ.get(name, default))
    if value < 0:
        raise ValueError(f"{name} must not be negative, not {value}")
    return value


#: Write quotas and their defaults; each is read from ``ESCROW_`` + its name.
QUOTAS = {
    # Photos are decoded to check them; more pixels than this are refused unread.
    "MAX_PHOTO_PIXELS": 40_000_000,
    "PHOTO_BYTES_PER_SELLER": 250 * MiB,
    "LISTINGS_PER_DAY": 20,
    "ACTIVE_LISTINGS_PER_SELLER": 100,
    "MESSAGES_PER_MINUTE": 10,
    "MESSAGES_PER_HOUR": 100,
    "EVIDENCE_FILES_PER_TRADE": 20,
    "EVIDENCE_BYTES_PER_TRADE": 50 * MiB,
    "EVIDENCE_FILES_PER_USER_DAY": 40,
    "EVIDENCE_BYTES_PER_USER_DAY": 100 * MiB,
}


def limits_and_headers() -> dict[str, Any]:
    """Write quotas, the request rate limit, the proxy in front and the HTTPS header.

    Each can be set from the environment (``ESCROW_`` + the setting's name, e.g.
    ``ESCROW_LISTINGS_PER_DAY=50``); the quotas are counted in the database (webapp/quotas.py).
    """
    return {
        **{name: _env_int("ESCROW_" + name, default) for name, default in QUOTAS.items()},
        # Every POST, per signed-in user (per client address before sign-in), counted by
        # Flask-Limiter in RATELIMIT_STORAGE_URI: by default the database, one count for the
        # whole server; "memory://" would make it one count per worker process.
        "WRITE_RATE_LIMIT": os.environ.get(
            "ESCROW_WRITE_RATE_LIMIT", "60 per minute; 600 per hour"
        ),
        # How many reverse proxies in front add X-Forwarded-For and X-Forwarded-Proto; their
        # values are believed for that many hops only. 0: clients connect directly.
        "PROXY_COUNT": _env_int("ESCROW_PROXY_COUNT", 0),
        # Strict-Transport-Security goes on every response served over HTTPS; with
        # ESCROW_HSTS=1 also when the TLS proxy does not say so (no X-Forwarded-Proto).
        "HSTS_ALWAYS": os.environ.get("ESCROW_HSTS", "0") == "1",
        "HSTS_MAX_AGE": 365 * 24 * 3600,
    }
