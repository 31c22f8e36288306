"""Amounts on the web: the listing form's price and the market's price filters read "1,5" as
one and a half, refuse what is unclear with a message on the page, and show back what they
understood (after saving, and while typing, through static/js/amount_preview.js)."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select
from test_amounts import run_js

from escrow.db.models import Listing
from helpers import ONE_ETH, USD, Roles
from web_fixtures import add_listing, db_session, listing_form, listing_row
from webapp.listings import MAX_PRICE_TEXT, parse_amount
from webapp.views import DECIMALS, MAX_PRICE_ETH, MAX_PRICE_UNITS, MAX_PRICE_USD

NBSP, NNBSP = "\u00a0", "\u202f"


def _text(response: Any) -> str:
    return html.unescape(response.get_data(as_text=True))


def _count(app: Flask) -> int:
    with db_session(app) as session:
        return int(session.scalar(select(func.count(Listing.id))) or 0)


def _last_price(app: Flask) -> tuple[int, str]:
    with db_session(app) as session:
        listing = session.scalars(select(Listing).order_by(Listing.id.desc())).first()
        assert listing is not None
        return int(listing.price), str(listing.currency)


# ---------------------------------------------------------------------------- the form


def test_decimal_comma_price_is_one_and_a_half(app: Flask, web: Any, roles: Roles) -> None:
    """The old parser dropped the comma and saved 15 ETH."""
    seller = web("seller", roles)
    response = seller.post_form("/listings/new", listing_form(price="1,5"), follow_redirects=True)
    assert response.status_code == 200
    assert _last_price(app) == (ONE_ETH * 3 // 2, "ETH")
    assert "Your listing is on the market. Price: 1.5 ETH." in _text(response)


@pytest.mark.parametrize(
    ("price", "currency", "units", "shown"),
    [
        ("1.5", "ETH", ONE_ETH * 3 // 2, "1.5 ETH"),
        ("0,25", "ETH", ONE_ETH // 4, "0.25 ETH"),
        ("1 500,50", "USD", 1_500_500_000, f"1{NNBSP}500.5 USD"),
        (f"1{NBSP}500,50", "USD", 1_500_500_000, f"1{NNBSP}500.5 USD"),
        (f"1{NNBSP}500,50", "USD", 1_500_500_000, f"1{NNBSP}500.5 USD"),
        ("1 500.50", "USD", 1_500_500_000, f"1{NNBSP}500.5 USD"),
        ("1,500.50", "USD", 1_500_500_000, f"1{NNBSP}500.5 USD"),
        ("1.500,50", "USD", 1_500_500_000, f"1{NNBSP}500.5 USD"),
        ("1500", "USD", 1500 * USD, f"1{NNBSP}500 USD"),
        (f"{MAX_PRICE_ETH}", "ETH", MAX_PRICE_UNITS["ETH"], f"10{NNBSP}000 ETH"),
    ],
)
def test_prices_as_people_write_them(
    app: Flask, web: Any, roles: Roles, price: str, currency: str, units: int, shown: str
) -> None:
    seller = web("seller", roles)
    response = seller.post_form(
        "/listings/new", listing_form(price=price, currency=currency), follow_redirects=True
    )
    assert response.status_code == 200
    assert _last_price(app) == (units, currency)
    assert f"Price: {shown}." in _text(response)


@pytest.mark.parametrize(
    ("price", "currency", "message"),
    [
        ("1,500", "ETH", "1,500 could mean 1500 or 1,5: write 1500 or 1,5 instead."),
        ("12,345", "USD", "12,345 could mean 12345 or 12.345"),
        ("1e3", "ETH", "without an exponent: 1000, not 1e3"),
        ("+2", "ETH", "without a plus sign"),
        ("-2", "ETH", "must be more than zero"),
        ("0,0", "ETH", "The price must be more than zero."),
        ("1,,5", "ETH", "A separator is out of place in the price"),
        ("1 5", "ETH", "groups of three digits"),
        ("1.2.3", "ETH", "groups of three digits"),
        ("1,5 ETH", "ETH", "Enter the price as a number"),
        ("1,0000001", "USD", "USD prices have at most 6 decimal places."),
        (
            "10 000,5",
            "ETH",
            f"That price is too large: at most {MAX_PRICE_ETH:,} ETH.".replace(",", NNBSP),
        ),
        (
            f"{MAX_PRICE_USD + 1}",
            "USD",
            f"That price is too large: at most {MAX_PRICE_USD:,} USD.".replace(",", NNBSP),
        ),
        ("1" * (MAX_PRICE_TEXT + 1), "USD", "That price is too long."),
    ],
)
def test_unclear_or_wrong_prices_are_refused_on_the_form(
    app: Flask, web: Any, roles: Roles, price: str, currency: str, message: str
) -> None:
    seller = web("seller", roles)
    response = seller.post_form("/listings/new", listing_form(price=price, currency=currency))
    assert response.status_code == 400
    page = _text(response)
    assert message in page
    assert re.search(r'name="price"[^>]*value="' + re.escape(price) + '"', page)  # kept
    assert _count(app) == 0


def test_edit_reads_a_decimal_comma_and_says_what_it_saved(
    app: Flask, web: Any, roles: Roles
) -> None:
    listing_id, _ = add_listing(app, roles.seller, price=ONE_ETH * 3 // 2)
    seller = web("seller", roles)
    page = seller.client.get(f"/listings/{listing_id}/edit").get_data(as_text=True)
    assert re.search(r'name="price"[^>]*value="1.5"', page)
    response = seller.post_form(
        f"/listings/{listing_id}/edit", listing_form(price="2,25"), follow_redirects=True
    )
    assert response.status_code == 200
    assert "Listing saved. Price: 2.25 ETH." in _text(response)
    assert listing_row(app, listing_id).price == ONE_ETH * 9 // 4


def test_edit_refuses_an_unclear_price_and_keeps_the_old_one(
    app: Flask, web: Any, roles: Roles
) -> None:
    listing_id, _ = add_listing(app, roles.seller, price=ONE_ETH)
    seller = web("seller", roles)
    response = seller.post_form(f"/listings/{listing_id}/edit", listing_form(price="2,500"))
    assert response.status_code == 400
    assert "2,500 could mean 2500 or 2,5" in _text(response)
    assert listing_row(app, listing_id).price == ONE_ETH


def test_form_shows_the_understood_amount_without_inline_script(
    app: Flask, web: Any, roles: Roles
) -> None:
    page = web("seller", roles).client.get("/listings/new").get_data(as_text=True)
    price = re.search(r"<input[^>]*name=\"price\"[^>]*>", page)
    assert price is not None
    assert 'data-amount-preview="price-understood"' in price.group(0)
    assert "price-understood" in price.group(0).split("aria-describedby=")[1]
    output = re.search(r'<output id="price-understood"[^>]*>', page)
    assert output is not None and 'aria-live="polite"' in output.group(0)
    assert '<script src="/static/js/amount_preview.js"></script>' in page
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page), "inline script"
    assert not re.search(r"\son[a-z]+=", page), "inline event handler"
    served = web(None).client.get("/static/js/amount_preview.js")
    try:
        assert served.status_code == 200 and b"parseUnits" in served.get_data()
    finally:
        served.close()


# ---------------------------------------------------------------------------- search


@pytest.fixture
def priced(app: Flask, roles: Roles) -> None:
    add_listing(app, roles.seller, title="Cheap lamp", price=ONE_ETH * 15 // 100)
    add_listing(app, roles.seller, title="Dear lamp", price=ONE_ETH // 2)
    add_listing(app, roles.seller, title="Sofa", price=1_500 * USD, currency="USD")
    add_listing(app, roles.seller, title="Chair", price=1_499_990_000, currency="USD")


def _titles(web: Any, query: str) -> tuple[list[str], str]:
    response = web(None).client.get("/?" + query)
    assert response.status_code == 200
    page = _text(response)
    found = [t for t in ("Cheap lamp", "Dear lamp", "Sofa", "Chair") if t in page]
    return found, page


@pytest.mark.parametrize(
    ("query", "titles"),
    [
        ("currency=ETH&max=0,2", ["Cheap lamp"]),  # the old parser read 0,2 as 2
        ("currency=ETH&max=0.2", ["Cheap lamp"]),
        ("currency=ETH&min=0,25", ["Dear lamp"]),
        ("currency=ETH&min=0,15&max=0,15", ["Cheap lamp"]),
        ("currency=USD&min=1+500", ["Sofa"]),  # "1 500"
        ("currency=USD&min=1%C2%A0500", ["Sofa"]),  # no-break space
        ("currency=USD&min=1%E2%80%AF500", ["Sofa"]),  # narrow no-break space
        ("currency=USD&max=1+499,99", ["Chair"]),
        ("currency=USD&max=1,499.99", ["Chair"]),
    ],
)
def test_price_filters_read_the_same_way(
    web: Any, priced: None, query: str, titles: list[str]
) -> None:
    found, page = _titles(web, query)
    assert found == titles
    assert "Minimum price:" not in page and "Maximum price:" not in page


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("currency=USD&max=1,500", "Maximum price: 1,500 could mean 1500 or 1,5"),
        ("currency=ETH&min=1e3", "Minimum price: Write the price in plain digits"),
        ("currency=ETH&max=0,,2", "Maximum price: A separator is out of place"),
        ("currency=ETH&max=abc", "Maximum price: Enter the price as a number"),
        ("currency=ETH&min=-1", "Minimum price: The price must be more than zero"),
        (
            "currency=ETH&max=" + "1" * (MAX_PRICE_TEXT + 5),
            "Maximum price: That price is too long.",
        ),
        (
            "currency=ETH&max=1." + "0" * (MAX_PRICE_TEXT - 2) + "1",
            "Maximum price: That price is too long.",
        ),
    ],
)
def test_unreadable_price_filter_is_a_message_on_the_page(
    web: Any, priced: None, query: str, message: str
) -> None:
    found, page = _titles(web, query)
    assert message in page
    assert len(found) == 2  # that bound is not applied; the currency still is


# ---------------------------------------------------------------------------- the browser's copy


def test_javascript_knows_the_currencies_of_the_server() -> None:
    assert run_js([{"fn": "CURRENCIES"}, {"fn": "MAX_PRICE_TEXT"}]) == [
        {c: {"decimals": DECIMALS[c], "max": str(MAX_PRICE_UNITS[c])} for c in DECIMALS},
        MAX_PRICE_TEXT,
    ]


PRICE_CASES = [
    "1,5",
    "1.5",
    " 1 500,50 ",
    f"1{NBSP}500,50",
    f"1{NNBSP}500.50",
    "1,500.50",
    "1.500,50",
    "1,500",
    "12,345",
    "0,000001",
    "0.0000001",
    "0,0000000000000000001",
    "1e3",
    "-1",
    "+1",
    "0",
    "",
    "   ",
    f"{NBSP}",
    "\u2003",
    "abc",
    "1,,5",
    "1 5",
    "1.2.3",
    "10000",
    "10 000,000000000000000001",
    "10000000",
    "10000000,000001",
    "9" * 40,
    "1" * MAX_PRICE_TEXT,
    "1" * (MAX_PRICE_TEXT + 1),
    "😀" * 40,
    f"{'1' * MAX_PRICE_TEXT}   ",
]


def _python_price(text: str, currency: str) -> dict[str, str]:
    try:
        return {"units": str(parse_amount(text, currency))}
    except ValueError as exc:
        return {"error": str(exc)}


def test_javascript_reads_prices_like_the_server() -> None:
    cases = [(text, currency) for text in PRICE_CASES for currency in ("ETH", "USD", "BTC")]
    results = run_js([{"fn": "parsePrice", "args": [text, c]} for text, c in cases])
    mismatches = [
        (text, currency, _python_price(text, currency), js)
        for (text, currency), js in zip(cases, results, strict=True)
        if _python_price(text, currency) != js
    ]
    assert not mismatches, mismatches


@pytest.mark.parametrize(
    ("text", "currency", "shown", "error"),
    [
        ("1,5", "ETH", "= 1.5 ETH", False),
        ("1 500,5", "USD", f"= 1{NNBSP}500.5 USD", False),
        ("1,500", "USD", "1,500 could mean 1500 or 1,5: write 1500 or 1,5 instead.", True),
        (
            "1e3",
            "ETH",
            "Write the price in plain digits, without an exponent: 1000, not 1e3.",
            True,
        ),
        ("", "ETH", "", False),
        ("  ", "USD", "", False),
        ("1,5", "BTC", "", False),
    ],
)
def test_javascript_preview_text(text: str, currency: str, shown: str, error: bool) -> None:
    assert run_js([{"fn": "preview", "args": [text, currency]}]) == [
        {"text": shown, "error": error}
    ]
