"""Exact conversion between token units (integers) and decimal text, never through floats.

Python's default decimal context keeps 28 significant digits, which silently rounds amounts
of more than ~10 billion ETH in wei; every conversion here runs with enough digits for any
uint256.

Amounts are typed by people in Kazakhstan, who write a decimal comma (``1,5``) and group
thousands with spaces (``1 500``), and by people who write the English ``1,500.5``. The rules
of ``parse_units`` read both without guessing; ``webapp/static/js/amount_preview.js`` applies
the same rules in the browser (``tests/test_amounts.py`` runs both on one table of cases).

The messages reach people in Kazakh, Russian or English, but this package does not depend on
Flask: each message is an English template marked with ``N_`` (extracted by ``make
translations``), and an ``AmountError`` carries the template and its parameters, so the web
app shows ``gettext(exc.template) % exc.params`` (``webapp.views.amount_error_text``).
``str(exc)`` is the English text.
"""

from __future__ import annotations

import re
from decimal import Decimal, localcontext
from typing import Literal

UINT256_DIGITS = 100  # uint256 has 78 decimal digits; leave room for the fraction

# Thousands may be grouped with a space, a no-break space or a narrow no-break space.
GROUP_SPACES = " \u00a0\u202f"
# What is trimmed from both ends (an explicit set: the browser and Python trim the same).
TRIM = " \t\r\n\u00a0\u202f"
MAX_TEXT = 200  # characters, after trimming; far more than any amount needs
SHOWN_GROUP = "\u202f"  # how an amount is shown back: 1 500.5 (see show_units)

_EXPONENT = re.compile(r"(?:[0-9]+(?:[.,][0-9]*)?|[.,][0-9]+)[eE][+-]?[0-9]+")
_ALLOWED = re.compile(r"[0-9., \u00a0\u202f]+")
_SEPARATOR = re.compile(r"[., \u00a0\u202f]")


def N_(message: str) -> str:
    """Marks ``message`` for translation without translating it (gettext's "no-op")."""
    return message


Noun = Literal["amount", "price"]

#: Each message about an amount, per noun: the noun changes its case in Kazakh and Russian,
#: so every wording is a whole sentence of its own for the translators.
MESSAGES: dict[str, dict[str, str]] = {
    "amount": {
        "empty": N_("Enter the amount."),
        "minus": N_("The amount must be more than zero: write it without a minus sign."),
        "plus": N_("Write the amount without a plus sign."),
        "exponent": N_("Write the amount in plain digits, without an exponent: 1000, not 1e3."),
        "not_a_number": N_("Enter the amount as a number, like 1,5 or 1 500 or 12.75."),
        "too_long": N_("That amount is too long."),
        "zero": N_("The amount must be more than zero."),
        "too_large": N_("That amount is too large: at most %(maximum)s."),
        "out_of_place": N_(
            "A separator is out of place in the amount: write one comma or dot before the "
            "decimals and spaces between thousands, like 1 500,50."
        ),
        "whole": N_("%(symbol)s amounts are whole numbers."),
        "decimals": N_("%(symbol)s amounts have at most %(decimals)d decimal places."),
    },
    "price": {
        "empty": N_("Enter the price."),
        "minus": N_("The price must be more than zero: write it without a minus sign."),
        "plus": N_("Write the price without a plus sign."),
        "exponent": N_("Write the price in plain digits, without an exponent: 1000, not 1e3."),
        "not_a_number": N_("Enter the price as a number, like 1,5 or 1 500 or 12.75."),
        "too_long": N_("That price is too long."),
        "zero": N_("The price must be more than zero."),
        "too_large": N_("That price is too large: at most %(maximum)s."),
        "out_of_place": N_(
            "A separator is out of place in the price: write one comma or dot before the "
            "decimals and spaces between thousands, like 1 500,50."
        ),
        "whole": N_("%(symbol)s prices are whole numbers."),
        "decimals": N_("%(symbol)s prices have at most %(decimals)d decimal places."),
    },
}
WHOLE_NUMBER = N_("Use a whole number.")
AT_MOST_DECIMALS = N_("Use at most %(decimals)d decimal places.")
DIGIT_BEFORE = N_('Write a digit before the "%(mark)s", like 0%(mark)s5.')
DECIMALS_AFTER = N_('Write the decimals after the "%(mark)s", like 1%(mark)s5, or leave it out.')
GROUPS_OF_THREE = N_(
    "Write thousands in groups of three digits, like 1 500 000, or without separators."
)
UNCLEAR_COMMA = N_(
    "%(text)s could mean %(thousands)s or %(decimal)s: write %(thousands)s or %(decimal)s instead."
)


class AmountError(ValueError):
    """The text is not an amount the token can represent; the message says why.

    ``template`` is the English message (marked with ``N_``, so it is in the catalogues) and
    ``params`` its values: a translation is ``gettext(template) % params``. ``str(exc)`` is the
    English message.
    """

    def __init__(self, template: str, **params: str | int) -> None:
        self.template = template
        self.params = params
        super().__init__(template % params if params else template)


def _message(noun: Noun, key: str) -> str:
    return MESSAGES[noun][key]


def strip_amount(text: str) -> str:
    """The text without the spaces ``parse_units`` ignores at both ends."""
    return text.strip(TRIM)


def parse_units(
    text: str,
    decimals: int,
    *,
    max_units: int = 2**128 - 1,
    noun: Noun = "amount",
    symbol: str = "",
) -> int:
    """``'1,25'`` or ``'1.25'`` with 6 decimals -> ``1250000``. What it cannot read for sure
    it refuses with an ``AmountError`` whose message says what to write instead; it never
    drops a separator. ``noun`` ("amount" or "price") and ``symbol`` ("ETH") word the messages.

    The rules, in the order they apply:

    1. Spaces, tabs and line breaks around the amount are ignored (an explicit set: space,
       U+00A0, U+202F, tab, CR, LF). Nothing left: refused.
    2. A sign is refused: ``-1`` (also with U+2212), ``+1``. So is an exponent: ``1e3``.
    3. Only ASCII digits, ``.``, ``,`` and the group spaces (space, U+00A0 no-break space,
       U+202F narrow no-break space) may remain: ``abc``, ``1.5 ETH``, ``0x10``, ``1_000``,
       ``1'000`` and the digits of other scripts are refused.
    4. A separator may not come first or last (``,5``, ``1.``) or next to another (``1,,5``,
       ``1 ,5``, ``1  500``).
    5. The decimal separator is the last comma or dot, if that character appears only once;
       every separator before it groups thousands. A space never is a decimal separator,
       and a comma or dot that appears twice groups thousands (``1,500,000``,
       ``1.500.000``).
    6. Thousands are grouped with one kind of separator (``1 000,000.5`` is refused), in
       groups of exactly three digits after a first group of 1-3 digits that does not start
       with 0 (``1 5``, ``1.2.3``, ``1,50,000``, ``01 500`` are refused).
    7. A lone comma between 1-3 digits (not starting with 0) and exactly three digits, with
       no other separator, could be thousands or decimals: ``1,500`` is refused with a
       message offering ``1500`` or ``1,5``. Where the part before it cannot be a thousands
       group it is a decimal comma: ``0,125`` is 0.125, ``1500,250`` is 1500.25.
       A lone dot is always a decimal point: ``1.500`` is 1.5 (the English form
       ``format_units`` writes; shown back to the person as ``1.5``).
    8. Decimals beyond the token's are refused (``1.0000001`` for 6 decimals) unless they
       are zeros (``1.50000000`` is 1.5). Leading zeros are fine: ``007`` is 7.
    9. Zero is refused, and so is more than ``max_units``; the message names the maximum.

    ==================================  ==========
    accepted                            means
    ==================================  ==========
    ``1,5`` ``1.5``                     1.5
    ``1 500,50`` ``1 500.50``           1500.5  (any of the three spaces)
    ``1,500.50`` ``1.500,50``           1500.5
    ``1,500,000`` ``1 500 000``         1500000
    ==================================  ==========
    """
    if noun not in MESSAGES:
        raise ValueError(f"noun must be one of {sorted(MESSAGES)}, not {noun!r}")
    if not isinstance(text, str):
        raise AmountError(_message(noun, "not_a_number"))
    s = strip_amount(text)
    if not s:
        raise AmountError(_message(noun, "empty"))
    if s[0] in "-\u2212":
        raise AmountError(_message(noun, "minus"))
    if s[0] == "+":
        raise AmountError(_message(noun, "plus"))
    if _EXPONENT.fullmatch(s):
        raise AmountError(_message(noun, "exponent"))
    if not _ALLOWED.fullmatch(s):
        raise AmountError(_message(noun, "not_a_number"))
    if len(s) > MAX_TEXT:
        raise AmountError(_message(noun, "too_long"))
    whole, fraction = _split(s, noun)
    fraction = fraction.rstrip("0")
    if len(fraction) > decimals:
        raise _too_many_decimals(decimals, noun, symbol)
    units = int(whole) * 10**decimals + int(fraction.ljust(decimals, "0") or "0")
    if units == 0:
        raise AmountError(_message(noun, "zero"))
    if units > max_units:
        shown = show_units(max_units, decimals) + (f" {symbol}" if symbol else "")
        raise AmountError(_message(noun, "too_large"), maximum=shown)
    return units


def _too_many_decimals(decimals: int, noun: Noun, symbol: str) -> AmountError:
    if decimals == 0:
        if symbol:
            return AmountError(_message(noun, "whole"), symbol=symbol)
        return AmountError(WHOLE_NUMBER)
    if symbol:
        return AmountError(_message(noun, "decimals"), symbol=symbol, decimals=decimals)
    return AmountError(AT_MOST_DECIMALS, decimals=decimals)


def _split(s: str, noun: Noun) -> tuple[str, str]:
    """Digits, separators and group spaces -> (whole digits, fraction digits), by the rules
    in ``parse_units``'s docstring."""
    groups = _SEPARATOR.split(s)
    separators = [c if c in ".," else " " for c in _SEPARATOR.findall(s)]
    if not separators:
        return s, ""
    if s[0] in ".,":
        raise AmountError(DIGIT_BEFORE, mark=s[0])
    if s[-1] in ".,":
        raise AmountError(DECIMALS_AFTER, mark=s[-1])
    if "" in groups:
        raise AmountError(_message(noun, "out_of_place"))
    last = separators[-1]
    if last != " " and separators.count(last) == 1:
        decimal: str | None = last
        whole, fraction, grouping = groups[:-1], groups[-1], set(separators[:-1])
    else:
        decimal = None
        whole, fraction, grouping = groups, "", set(separators)
    if len(grouping) > 1:
        raise AmountError(_message(noun, "out_of_place"))
    if len(whole) > 1:
        if len(whole[0]) > 3 or whole[0][0] == "0" or any(len(g) != 3 for g in whole[1:]):
            raise AmountError(GROUPS_OF_THREE)
    elif decimal == "," and len(fraction) == 3 and len(whole[0]) <= 3 and whole[0][0] != "0":
        as_thousands = whole[0] + fraction
        decimals = fraction.rstrip("0")
        mark = "," if len(decimals) != 3 else "."
        as_decimals = whole[0] + (mark + decimals if decimals else "")
        raise AmountError(UNCLEAR_COMMA, text=s, thousands=as_thousands, decimal=as_decimals)
    return "".join(whole), fraction


def show_units(units: int, decimals: int) -> str:
    """``1500500000, 6`` -> ``'1 500.5'`` (narrow no-break spaces between thousands): how an
    amount is shown back to the person who typed it. Nobody misreads it, whichever decimal
    separator they use, and ``parse_units`` reads it back to the same amount."""
    return format_units(units, decimals, group=SHOWN_GROUP)


def format_units(units: int, decimals: int, places: int | None = None, *, group: str = ",") -> str:
    """``1500000, 6`` -> ``'1.5'``; thousands separated with ``group`` (commas); exact."""
    with localcontext() as ctx:
        ctx.prec = UINT256_DIGITS
        value = Decimal(int(units)).scaleb(-decimals)
        if places is not None:
            value = value.quantize(Decimal(1).scaleb(-places))
        text = format(value.normalize(), "f") if value else "0"
    if "." in text:
        whole, frac = text.split(".")
        return f"{int(whole):,}".replace(",", group) + f".{frac}"
    return f"{int(text):,}".replace(",", group)
