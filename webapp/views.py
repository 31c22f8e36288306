"""Template helpers shared by every blueprint: money, addresses, times."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy.exc
from flask import Flask, g
from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from escrow.amounts import format_units, parse_units
from escrow.db.models import ArbitratorProfile, Trade
from webapp.auth import current_address, current_user, dev_wallet_enabled

DECIMALS = {"ETH": 18, "USD": 6}
SYMBOLS = {"ETH": "ETH", "USD": "USD"}
# The largest price a listing may ask, in whole tokens: far above anything sold person to
# person, low enough that a slip of several zeros is refused instead of published.
MAX_PRICE_ETH = 10_000
MAX_PRICE_USD = 10_000_000
MAX_PRICE_UNITS = {
    "ETH": MAX_PRICE_ETH * 10 ** DECIMALS["ETH"],
    "USD": MAX_PRICE_USD * 10 ** DECIMALS["USD"],
}


def format_amount(amount: int | None, currency: str = "ETH", places: int | None = None) -> str:
    """``1500000000000000000, 'ETH'`` -> ``'1.5 ETH'``; exact, never through float."""
    if amount is None:
        return "—"
    text = format_units(int(amount), DECIMALS.get(currency, 18), places)
    return f"{text} {SYMBOLS.get(currency, currency)}"


def to_units(text: str, currency: str) -> int:
    """Parses a user-typed price (``'1,25'``, ``'1 500.5'``) into the token's smallest unit,
    by the rules of ``escrow.amounts.parse_units``.

    Raises ``AmountError`` (a ``ValueError``) with a message fit for the user.
    """
    return parse_units(
        text,
        DECIMALS.get(currency, 18),
        max_units=MAX_PRICE_UNITS.get(currency, MAX_PRICE_UNITS["ETH"]),
        noun="price",
        symbol=SYMBOLS.get(currency, currency),
    )


def short_address(address: str | None) -> str:
    if not address:
        return "—"
    return f"{address[:6]}…{address[-4:]}"


def as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def iso(value: datetime | None) -> str:
    aware = as_utc(value)
    return aware.isoformat() if aware else ""


def when(value: datetime | None) -> str:
    """``'30 Nov 2026, 14:55 UTC'``: how people read a time (the ISO form goes in attributes)."""
    aware = as_utc(value)
    if aware is None:
        return "—"
    return aware.astimezone(UTC).strftime("%-d %b %Y, %H:%M UTC")


def duration_words(seconds: int | None) -> str:
    """``259200`` -> ``'3 days'``, ``93600`` -> ``'1 day 2 hours'``, ``3600`` -> ``'1 hour'``."""
    if seconds is None:
        return "—"
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = []
    for count, unit in ((days, "day"), (hours, "hour"), (minutes, "minute")):
        if count:
            parts.append(f"{count} {unit}" if count == 1 else f"{count} {unit}s")
    return " ".join(parts[:2]) or f"{int(seconds)} seconds"


def register_template_helpers(app: Flask) -> None:
    app.jinja_env.filters["amount"] = format_amount
    app.jinja_env.filters["when"] = when
    app.jinja_env.filters["short_address"] = short_address
    app.jinja_env.filters["iso"] = iso
    app.jinja_env.filters["duration_words"] = duration_words

    @app.context_processor
    def inject() -> dict[str, Any]:
        address = current_address()
        user, arbitrator = None, False
        if not g.get("database_down"):
            try:
                user, arbitrator = current_user(), _is_arbitrator(address)
            except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError):
                # An error page about the database must not need the database.
                g.database_down = True
        return {
            "current_address": address,
            "current_user": user,
            "current_is_arbitrator": arbitrator,
            "dev_wallet": _dev_wallet_safe(),
        }


def is_arbitrator(session: Session, address: str) -> bool:
    """Whether ``address`` arbitrates any trade or has an arbitrator profile."""
    return bool(
        session.scalar(
            select(
                exists().where(Trade.arbitrator == address)
                | exists().where(ArbitratorProfile.address == address)
            )
        )
    )


def _is_arbitrator(address: str | None) -> bool:
    if address is None:
        return False
    from webapp import db

    return is_arbitrator(db.session(), address)


def _dev_wallet_safe() -> bool:
    try:
        return dev_wallet_enabled()
    except Exception:  # the chain being down must not break every page
        return False
