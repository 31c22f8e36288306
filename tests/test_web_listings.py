"""Listings through the Flask test client: browse and filters, the listing page, create, edit,
pause, delete, photos and uploads, for anonymous visitors, the owner and another user."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from PIL import Image
from sqlalchemy import func, select

from escrow.db.models import Listing, Trade, User
from helpers import ONE_ETH, USD, Roles
from web_fixtures import WebUser, index_now, listing_form


def _image(fmt: str) -> bytes:
    """A small real image: photos are decoded and encoded again when they are uploaded."""
    out = io.BytesIO()
    Image.new("RGB", (8, 6), (200, 60, 30)).save(out, fmt)
    return out.getvalue()


JPEG = _image("JPEG")
PNG = _image("PNG")
WEBP = _image("WEBP")
REF = re.compile(r"^0x[0-9a-f]{64}$")


def _session(app: Flask) -> Any:
    return app.extensions["escrow_sessions"]()


def _user(app: Flask, address: str, **fields: Any) -> int:
    with _session(app) as session:
        user = session.scalar(select(User).where(User.address == address.lower()))
        if user is None:
            user = User(address=address.lower(), languages=[], **fields)
            session.add(user)
            session.commit()
        return int(user.id)


def _listing(app: Flask, seller: str, **fields: Any) -> int:
    seller_id = _user(app, seller)
    values: dict[str, Any] = {
        "title": "Bike",
        "description": "A good bike",
        "price": ONE_ETH,
        "currency": "ETH",
        "category": "bikes",
        "city": "Almaty",
        "status": "active",
        "photos": [],
    }
    values.update(fields)
    with _session(app) as session:
        import secrets

        listing = Listing(ref="0x" + secrets.token_hex(32), seller_id=seller_id, **values)
        session.add(listing)
        session.commit()
        return int(listing.id)


def _get(app: Flask, listing_id: int) -> Listing | None:
    with _session(app) as session:
        return session.get(Listing, listing_id)  # type: ignore[no-any-return]


def _titles(page: str) -> list[str]:
    return re.findall(r'<span class="card-title">([^<]+)</span>', page)


# ---------------------------------------------------------------------------- browse


def test_index_shows_active_listings_with_placeholder(app: Flask, web: Any, roles: Roles) -> None:
    _listing(app, roles.seller, title="Green bike")
    _listing(app, roles.seller, title="Hidden bike", status="withdrawn")
    _listing(app, roles.seller, title="Sold bike", status="sold")
    page = web(None).client.get("/").get_data(as_text=True)
    assert "Green bike" in page
    assert "Hidden bike" not in page and "Sold bike" not in page
    assert "photo-placeholder" in page
    assert "1 ETH" in page


def test_search_is_case_insensitive_on_title_and_description(
    app: Flask, web: Any, roles: Roles
) -> None:
    _listing(app, roles.seller, title="Red Scooter")
    _listing(app, roles.seller, title="Sofa", description="comes with a SCOOTER sticker")
    _listing(app, roles.seller, title="Lamp")
    _listing(app, roles.seller, title="100% cotton shirt")
    client = web(None).client
    titles = _titles(client.get("/?q=scooter").get_data(as_text=True))
    assert sorted(titles) == ["Red Scooter", "Sofa"]
    # LIKE wildcards in the query are literal text.
    assert _titles(client.get("/?q=%25").get_data(as_text=True)) == ["100% cotton shirt"]


def test_category_currency_city_and_price_filters(app: Flask, web: Any, roles: Roles) -> None:
    _listing(
        app,
        roles.seller,
        title="Cheap phone",
        category="phones",
        price=50 * USD,
        currency="USD",
        city="Almaty",
    )
    _listing(
        app,
        roles.seller,
        title="Dear phone",
        category="phones",
        price=500 * USD,
        currency="USD",
        city="Astana",
    )
    _listing(
        app, roles.seller, title="Eth bike", category="bikes", price=ONE_ETH // 2, city="Shymkent"
    )
    client = web(None).client

    def titles(query: str) -> list[str]:
        response = client.get("/?" + query)
        assert response.status_code == 200
        return sorted(_titles(response.get_data(as_text=True)))

    assert titles("category=phones") == ["Cheap phone", "Dear phone"]
    assert titles("currency=ETH") == ["Eth bike"]
    assert titles("city=almaty") == ["Cheap phone"]
    assert titles("currency=USD&min=100") == ["Dear phone"]
    assert titles("currency=USD&max=50") == ["Cheap phone"]
    assert titles("currency=USD&min=10.5&max=499.99") == ["Cheap phone"]
    assert titles("currency=ETH&max=0.5") == ["Eth bike"]
    assert titles("currency=ETH&max=0.4999") == []
    # Unknown category/currency values are ignored, not errors.
    assert len(titles("category=weapons&currency=BTC")) == 3


@pytest.mark.parametrize("bad", ["abc", "-5", "1e999999999", "0", "NaN", "9" * 70])
def test_bad_price_filters_are_friendly(app: Flask, web: Any, roles: Roles, bad: str) -> None:
    _listing(app, roles.seller, title="Eth bike")
    response = web(None).client.get(f"/?currency=ETH&min={bad}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Minimum price:" in page
    assert "Eth bike" in page  # the bad bound is ignored


def test_price_filter_needs_a_currency(app: Flask, web: Any, roles: Roles) -> None:
    page = web(None).client.get("/?min=1").get_data(as_text=True)
    assert "Choose a currency to filter by price." in page


def test_sorting(app: Flask, web: Any, roles: Roles) -> None:
    now = datetime.now(UTC)
    _listing(app, roles.seller, title="Mid", price=2 * ONE_ETH, created_at=now - timedelta(days=2))
    _listing(app, roles.seller, title="Low", price=ONE_ETH // 10, created_at=now)
    _listing(
        app, roles.seller, title="High", price=30 * ONE_ETH, created_at=now - timedelta(days=1)
    )
    client = web(None).client
    assert _titles(client.get("/").get_data(as_text=True)) == ["Low", "High", "Mid"]
    assert _titles(client.get("/?sort=price_asc").get_data(as_text=True)) == ["Low", "Mid", "High"]
    assert _titles(client.get("/?sort=price_desc").get_data(as_text=True)) == ["High", "Mid", "Low"]
    assert client.get("/?sort=drop+table").status_code == 200


def test_price_sorting_mixes_currencies_by_tenge_value(app: Flask, web: Any, roles: Roles) -> None:
    """ETH and dollar listings are ordered together by their value in tenge, not by currency."""
    app.config["TENGE_PER_ETH"] = "1500000"
    app.config["TENGE_PER_USD"] = "500"
    usd = 10**6
    _listing(app, roles.seller, title="Eth 150k", price=ONE_ETH // 10)  # 150,000 tenge
    _listing(app, roles.seller, title="Usd 50k", price=100 * usd, currency="USD")  # 50,000
    _listing(app, roles.seller, title="Usd 500k", price=1000 * usd, currency="USD")  # 500,000
    _listing(app, roles.seller, title="Eth 3m", price=2 * ONE_ETH)  # 3,000,000 tenge
    client = web(None).client
    ascending = ["Usd 50k", "Eth 150k", "Usd 500k", "Eth 3m"]
    assert _titles(client.get("/?sort=price_asc").get_data(as_text=True)) == ascending
    assert _titles(client.get("/?sort=price_desc").get_data(as_text=True)) == ascending[::-1]


def test_pagination(app: Flask, web: Any, roles: Roles) -> None:
    app.config["PAGE_SIZE"] = 4
    now = datetime.now(UTC)
    for n in range(10):
        _listing(app, roles.seller, title=f"Item {n:02d}", created_at=now - timedelta(hours=n))
    client = web(None).client
    first = client.get("/").get_data(as_text=True)
    assert _titles(first) == ["Item 00", "Item 01", "Item 02", "Item 03"]
    assert "Page 1 of 3" in first and 'rel="next"' in first and 'rel="prev"' not in first
    third = client.get("/?page=3").get_data(as_text=True)
    assert _titles(third) == ["Item 08", "Item 09"]
    assert 'rel="next"' not in third
    # Out-of-range and junk page numbers land on a real page.
    assert _titles(client.get("/?page=99").get_data(as_text=True)) == ["Item 08", "Item 09"]
    assert _titles(client.get("/?page=-1").get_data(as_text=True))[0] == "Item 00"
    assert _titles(client.get("/?page=abc").get_data(as_text=True))[0] == "Item 00"
    # Filters survive in the page links.
    page = client.get("/?q=item&category=bikes").get_data(as_text=True)
    assert "q=item&amp;category=bikes&amp;page=2" in page


def test_index_reads_its_page_and_count_in_one_statement(
    app: Flask, web: Any, roles: Roles
) -> None:
    """Whatever the page size, one statement reads a page of listings with their sellers and
    the number of all matches; a search runs its full-text match once in it."""
    from sqlalchemy import event

    for n in range(8):
        _listing(app, roles.seller, title=f"Item {n}")
    statements: list[str] = []
    engine = app.extensions["escrow_engine"]

    def count(*args: Any) -> None:
        statements.append(args[2])

    for url, found in (
        ("/", "8 listings"),
        ("/?q=item", "8 listings"),
        ("/?q=item+7", "1 listing"),
    ):
        statements.clear()
        event.listen(engine, "before_cursor_execute", count)
        try:
            page = web(None).client.get(url)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        assert page.status_code == 200 and found in page.get_data(as_text=True)
        listing_queries = [s for s in statements if "FROM listings" in s]
        assert len(listing_queries) == 1, url
        assert "JOIN users" in listing_queries[0] and "count(listings.id)" in listing_queries[0]
        if "q=" in url:
            assert listing_queries[0].count("MATCH") == 1, listing_queries[0]


def test_a_search_with_no_match_or_a_page_past_the_end(app: Flask, web: Any, roles: Roles) -> None:
    for n in range(30):
        _listing(app, roles.seller, title=f"Item {n:02d}")
    client = web(None).client
    empty = client.get("/?q=nothing-like-it").get_data(as_text=True)
    assert "0 listings" in empty and "No listings match" in empty
    # Page 2 of a search with 30 matches (24 a page) exists; page 5 lands on page 2.
    last = client.get("/?q=item&page=5").get_data(as_text=True)
    assert "Page 2 of 2" in last and "30 listings" in last
    assert len(_titles(last)) == 6


def _card(page: str, listing_id: int) -> str:
    match = re.search(
        rf'<a class="card listing-card" href="/listings/{listing_id}">.*?</a>', page, re.S
    )
    assert match, f"no card of listing {listing_id}"
    return match.group(0)


def test_cached_cards_follow_every_change(app: Flask, web: Any, roles: Roles) -> None:
    """Cards are kept rendered (webapp/views.py card_cache_key): each thing a card shows
    changes it at once, and no visitor gets another language's or zone's card."""
    listing_id = _listing(app, roles.seller, title="Blue kettle", price=ONE_ETH)
    visitor = web(None).client

    def card(**headers: str) -> str:
        return _card(visitor.get("/", headers=headers).get_data(as_text=True), listing_id)

    first = card()
    assert first == card(), "the same inputs give the same card"
    assert "1 ETH" in first and "Blue kettle" in first
    with _session(app) as session:
        listing = session.get(Listing, listing_id)
        listing.price = 2 * ONE_ETH
        listing.title = "Blue kettle, boxed"
        listing.city = "Astana"
        session.commit()
    changed = card()
    assert "2 ETH" in changed and "Blue kettle, boxed" in changed and "Astana" in changed
    with _session(app) as session:
        user = session.scalar(select(User).where(User.address == roles.seller.lower()))
        user.display_name = "Aigerim"
        session.commit()
    assert "Aigerim" in card()
    # A hold shows its end, and goes when the hold has ended.
    with _session(app) as session:
        listing = session.get(Listing, listing_id)
        listing.reserved_by = roles.buyer.lower()
        listing.reserved_until = datetime.now(UTC) + timedelta(minutes=5)
        session.commit()
    assert "data-on-hold" in card()
    with _session(app) as session:
        listing = session.get(Listing, listing_id)
        listing.reserved_until = datetime.now(UTC) - timedelta(seconds=1)
        session.commit()
    assert "data-on-hold" not in card()
    # Another language, then the first again: each gets its own card.
    russian = card(**{"Accept-Language": "ru"})
    assert "2 ETH" in russian and "Нет фото" in russian
    assert "No photo" in card()
    app.config["TENGE_PER_ETH"] = "1000000"
    assert "₸2,000,000" in card(), "a new tenge rate shows at once"


# ---------------------------------------------------------------------------- listing page


def test_listing_page_for_each_role(app: Flask, web: Any, roles: Roles) -> None:
    listing_id = _listing(
        app, roles.seller, title="Camera", description="<script>alert(1)</script>"
    )
    url = f"/listings/{listing_id}"
    anonymous = web(None).client.get(url).get_data(as_text=True)
    assert "Camera" in anonymous and "Sign in to buy" in anonymous
    assert "<script>alert(1)</script>" not in anonymous
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in anonymous
    assert "Verified record" in anonymous
    owner = web("seller", roles).client.get(url).get_data(as_text=True)
    assert "Edit" in owner and "data-checkout-url" not in owner
    other = web("buyer", roles).client.get(url).get_data(as_text=True)
    assert "Edit</a>" not in other
    if "trades.buy" in app.view_functions:
        assert f'data-checkout-url="/listings/{listing_id}/buy"' in other
    else:
        assert "data-checkout-url" not in other


def test_buy_button_needs_the_endpoint_and_an_available_listing(
    app: Flask, web: Any, roles: Roles
) -> None:
    if "trades.buy" not in app.view_functions:
        app.add_url_rule(
            "/listings/<int:listing_id>/buy", "trades.buy", lambda listing_id: "", methods=["POST"]
        )
    listing_id = _listing(app, roles.seller)
    buyer = web("buyer", roles)
    assert "data-checkout-url" in buyer.client.get(f"/listings/{listing_id}").get_data(as_text=True)
    with _session(app) as session:
        listing = session.get(Listing, listing_id)
        listing.reserved_by = roles.buyer2.lower()
        listing.reserved_until = datetime.now(UTC) + timedelta(minutes=10)
        session.commit()
    page = buyer.client.get(f"/listings/{listing_id}").get_data(as_text=True)
    assert "data-checkout-url" not in page and "On hold until" in page
    assert "Another buyer is paying for this item" in page
    # The reserving buyer still sees the button; an expired hold frees the listing.
    assert "data-checkout-url" in web("buyer2", roles).client.get(
        f"/listings/{listing_id}"
    ).get_data(as_text=True)
    with _session(app) as session:
        session.get(Listing, listing_id).reserved_until = datetime.now(UTC) - timedelta(1)
        session.commit()
    assert "data-checkout-url" in buyer.client.get(f"/listings/{listing_id}").get_data(as_text=True)
    with _session(app) as session:
        session.get(Listing, listing_id).status = "sold"
        session.commit()
    assert "data-checkout-url" not in buyer.client.get(f"/listings/{listing_id}").get_data(
        as_text=True
    )


def test_buy_form_offers_the_arbitrators_when_there_is_a_choice(
    app: Flask, web: Any, roles: Roles
) -> None:
    index_now(app)  # the arbitrators' registrations
    listing_id = _listing(app, roles.seller)
    page = web("buyer", roles).client.get(f"/listings/{listing_id}").get_data(as_text=True)
    assert f'data-checkout-url="/listings/{listing_id}/buy"' in page
    with app.test_request_context():
        with _session(app) as session:
            choices = app.jinja_env.globals["buy_arbitrators"](session.get(Listing, listing_id))
    assert len(choices) == 2  # the test deployment registers two arbitrators
    assert 'name="arbitrator"' in page
    for choice in choices:
        assert f'value="{choice.address}"' in page


def test_missing_and_withdrawn_listings(app: Flask, web: Any, roles: Roles) -> None:
    assert web(None).client.get("/listings/999").status_code == 404
    listing_id = _listing(app, roles.seller, status="withdrawn")
    assert web("buyer", roles).client.get(f"/listings/{listing_id}").status_code == 404
    assert web("seller", roles).client.get(f"/listings/{listing_id}").status_code == 200


def test_listing_page_shows_risk_signals(app: Flask, web: Any, roles: Roles) -> None:
    listing_id = _listing(app, roles.seller)
    page = web(None).client.get(f"/listings/{listing_id}").get_data(as_text=True)
    assert 'data-risk="new_account"' in page


# ---------------------------------------------------------------------------- create


def test_create_needs_sign_in(web: Any) -> None:
    anonymous = web(None)
    assert anonymous.client.get("/listings/new").status_code == 302
    assert anonymous.post_form("/listings/new", listing_form()).status_code == 302


def test_create_listing(app: Flask, web: Any, roles: Roles) -> None:
    seller: WebUser = web("seller", roles)
    assert seller.client.get("/listings/new").status_code == 200
    response = seller.post_form("/listings/new", listing_form(price="1,250.75", currency="USD"))
    assert response.status_code == 302
    with _session(app) as session:
        listing = session.scalars(select(Listing)).one()
        assert listing.price == 1_250_750_000
        assert listing.currency == "USD"
        assert REF.match(listing.ref)
        assert listing.seller.address == roles.seller.lower()
        assert listing.city == "Astana" and listing.category == "bikes"
    assert response.headers["Location"].endswith(f"/listings/{listing.id}")
    page = seller.client.get(f"/listings/{listing.id}").get_data(as_text=True)
    assert "1,250.75 USD" in page


def test_delivery_time_is_asked_shown_and_defaults_to_ten_days(
    app: Flask, web: Any, roles: Roles
) -> None:
    seller: WebUser = web("seller", roles)
    form_page = seller.client.get("/listings/new").get_data(as_text=True)
    assert "Delivery time (days)" in form_page
    assert re.search(r'name="delivery_days"[^>]*value="10"', form_page)
    assert seller.post_form("/listings/new", listing_form(delivery_days=" 14 ")).status_code == 302
    # A post without the field (an old form or a script) gets the default.
    without = {k: v for k, v in listing_form(title="Old form").items() if k != "delivery_days"}
    assert seller.post_form("/listings/new", without).status_code == 302
    with _session(app) as session:
        days = dict(session.execute(select(Listing.title, Listing.delivery_days)).all())
    assert days == {"Road bike": 14, "Old form": 10}
    listing_id = _id_of(app, "Road bike")
    page = web(None).client.get(f"/listings/{listing_id}").get_data(as_text=True)
    assert "delivery within 14 days after shipping" in page
    edit_page = seller.client.get(f"/listings/{listing_id}/edit").get_data(as_text=True)
    assert re.search(r'name="delivery_days"[^>]*value="14"', edit_page)


def test_changing_the_delivery_time_makes_a_new_version(app: Flask, web: Any, roles: Roles) -> None:
    """The buyer agrees to the delivery time (it becomes the trade's delivery window), so a
    change needs a fresh look like a price change; an edit without the field keeps it."""
    listing_id = _listing(app, roles.seller)
    owner = web("seller", roles)
    url = f"/listings/{listing_id}/edit"
    same = listing_form(title="Bike", description="A good bike", price="1", category="bikes")
    assert owner.post_form(url, same).status_code == 302
    assert _get(app, listing_id).version == 1  # type: ignore[union-attr]
    assert owner.post_form(url, {**same, "delivery_days": "3"}).status_code == 302
    listing = _get(app, listing_id)
    assert listing is not None and listing.delivery_days == 3 and listing.version == 2
    without = {k: v for k, v in same.items() if k != "delivery_days"}
    assert owner.post_form(url, without).status_code == 302
    listing = _get(app, listing_id)
    assert listing is not None and listing.delivery_days == 3 and listing.version == 2
    refused = owner.post_form(url, {**same, "delivery_days": "45"})
    assert refused.status_code == 400
    assert "between 1 and 30 days" in refused.get_data(as_text=True)
    assert _get(app, listing_id).delivery_days == 3  # type: ignore[union-attr]


def _id_of(app: Flask, title: str) -> int:
    with _session(app) as session:
        return int(session.scalar(select(Listing.id).where(Listing.title == title)))


def test_refs_are_unique(app: Flask, web: Any, roles: Roles) -> None:
    seller = web("seller", roles)
    for _ in range(3):
        assert seller.post_form("/listings/new", listing_form()).status_code == 302
    with _session(app) as session:
        refs = list(session.scalars(select(Listing.ref)))
    assert len(set(refs)) == 3 and all(REF.match(r) for r in refs)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("price", "-1", "more than zero"),
        ("price", "0", "more than zero"),
        ("price", "abc", "as a number"),
        ("price", "1e999999999", "without an exponent"),
        ("price", str(2**128), "too large"),
        ("price", "0.0000000000000000001", "decimal places"),
        ("price", "", "Enter a price"),
        ("title", "ab", "3 to 200"),
        ("title", "x" * 201, "3 to 200"),
        ("description", "x" * 5001, "5,000"),
        ("quantity", "0", "between 1 and 1,000"),
        ("quantity", "1001", "between 1 and 1,000"),
        ("quantity", "many", "between 1 and 1,000"),
        ("category", "weapons", "Not a valid choice"),
        ("currency", "BTC", "Not a valid choice"),
        ("city", "x" * 101, "100 characters"),
        ("delivery_days", "1,5", "whole number of days, from 1 to 30"),
        ("delivery_days", "1.5", "whole number of days, from 1 to 30"),
        ("delivery_days", "-2", "whole number of days, from 1 to 30"),
        ("delivery_days", "\u0661\u0660", "whole number of days, from 1 to 30"),
        ("delivery_days", "w" * 200, "whole number of days, from 1 to 30"),
        ("delivery_days", "0", "between 1 and 30 days"),
        ("delivery_days", "31", "between 1 and 30 days"),
        ("delivery_days", "200", "between 1 and 30 days"),
        ("delivery_days", " ", "Enter the delivery time in days (1 to 30)"),
    ],
)
def test_create_rejects_bad_input_and_keeps_it(
    app: Flask, web: Any, roles: Roles, field: str, value: str, message: str
) -> None:
    seller = web("seller", roles)
    response = seller.post_form(
        "/listings/new",
        listing_form(
            **{field: value, "title": "Kept title"} if field != "title" else {field: value}
        ),
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert message in page
    if field != "title":
        assert 'value="Kept title"' in page
    with _session(app) as session:
        assert session.scalar(select(func.count(Listing.id))) == 0


def test_price_in_usd_has_six_decimals(app: Flask, web: Any, roles: Roles) -> None:
    seller = web("seller", roles)
    response = seller.post_form("/listings/new", listing_form(price="1.0000001", currency="USD"))
    assert response.status_code == 400
    assert "at most 6 decimal places" in response.get_data(as_text=True)


def test_html_in_text_fields_is_escaped(app: Flask, web: Any, roles: Roles) -> None:
    seller = web("seller", roles)
    evil = '<img src=x onerror="alert(1)">'
    seller.post_form("/listings/new", listing_form(title=evil, description=evil, city=evil[:30]))
    with _session(app) as session:
        listing_id = session.scalars(select(Listing.id)).one()
    for url in ("/", f"/listings/{listing_id}", "/listings/mine"):
        page = seller.client.get(url).get_data(as_text=True)
        assert "<img src=x" not in page, url
        assert "&lt;img src=x" in page, url


# ---------------------------------------------------------------------------- photos


def _files(*items: tuple[bytes, str]) -> list[tuple[io.BytesIO, str]]:
    return [(io.BytesIO(data), name) for data, name in items]


def test_photos_upload_and_are_served(app: Flask, web: Any, roles: Roles) -> None:
    seller = web("seller", roles)
    response = seller.post_form(
        "/listings/new",
        {**listing_form(), "photos": _files((JPEG, "a.jpg"), (PNG, "b.png"), (WEBP, "c.webp"))},
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    with _session(app) as session:
        photos = session.scalars(select(Listing)).one().photos
    assert [p.rsplit(".", 1)[1] for p in photos] == ["jpg", "png", "webp"]
    assert all(re.match(r"^[0-9a-f]{32}\.", p) for p in photos)
    served = web(None).client.get(f"/uploads/{photos[0]}")
    try:
        assert served.status_code == 200 and served.get_data().startswith(b"\xff\xd8\xff")
        assert served.headers["X-Content-Type-Options"] == "nosniff"
        assert served.headers["Content-Type"] == "image/jpeg"
    finally:
        served.close()
    # Stored as uploaded but re-encoded (tests/test_web_security_files.py: no metadata).
    for name, fmt in zip(photos, ("JPEG", "PNG", "WEBP"), strict=True):
        with Image.open(Path(app.config["UPLOAD_DIR"]) / name) as image:
            assert image.format == fmt and image.size == (8, 6)


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        (b"GIF89a" + b"\x00" * 30, "x.gif", "not a JPEG, PNG or WebP"),
        (b"<?php echo 1; ?>", "shell.jpg", "not a JPEG, PNG or WebP"),
        (b"%PDF-1.4 ...", "doc.png", "not a JPEG, PNG or WebP"),
    ],
)
def test_wrong_type_uploads_are_refused(
    app: Flask, web: Any, roles: Roles, data: bytes, name: str, message: str
) -> None:
    seller = web("seller", roles)
    response = seller.post_form(
        "/listings/new",
        {**listing_form(), "photos": _files((data, name))},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert (
        not list(Path(app.config["UPLOAD_DIR"]).glob("*"))
        if Path(app.config["UPLOAD_DIR"]).exists()
        else True
    )


def test_oversized_photo_is_refused(app: Flask, web: Any, roles: Roles) -> None:
    app.config["MAX_PHOTO_BYTES"] = 1024
    seller = web("seller", roles)
    response = seller.post_form(
        "/listings/new",
        {**listing_form(), "photos": _files((JPEG + b"\x00" * 2000, "big.jpg"))},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    assert "larger than" in response.get_data(as_text=True)


def test_request_over_the_content_limit_is_a_friendly_413(
    app: Flask, web: Any, roles: Roles
) -> None:
    app.config["MAX_CONTENT_LENGTH"] = 4096
    seller = web("seller", roles)
    response = seller.post_form(
        "/listings/new",
        {**listing_form(), "photos": _files((JPEG + b"\x00" * 8000, "big.jpg"))},
        content_type="multipart/form-data",
    )
    assert response.status_code == 413
    assert "too large" in response.get_data(as_text=True)


def test_at_most_six_photos(app: Flask, web: Any, roles: Roles) -> None:
    seller = web("seller", roles)
    response = seller.post_form(
        "/listings/new",
        {**listing_form(), "photos": _files(*[(PNG, f"{n}.png") for n in range(7)])},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    assert "At most 6 photos" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "name",
    [
        "..%2F..%2Fetc%2Fpasswd",
        "../web.sqlite3",
        "%2E%2E%2Fweb.sqlite3",
        "web.sqlite3",
        "0123456789abcdef0123456789abcdef.jpg",
        "0123456789abcdef0123456789abcdef.php",
    ],
)
def test_uploads_route_refuses_traversal_and_unknown_files(app: Flask, web: Any, name: str) -> None:
    # A real file next to the upload folder that must never be served.
    assert web(None).client.get(f"/uploads/{name}").status_code == 404


def test_uploads_does_not_serve_files_outside_the_folder(app: Flask, web: Any) -> None:
    folder = Path(app.config["UPLOAD_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    (folder.parent / "secret.txt").write_text("TOP-SECRET-4711")
    client = web(None).client
    for name in ("../secret.txt", "..%2fsecret.txt", "%2e%2e/secret.txt"):
        response = client.get(f"/uploads/{name}")
        assert response.status_code == 404
        assert b"TOP-SECRET-4711" not in response.data


# ---------------------------------------------------------------------------- edit


def test_edit_by_owner_other_and_anonymous(app: Flask, web: Any, roles: Roles) -> None:
    listing_id = _listing(app, roles.seller, title="Old title", price=ONE_ETH * 3 // 2)
    url = f"/listings/{listing_id}/edit"
    assert web(None).client.get(url).status_code == 302
    other = web("buyer", roles)
    assert other.client.get(url).status_code == 403
    assert other.post_form(url, listing_form(title="Hijacked")).status_code == 403
    owner = web("seller", roles)
    form_page = owner.client.get(url).get_data(as_text=True)
    assert 'value="Old title"' in form_page and 'value="1.5"' in form_page
    assert owner.post_form(url, listing_form(title="New title", price="2")).status_code == 302
    listing = _get(app, listing_id)
    assert listing is not None and listing.title == "New title" and listing.price == 2 * ONE_ETH
    assert web(None).client.get("/listings/999/edit").status_code == 302
    assert owner.client.get("/listings/999/edit").status_code == 404


def test_edit_keeps_input_on_error(app: Flask, web: Any, roles: Roles) -> None:
    listing_id = _listing(app, roles.seller)
    owner = web("seller", roles)
    response = owner.post_form(
        f"/listings/{listing_id}/edit", listing_form(title="Typed title", price="-3")
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert 'value="Typed title"' in page and 'value="-3"' in page


def test_edit_removes_and_adds_photos(app: Flask, web: Any, roles: Roles) -> None:
    owner = web("seller", roles)
    owner.post_form(
        "/listings/new",
        {**listing_form(), "photos": _files((JPEG, "a.jpg"), (PNG, "b.png"))},
        content_type="multipart/form-data",
    )
    with _session(app) as session:
        listing = session.scalars(select(Listing)).one()
    first, second = listing.photos
    response = owner.post_form(
        f"/listings/{listing.id}/edit",
        {**listing_form(), "remove_photo": first, "photos": _files((WEBP, "c.webp"))},
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    edited = _get(app, listing.id)
    assert edited is not None
    assert edited.photos[0] == second and edited.photos[1].endswith(".webp")
    assert not (Path(app.config["UPLOAD_DIR"]) / first).exists()
    assert web(None).client.get(f"/uploads/{first}").status_code == 404


def test_sold_listing_cannot_be_edited(app: Flask, web: Any, roles: Roles) -> None:
    listing_id = _listing(app, roles.seller, status="sold")
    response = web("seller", roles).client.get(f"/listings/{listing_id}/edit")
    assert response.status_code == 302


# ---------------------------------------------------------------------------- pause, delete


def test_pause_and_resume(app: Flask, web: Any, roles: Roles) -> None:
    listing_id = _listing(app, roles.seller)
    url = f"/listings/{listing_id}/pause"
    assert web(None).post_form(url).status_code == 302
    assert web("buyer", roles).post_form(url).status_code == 403
    assert _get(app, listing_id).status == "active"  # type: ignore[union-attr]
    owner = web("seller", roles)
    assert owner.post_form(url).status_code == 302
    assert _get(app, listing_id).status == "withdrawn"  # type: ignore[union-attr]
    assert "Hidden" not in web(None).client.get("/").get_data(as_text=True)
    assert owner.post_form(url, {"next": "mine"}).headers["Location"].endswith("/listings/mine")
    assert _get(app, listing_id).status == "active"  # type: ignore[union-attr]
    assert owner.post_form("/listings/999/pause").status_code == 404


def test_pause_without_csrf_is_refused(app: Flask, web: Any, roles: Roles) -> None:
    listing_id = _listing(app, roles.seller)
    response = web("seller", roles).client.post(f"/listings/{listing_id}/pause")
    assert response.status_code == 400
    assert _get(app, listing_id).status == "active"  # type: ignore[union-attr]


def test_delete_by_owner_only(app: Flask, web: Any, roles: Roles) -> None:
    listing_id = _listing(app, roles.seller)
    url = f"/listings/{listing_id}/delete"
    assert web(None).post_form(url).status_code == 302
    assert web("buyer", roles).post_form(url).status_code == 403
    assert _get(app, listing_id) is not None
    assert web("seller", roles).post_form(url).status_code == 302
    assert _get(app, listing_id) is None
    assert web("seller", roles).post_form(url).status_code == 404


def test_delete_of_a_traded_listing_withdraws_it(app: Flask, web: Any, roles: Roles) -> None:
    listing_id = _listing(app, roles.seller)
    now = datetime.now(UTC)
    with _session(app) as session:
        listing = session.get(Listing, listing_id)
        session.add(
            Trade(
                chain_id=1,
                contract_address="0x" + "1" * 40,
                onchain_id=1,
                listing_id=listing_id,
                listing_ref=listing.ref,
                buyer=roles.buyer.lower(),
                seller=roles.seller.lower(),
                arbitrator=roles.arbitrator.lower(),
                token="0x" + "0" * 40,
                amount=ONE_ETH,
                ship_by=now,
                inspection_period=86400,
                arbitrator_fee_bps=0,
                platform_fee_bps=0,
                terms_hash="0x",
                status="Funded",
                funded_at=now,
                funded_block=1,
                funded_tx="0x" + "2" * 64,
                last_event_block=1,
            )
        )
        session.commit()
    response = web("seller", roles).post_form(f"/listings/{listing_id}/delete")
    assert response.status_code == 302
    listing = _get(app, listing_id)
    assert listing is not None and listing.status == "withdrawn"


# ---------------------------------------------------------------------------- my listings


def test_my_listings(app: Flask, web: Any, roles: Roles) -> None:
    _listing(app, roles.seller, title="Mine active")
    _listing(app, roles.seller, title="Mine paused", status="withdrawn")
    _listing(app, roles.buyer, title="Someone else's")
    assert web(None).client.get("/listings/mine").status_code == 302
    page = web("seller", roles).client.get("/listings/mine").get_data(as_text=True)
    assert "Mine active" in page and "Mine paused" in page
    assert "Someone else" not in page
    empty = web("buyer2", roles).client.get("/listings/mine").get_data(as_text=True)
    assert "no listings yet" in empty


# ---------------------------------------------------------------------------- terms before buying


def test_the_listing_page_states_the_terms_a_purchase_signs(
    app: Flask, web: Any, roles: Roles
) -> None:
    from escrow.db.models import ArbitratorStats

    index_now(app)  # the arbitrators' registrations
    client = app.extensions["escrow_chain"].client()
    _, fee_bps = client.platform_fee()
    assert fee_bps > 0  # the local deployment charges a fee
    arbitrators = [a.lower() for a in app.extensions["escrow_chain"].deployment().arbitrators]
    with _session(app) as session:
        session.add(User(address=arbitrators[0], display_name="Judge Dana", languages=[]))
        session.add(
            ArbitratorStats(address=arbitrators[0], cases=4, resolved=3, by_timeout=1, split=2)
        )
        session.commit()
    listing_id = _listing(app, roles.seller, price=2 * ONE_ETH, delivery_days=7)
    before = datetime.now(UTC)
    page = web("buyer", roles).client.get(f"/listings/{listing_id}").get_data(as_text=True)
    terms = page[page.index("data-offer-terms") :]
    assert "ETH (ether), paid straight into the escrow contract" in terms
    assert 'data-offer="token"' not in terms
    # Ship-by: five days after the payment (the setting the buy request uses), by chain time.
    assert "must ship within 5 days of your payment" in terms
    shown = re.search(r'data-offer="ship-by">.*?<time datetime="([^"]+)"', terms, re.S)
    assert shown is not None
    ship_by = datetime.fromisoformat(shown.group(1))
    chain_now = datetime.fromtimestamp(client.chain.latest_timestamp(), UTC)
    assert abs(ship_by - (chain_now + timedelta(days=5))) < timedelta(minutes=5)
    assert ship_by > before
    assert "The seller promises delivery within 7 days after shipping." in terms
    assert "3 days from receipt" in terms
    # The fee as a percentage and as an amount of this price, as the escrow computes it.
    fee = 2 * ONE_ETH * fee_bps // 10_000
    with app.test_request_context():
        from webapp.views import bps_percent, format_amount

        expected_fee = f"{bps_percent(fee_bps)} of what the seller receives: "
        expected_fee += format_amount(fee, "ETH")
    assert expected_fee in terms
    # The arbitrators by name (or short address), with their fee and record.
    assert (
        f'<a class="party" href="/u/{arbitrators[0]}" title="{arbitrators[0]}">Judge Dana</a>'
        in terms
    )
    assert "2 cases ruled" in terms  # 3 ended, 1 of them by timeout
    assert f'href="/u/{arbitrators[1]}"' in terms
    assert "Judge Dana · fee" in page  # the Buy form's menu names them too


def test_a_dollar_listing_names_its_token_and_marks_it_a_test_token(
    app: Flask, web: Any, roles: Roles, stablecoin: str
) -> None:
    listing_id = _listing(app, roles.seller, price=25 * USD, currency="USD")
    page = web(None).client.get(f"/listings/{listing_id}").get_data(as_text=True)
    assert "USD: a dollar stablecoin token" in page
    assert f'data-offer="token">{stablecoin}</span>' in page  # checksummed, in full
    # The embedded test chain is a local chain (eth-tester): its token has no real value.
    assert 'data-offer="test-token"' in page and "test token on a local chain" in page


def test_deleting_a_listing_asks_first(app: Flask, web: Any, roles: Roles) -> None:
    listing_id = _listing(app, roles.seller)
    page = web("seller", roles).client.get(f"/listings/{listing_id}").get_data(as_text=True)
    form = re.search(r'<form[^>]*action="/listings/\d+/delete"[^>]*>', page)
    assert form is not None and 'data-confirm="Delete this listing?' in form.group(0)


def test_the_terms_say_the_fee_is_unknown_when_the_node_does_not_answer(
    app: Flask, web: Any, roles: Roles, monkeypatch: Any
) -> None:
    def down(*_args: Any, **_kwargs: Any) -> Any:
        raise ConnectionError("node gone")

    monkeypatch.setattr("escrow.client.EscrowClient.platform_fee", down)
    listing_id = _listing(app, roles.seller)
    response = web("buyer", roles).client.get(f"/listings/{listing_id}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Unknown right now (the chain does not answer)" in page
    assert "must ship within 5 days of your payment" in page
