"""Column types for chain values.

Amounts on chain are uint256. PostgreSQL keeps them exactly as ``NUMERIC(78, 0)``. SQLite has no
exact type that wide (its NUMERIC turns anything above 2**63 into a float), so there the value is
stored as a zero-padded decimal string: padding keeps the text order equal to the numeric order,
and a ``CHECK (x >= 0)`` still rejects a negative value (``'-…'`` sorts before ``'0'``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import Dialect, Numeric, String
from sqlalchemy.types import TypeDecorator, TypeEngine

UINT256_DIGITS = 78


class Uint256(TypeDecorator[int]):
    """A Python ``int`` of up to 78 decimal digits that round-trips exactly."""

    impl = Numeric(UINT256_DIGITS, 0)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(UINT256_DIGITS + 1))
        return dialect.type_descriptor(Numeric(UINT256_DIGITS, 0, asdecimal=True))

    def process_bind_param(self, value: int | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"money and chain integers must be int, not {type(value).__name__}")
        if dialect.name == "sqlite":
            return encode_sqlite(value)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        if value is None:
            return None
        if isinstance(value, str):
            return int(value)
        if isinstance(value, Decimal):
            return int(value)
        return int(value)

    @property
    def python_type(self) -> type[int]:
        return int


def encode_sqlite(value: int) -> str:
    """The SQLite text form of an integer (sign, then 78 zero-padded digits)."""
    if value < 0:
        return "-" + str(-value).zfill(UINT256_DIGITS)
    return str(value).zfill(UINT256_DIGITS)
