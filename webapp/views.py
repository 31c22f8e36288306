"""Template helpers shared by every blueprint: money, addresses, times."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from flask import Flask

from webapp.auth import current_address, current_user, dev_wallet_enabled

DECIMALS = {"ETH": 18, "USD": 6}
SYMBOLS = {"ETH": "ETH", "USD": "USD"}


def format_amount(amount: int | None, currency: str = "ETH", places: int | None = None) -> str:
    """``1500000000000000000, 'ETH'`` -> ``'1.5 ETH'``; exact, never through float."""
    if amount is None:
        return "—"
    decimals = DECIMALS.get(currency, 18)
    value = Decimal(int(amount)) / (Decimal(10) ** decimals)
    if places is not None:
        value = value.quantize(Decimal(1).scaleb(-places))
    text = format(value.normalize(), "f") if value else "0"
    if "." in text:
        whole, frac = text.split(".")
        text = f"{int(whole):,}.{frac}"
    else:
        text = f"{int(text):,}"
    return f"{text} {SYMBOLS.get(currency, currency)}"


def to_units(text: str, currency: str) -> int:
    """Parses a user-typed amount (``'1.25'``) into the token's smallest unit.

    Raises ``ValueError`` with a message fit for the user.
    """
    decimals = DECIMALS.get(currency, 18)
    try:
        value = Decimal(text.strip().replace(",", ""))
    except Exception:
        raise ValueError("Enter the price as a number, like 12.50.") from None
    if not value.is_finite() or value <= 0:
        raise ValueError("The price must be more than zero.")
    scaled = value * (Decimal(10) ** decimals)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{currency} prices have at most {decimals} decimal places.")
    if scaled >= 2**128:
        raise ValueError("That price is too large.")
    return int(scaled)


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


def register_template_helpers(app: Flask) -> None:
    app.jinja_env.filters["amount"] = format_amount
    app.jinja_env.filters["short_address"] = short_address
    app.jinja_env.filters["iso"] = iso

    @app.context_processor
    def inject() -> dict[str, Any]:
        address = current_address()
        return {
            "current_address": address,
            "current_user": current_user(),
            "current_is_arbitrator": _is_arbitrator(address),
            "dev_wallet": _dev_wallet_safe(),
        }


def _is_arbitrator(address: str | None) -> bool:
    if address is None:
        return False
    from webapp import db
    from webapp.arbitration import is_arbitrator

    return is_arbitrator(db.session(), address)


def _dev_wallet_safe() -> bool:
    try:
        return dev_wallet_enabled()
    except Exception:  # the chain being down must not break every page
        return False
