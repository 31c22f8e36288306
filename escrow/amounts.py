"""Exact conversion between token units (integers) and decimal text, never through floats.

Python's default decimal context keeps 28 significant digits, which silently rounds amounts
of more than ~10 billion ETH in wei; every conversion here runs with enough digits for any
uint256.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation, localcontext

UINT256_DIGITS = 100  # uint256 has 78 decimal digits; leave room for the fraction


class AmountError(ValueError):
    """The text is not an amount the token can represent; the message says why."""


def parse_units(text: str, decimals: int, *, max_units: int = 2**128 - 1) -> int:
    """``'1.25'`` with 6 decimals -> ``1250000``. Accepts thousands separators (``1,250``)."""
    with localcontext() as ctx:
        ctx.prec = UINT256_DIGITS
        try:
            value = Decimal(text.strip().replace(",", ""))
        except (InvalidOperation, AttributeError):
            raise AmountError("Enter the amount as a number, like 12.50.") from None
        if not value.is_finite() or value <= 0:
            raise AmountError("The amount must be more than zero.")
        if value.adjusted() > 40:  # far beyond any uint128; keeps the arithmetic in range
            raise AmountError("That amount is too large.")
        if value.adjusted() < -decimals:
            raise AmountError(f"At most {decimals} decimal places.")
        scaled = value.scaleb(decimals)
        if scaled != scaled.to_integral_value():
            raise AmountError(f"At most {decimals} decimal places.")
        units = int(scaled)
    if units > max_units:
        raise AmountError("That amount is too large.")
    return units


def format_units(units: int, decimals: int, places: int | None = None) -> str:
    """``1500000, 6`` -> ``'1.5'``; thousands separated with commas; exact."""
    with localcontext() as ctx:
        ctx.prec = UINT256_DIGITS
        value = Decimal(int(units)).scaleb(-decimals)
        if places is not None:
            value = value.quantize(Decimal(1).scaleb(-places))
        text = format(value.normalize(), "f") if value else "0"
    if "." in text:
        whole, frac = text.split(".")
        return f"{int(whole):,}.{frac}"
    return f"{int(text):,}"
