"""Flask extensions, created here and bound to the app in ``create_app`` with ``init_app``."""

from __future__ import annotations

from flask import current_app, request, session
from flask_caching import Cache
from flask_limiter import ApplicationLimit, Limiter
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFProtect

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def writer_key() -> str:
    """Who is writing: the signed-in wallet, or the client's address before sign-in.

    The client's address is the proxy's unless ``PROXY_COUNT`` says how many proxies to look
    through (see ``create_app``).
    """
    address = session.get("address")
    return f"wallet:{address}" if address else f"ip:{get_remote_address()}"


def _not_a_write() -> bool:
    return request.method not in WRITE_METHODS


csrf = CSRFProtect()
#: Rendered fragments (the listing cards of a page), in each worker's memory. Every input of a
#: fragment is part of its key (``webapp.views.card_cache_key``), so nothing is ever stale and
#: nothing needs sharing between workers or hosts; the bounds only cap memory.
fragments = Cache(
    config={
        "CACHE_TYPE": "SimpleCache",
        "CACHE_THRESHOLD": 20_000,
        "CACHE_DEFAULT_TIMEOUT": 3600,
    }
)
limiter = Limiter(
    key_func=get_remote_address,
    default_limits=[],
    # Every write request of one user or client, whatever the route (WRITE_RATE_LIMIT).
    application_limits=[
        ApplicationLimit(
            lambda: str(current_app.config.get("WRITE_RATE_LIMIT") or ""),
            key_function=writer_key,
            scope="writes",
            exempt_when=_not_a_write,
        )
    ],
)
