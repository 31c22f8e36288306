"""escrow.amounts: reading amounts the way people in Kazakhstan (and elsewhere) write them,
refusing what cannot be read for sure, and the browser's copy of the same rules."""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from escrow.amounts import (
    MESSAGES,
    N_,
    AmountError,
    format_units,
    parse_units,
    show_units,
)

JS = Path(__file__).resolve().parents[1] / "webapp" / "static" / "js" / "amount_preview.js"
NBSP, NNBSP = "\u00a0", "\u202f"
ETH = 10**18
UINT256_MAX = 2**256 - 1

# (text, decimals, units)
ACCEPTED: list[tuple[str, int, int]] = [
    # one comma or one dot: the decimal separator
    ("1,5", 18, 15 * 10**17),
    ("1.5", 18, 15 * 10**17),
    ("0,25", 18, 25 * 10**16),
    ("0.25", 18, 25 * 10**16),
    ("12,75", 2, 1275),
    ("1,2345", 6, 1_234_500),
    ("0,125", 18, 125 * 10**15),  # "0" cannot be a thousands group
    ("1500,250", 6, 1_500_250_000),  # nor can "1500"
    ("1.500", 18, 15 * 10**17),  # a lone dot is always a decimal point
    ("1.125", 18, 1125 * 10**15),
    ("1", 18, ETH),
    ("007", 2, 700),
    ("1.50000000", 6, 1_500_000),  # zeros beyond the token's decimals change nothing
    ("1,0", 0, 1),
    # spaces group thousands: space, no-break space, narrow no-break space
    ("1 500", 6, 1_500_000_000),
    (f"1{NBSP}500", 6, 1_500_000_000),
    (f"1{NNBSP}500", 6, 1_500_000_000),
    ("1 500,50", 6, 1_500_500_000),
    (f"1{NBSP}500,50", 6, 1_500_500_000),
    (f"1{NNBSP}500,50", 6, 1_500_500_000),
    ("1 500.50", 6, 1_500_500_000),
    (f"1{NBSP}500.50", 2, 150_050),
    ("1 500,500", 6, 1_500_500_000),  # a comma after grouped thousands is the decimal one
    (f"12 345{NBSP}678,9", 2, 1_234_567_890),
    # English: comma groups, dot decimal; and the other way round
    ("1,500.50", 6, 1_500_500_000),
    ("1,500.5", 18, 15005 * 10**17),  # what format_units writes
    ("1,234,567", 6, 1_234_567_000_000),
    ("1.500,50", 6, 1_500_500_000),
    ("1.234.567", 2, 123_456_700),
    ("1.234.567,89", 2, 123_456_789),
    # around the amount
    ("  3  ", 18, 3 * ETH),
    (f"{NBSP}3{NNBSP}\t\r\n", 18, 3 * ETH),
    # the smallest unit
    ("0.000000000000000001", 18, 1),
    ("0,000001", 6, 1),
    ("0,01", 2, 1),
]

# (text, decimals, part of the message)
REFUSED: list[tuple[str, int, str]] = [
    ("1,500", 18, "could mean 1500 or 1,5"),  # thousands or decimals? never guessed
    ("12,345", 6, "could mean 12345 or 12.345"),
    ("999,000", 6, "could mean 999000 or 999"),
    ("1,000", 2, "could mean 1000 or 1"),
    ("1,,5", 18, "out of place"),
    ("1..5", 18, "out of place"),
    ("1 ,5", 18, "out of place"),
    ("1  500", 18, "out of place"),
    ("1 000,000.5", 18, "out of place"),  # two kinds of thousands separator
    ("1,5 000", 18, "out of place"),
    ("1 5", 18, "groups of three"),
    (f"1{NBSP}50", 18, "groups of three"),
    ("1.2.3", 18, "groups of three"),
    ("1,50,000", 18, "groups of three"),
    ("01 500", 18, "groups of three"),
    ("1234 567", 18, "groups of three"),
    ("1,5.5", 18, "groups of three"),
    (",5", 18, 'digit before the ","'),
    (".5", 18, 'digit before the "."'),
    ("1,", 18, 'decimals after the ","'),
    ("1.", 18, 'decimals after the "."'),
    ("1e3", 18, "without an exponent"),
    ("1E+3", 18, "without an exponent"),
    ("1,5e-3", 18, "without an exponent"),
    ("1e999999999", 18, "without an exponent"),
    ("-1", 18, "more than zero"),
    ("\u22121", 18, "more than zero"),
    ("-0", 18, "more than zero"),
    ("+1", 18, "plus sign"),
    ("abc", 18, "as a number"),
    ("1.5 ETH", 18, "as a number"),
    ("$5", 6, "as a number"),
    ("NaN", 18, "as a number"),
    ("Infinity", 18, "as a number"),
    ("0x10", 18, "as a number"),
    ("1_000", 18, "as a number"),
    ("1'000", 18, "as a number"),
    ("١٢٣", 18, "as a number"),  # digits of other scripts
    ("１２", 18, "as a number"),
    ("1\t500", 18, "as a number"),
    ("", 18, "Enter the amount"),
    (f" {NBSP}{NNBSP} ", 18, "Enter the amount"),
    ("0", 18, "more than zero"),
    ("0,00", 18, "more than zero"),
    ("0.0", 0, "more than zero"),
    ("1.0000001", 6, "at most 6 decimal places"),
    ("0.0000000000000000001", 18, "at most 18 decimal places"),
    ("1,005", 2, "could mean"),  # the unclear comma is refused before the decimal count
    ("1.005", 2, "at most 2 decimal places"),
    ("1.5", 0, "whole number"),
    ("9" * 201, 0, "too long"),
]


@pytest.mark.parametrize(("text", "decimals", "units"), ACCEPTED)
def test_accepted(text: str, decimals: int, units: int) -> None:
    assert parse_units(text, decimals) == units


@pytest.mark.parametrize(("text", "decimals", "message"), REFUSED)
def test_refused_with_a_message(text: str, decimals: int, message: str) -> None:
    with pytest.raises(AmountError) as info:
        parse_units(text, decimals)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_not_text_is_refused() -> None:
    with pytest.raises(AmountError, match="as a number"):
        parse_units(None, 18)  # type: ignore[arg-type]


def test_unclear_comma_offers_both_readings() -> None:
    with pytest.raises(AmountError) as info:
        parse_units("1,500", 18)
    assert str(info.value) == "1,500 could mean 1500 or 1,5: write 1500 or 1,5 instead."
    assert parse_units("1500", 18) == 1500 * ETH and parse_units("1,5", 18) == 15 * 10**17


def test_messages_name_the_thing_and_the_token() -> None:
    with pytest.raises(AmountError, match=r"^USD prices have at most 6 decimal places\.$"):
        parse_units("1.0000001", 6, noun="price", symbol="USD")
    with pytest.raises(AmountError, match=r"^Enter the price as a number"):
        parse_units("abc", 6, noun="price")
    with pytest.raises(AmountError, match=r"^Use at most 2 decimal places\.$"):
        parse_units("0.001", 2)


@pytest.mark.parametrize(
    ("text", "decimals", "max_units", "ok"),
    [
        ("10000", 18, 10_000 * ETH, True),
        ("10 000,000000000000000001", 18, 10_000 * ETH, False),
        ("1000000", 6, 10**12, True),
        ("1 000 000,01", 6, 10**12, False),
        ("1", 2, 100, True),
        ("1,01", 2, 100, False),
    ],
)
def test_maximum_is_a_parameter(text: str, decimals: int, max_units: int, ok: bool) -> None:
    if ok:
        assert parse_units(text, decimals, max_units=max_units) == max_units
    else:
        with pytest.raises(AmountError, match="too large: at most"):
            parse_units(text, decimals, max_units=max_units)


def test_too_large_names_the_maximum_unambiguously() -> None:
    with pytest.raises(AmountError) as info:
        parse_units("2000000", 18, max_units=10**6 * ETH, noun="price", symbol="ETH")
    assert str(info.value) == f"That price is too large: at most 1{NNBSP}000{NNBSP}000 ETH."


def test_default_maximum_is_uint128() -> None:
    assert parse_units(str(2**128 - 1), 0) == 2**128 - 1
    with pytest.raises(AmountError, match="too large"):
        parse_units(str(2**128), 0)


@pytest.mark.parametrize("decimals", [0, 2, 6, 18])
def test_uint256_extremes(decimals: int) -> None:
    for text in (
        format_units(UINT256_MAX, decimals),  # 115,792,...,639,935 (commas)
        format_units(UINT256_MAX, decimals).replace(",", ""),
        show_units(UINT256_MAX, decimals),
        format_units(UINT256_MAX, decimals).replace(",", " ").replace(".", ","),
    ):
        assert parse_units(text, decimals, max_units=UINT256_MAX) == UINT256_MAX, text
    with pytest.raises(AmountError, match="too large"):
        parse_units(format_units(UINT256_MAX + 1, decimals), decimals, max_units=UINT256_MAX)
    assert parse_units(format_units(1, decimals), decimals, max_units=UINT256_MAX) == 1


def test_show_units() -> None:
    assert show_units(15 * 10**17, 18) == "1.5"
    assert show_units(1_500_500_000, 6) == f"1{NNBSP}500.5"
    assert show_units(1_234_567 * 10**6, 6) == f"1{NNBSP}234{NNBSP}567"
    assert format_units(1_500_500_000, 6) == "1,500.5"  # the English form is unchanged


@given(st.integers(min_value=1, max_value=UINT256_MAX), st.sampled_from([0, 2, 6, 18]))
@example(1_500 * 10**6, 6)
@example(1, 18)
def test_what_is_shown_is_read_back(units: int, decimals: int) -> None:
    assert parse_units(show_units(units, decimals), decimals, max_units=UINT256_MAX) == units


@given(st.integers(min_value=1, max_value=UINT256_MAX), st.sampled_from([0, 2, 6, 18]))
@example(1_500 * 10**6, 6)
@example(1_500_500_000, 6)
def test_english_format_is_read_back_or_refused_as_unclear(units: int, decimals: int) -> None:
    text = format_units(units, decimals)
    if re.fullmatch(r"[1-9][0-9]{0,2},[0-9]{3}", text):  # "1,500": refused, never misread
        with pytest.raises(AmountError, match="could mean"):
            parse_units(text, decimals, max_units=UINT256_MAX)
    else:
        assert parse_units(text, decimals, max_units=UINT256_MAX) == units


@given(st.text(alphabet="0123456789., \u00a0\u202f", max_size=20), st.sampled_from([2, 6, 18]))
@example("1,5", 18)
@example("1 500,25", 6)
def test_a_comma_is_never_dropped(text: str, decimals: int) -> None:
    """Whatever is accepted is its digits, with the decimal point where the one comma or dot
    that does not repeat and comes last stood: no separator is dropped or moved."""
    try:
        units = parse_units(text, decimals, max_units=UINT256_MAX)
    except AmountError:
        return
    marks = re.findall(r"[.,]", text)
    digits = re.sub(r"[^0-9]", "", text)
    fraction = ""
    if marks and marks.count(marks[-1]) == 1:
        fraction = text.rsplit(marks[-1], 1)[1].strip(" \u00a0\u202f")
    whole = digits[: len(digits) - len(fraction)]
    padded = (fraction + "0" * decimals)[:decimals]
    assert units == int(whole) * 10**decimals + int(padded or "0")


# ------------------------------------------------------------------ messages for translation


@pytest.mark.parametrize(("text", "decimals", "message"), REFUSED)
def test_every_refusal_carries_its_template(text: str, decimals: int, message: str) -> None:
    """The web app translates ``template`` and fills in ``params``; the English message is
    the template filled in, and every template is one marked for translation."""
    with pytest.raises(AmountError) as info:
        parse_units(text, decimals)
    exc = info.value
    assert exc.template % exc.params == str(exc) if exc.params else exc.template == str(exc)
    assert exc.template in _marked_templates()


def test_templates_and_their_parameters() -> None:
    with pytest.raises(AmountError) as info:
        parse_units("1,500", 18)
    assert info.value.template == (
        "%(text)s could mean %(thousands)s or %(decimal)s: "
        "write %(thousands)s or %(decimal)s instead."
    )
    assert info.value.params == {"text": "1,500", "thousands": "1500", "decimal": "1,5"}
    with pytest.raises(AmountError) as info:
        parse_units("1.005", 2, noun="price", symbol="KZT")
    assert info.value.template == "%(symbol)s prices have at most %(decimals)d decimal places."
    assert info.value.params == {"symbol": "KZT", "decimals": 2}
    with pytest.raises(AmountError) as info:
        parse_units("6 000", 2, max_units=500_000, noun="price", symbol="KZT")
    assert info.value.params == {"maximum": f"5{NNBSP}000 KZT"}
    with pytest.raises(AmountError) as info:
        parse_units("", 2)
    assert info.value.template == "Enter the amount." and info.value.params == {}


def test_each_noun_has_every_message() -> None:
    assert set(MESSAGES) == {"amount", "price"}
    assert set(MESSAGES["amount"]) == set(MESSAGES["price"])
    for noun, messages in MESSAGES.items():
        other = "price" if noun == "amount" else "amount"
        for template in messages.values():
            assert noun in template and other not in template, template
    with pytest.raises(ValueError, match="noun must be one of"):
        parse_units("1", 2, noun="fee")  # type: ignore[arg-type]


def test_the_marker_changes_nothing() -> None:
    assert N_("Enter the amount.") == "Enter the amount."


def _marked_templates() -> set[str]:
    from babel.messages.extract import extract_from_file

    path = Path(__file__).resolve().parents[1] / "escrow" / "amounts.py"
    return {
        message
        for _, message, _, _ in extract_from_file("python", str(path), {"N_": None})
        if isinstance(message, str)
    }


@pytest.mark.parametrize(
    ("text", "units"),
    [
        ("1 234 567,50", 123_456_750),  # tenge as Kazakhstan writes them
        (f"1{NBSP}234{NBSP}567,5", 123_456_750),
        ("25 000", 2_500_000),
        ("12,5", 1250),
        ("0,05", 5),
        ("1.234.567,50", 123_456_750),
    ],
)
def test_tenge_with_a_decimal_comma(text: str, units: int) -> None:
    assert parse_units(text, 2) == units


def test_tenge_refuses_what_it_cannot_hold() -> None:
    with pytest.raises(AmountError, match="could mean 1500 or 1,5"):
        parse_units("1,500", 2)
    with pytest.raises(AmountError, match="at most 2 decimal places"):
        parse_units("0,005", 2)


# ------------------------------------------------------------------ the browser's copy


def run_js(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs ``[{"fn": "parseUnits", "args": [...]}, ...]`` through amount_preview.js under
    node; each result is ``{"units": "..."}`` or ``{"error": "..."}`` for the parsers, the
    value of other functions, or the exported constant of that name."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    program = """
const api = require(process.argv[1]);
let input = "";
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", () => {
  const out = JSON.parse(input).map(({ fn, args }) => {
    if (typeof api[fn] !== "function") return api[fn];
    if (fn === "parseUnits" || fn === "parsePrice") return api.check(() => api[fn](...args));
    const value = api[fn](...args);
    return typeof value === "bigint" ? value.toString() : value;
  });
  process.stdout.write(JSON.stringify(out));
});
"""
    done = subprocess.run(
        [node, "-e", program, str(JS)],
        input=json.dumps(calls),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    results: list[dict[str, Any]] = json.loads(done.stdout)
    return results


def python_result(text: Any, decimals: int, **options: Any) -> dict[str, str]:
    try:
        return {"units": str(parse_units(text, decimals, **options))}
    except AmountError as exc:
        return {"error": str(exc)}


def _fuzz_texts(count: int, seed: int = 20261130) -> list[str]:
    rng = random.Random(seed)
    alphabet = list("0123456789., ") + [NBSP, NNBSP, "-", "+", "e", "\t", "\u2212", "x", "😀"]
    weights = [6] * 10 + [5, 5, 4] + [2, 2, 1, 1, 1, 1, 1, 1, 1]
    texts = []
    for _ in range(count):
        size = rng.randint(0, 14)
        texts.append("".join(rng.choices(alphabet, weights, k=size)))
    return texts


def test_javascript_applies_the_same_rules() -> None:
    cases: list[tuple[Any, int, dict[str, Any]]] = []
    for text, decimals, _ in ACCEPTED + REFUSED:
        cases.append((text, decimals, {}))
    cases += [
        ("1,500", 18, {"noun": "price", "symbol": "ETH"}),
        ("1.0000001", 6, {"noun": "price", "symbol": "USD"}),
        ("1.5", 0, {"noun": "price", "symbol": "XYZ"}),
        ("2000000", 18, {"max_units": 10**6 * ETH, "noun": "price", "symbol": "ETH"}),
        (format_units(UINT256_MAX, 18), 18, {"max_units": UINT256_MAX}),
        (format_units(UINT256_MAX + 1, 18), 18, {"max_units": UINT256_MAX}),
        (str(2**128), 0, {}),
        ("😀" * 150, 18, {}),
        ("1" * 200, 0, {"max_units": 10**200}),
        ("1" * 201, 0, {"max_units": 10**201}),
        (None, 18, {}),
        (15, 18, {}),
    ]
    for text in _fuzz_texts(3000):
        cases.append((text, random.Random(text).choice([0, 2, 6, 18]), {}))
    calls = []
    for text, decimals, options in cases:
        js_options = {
            "maxUnits": str(options["max_units"]) if "max_units" in options else None,
            "noun": options.get("noun"),
            "symbol": options.get("symbol"),
        }
        calls.append(
            {
                "fn": "parseUnits",
                "args": [text, decimals, {k: v for k, v in js_options.items() if v is not None}],
            }
        )
    results = run_js(calls)
    mismatches = [
        (text, decimals, options, python_result(text, decimals, **options), js)
        for (text, decimals, options), js in zip(cases, results, strict=True)
        if python_result(text, decimals, **options) != js
    ]
    assert not mismatches, mismatches[:10]
    # The fuzz cases reach most rules, not only the first refusal.
    messages = {r.get("error", "accepted").split(" ")[0] for r in results}
    assert {"accepted", "Enter", "Write", "A", "The"} <= messages


def test_javascript_formats_like_python() -> None:
    values = [1, 10**6, 1_500_500_000, 15 * 10**17, UINT256_MAX, 10**30]
    calls = [
        {"fn": fn, "args": [str(units), decimals] + ([","] if fn == "formatUnits" else [])}
        for units in values
        for decimals in (0, 2, 6, 18)
        for fn in ("formatUnits", "showUnits")
    ]
    expected = [
        format_units(units, decimals) if fn == "formatUnits" else show_units(units, decimals)
        for units in values
        for decimals in (0, 2, 6, 18)
        for fn in ("formatUnits", "showUnits")
    ]
    assert run_js(calls) == expected
