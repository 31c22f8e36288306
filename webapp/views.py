"""Template helpers shared by every blueprint: money, addresses, times, in the visitor's language.

Amounts stay exact (integers of the token's smallest unit, formatted from their digits, never
through float) and are written the way the visitor's locale writes them: ``1 234 567,50 ₸``
and ``1,5 ETH`` in Kazakh and Russian (no-break spaces, decimal comma, as CLDR gives for
``kk_KZ``/``ru_KZ``), ``1.5 ETH`` in English. Times are shown in the visitor's time zone
(Almaty's by default) with the zone named. Outside a request (no visitor) they read as before:
English, UTC.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, localcontext
from functools import lru_cache
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import sqlalchemy.exc
from babel import Locale
from babel import dates as babel_dates
from babel.numbers import get_decimal_symbol, get_group_symbol
from flask import (
    Flask,
    current_app,
    g,
    has_app_context,
    has_request_context,
    request,
    url_for,
)
from flask_babel import (
    format_date,
    get_timezone,
    gettext,
    ngettext,
    npgettext,
)
from markupsafe import Markup, escape
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from escrow.amounts import UINT256_DIGITS, AmountError, format_units, parse_units, show_units
from escrow.db.models import Listing, Trade, User
from webapp import header, phishing
from webapp.auth import current_address, current_user, dev_wallet_enabled
from webapp.i18n import per_request, request_locale, request_translations, zone_label

DECIMALS = {"ETH": 18, "USD": 6, "KZT": 2}
SYMBOLS = {"ETH": "ETH", "USD": "USD", "KZT": "₸"}
# The largest price a listing may ask, in whole tokens: far above anything sold person to
# person, low enough that a slip of several zeros is refused instead of published.
MAX_PRICE_ETH = 10_000
MAX_PRICE_USD = 10_000_000
MAX_PRICE_KZT = 5_000_000_000
MAX_PRICE_UNITS = {
    "ETH": MAX_PRICE_ETH * 10 ** DECIMALS["ETH"],
    "USD": MAX_PRICE_USD * 10 ** DECIMALS["USD"],
    "KZT": MAX_PRICE_KZT * 10 ** DECIMALS["KZT"],
}
#: Money written with the locale's currency pattern, with at least two decimals when not
#: whole (English keeps dollars as "1,234,567.5 USD", as its pages always showed them).
FIAT = {"USD", "KZT"}
#: The sign of each fiat currency in its pattern (CLDR's narrow symbols: ₸ and $).
FIAT_SIGNS = {"USD": "$", "KZT": "₸"}
#: Settings holding the tenge value of one whole token (webapp/config.py ``tenge_rates``).
TENGE_RATE_SETTINGS = {"ETH": "TENGE_PER_ETH", "USD": "TENGE_PER_USD"}
APPROX = "≈\u00a0"
ENGLISH = Locale.parse("en")


def current_locale() -> Locale:
    """The visitor's locale; English where there is no visitor (no request, a CLI)."""
    if not has_app_context():
        return ENGLISH
    try:
        locale = request_locale()
    except RuntimeError:  # an app context without a request: no session to ask
        return ENGLISH
    return locale or ENGLISH


def format_amount(amount: int | None, currency: str = "ETH", places: int | None = None) -> str:
    """``1500000000000000000, 'ETH'`` -> ``'1.5 ETH'`` (English), ``'1,5 ETH'`` (Kazakh,
    Russian); ``123456750, 'KZT'`` -> ``'1 234 567,50 ₸'`` (no-break spaces). Exact, never
    through float: ETH without trailing zeros, dollars and tenge whole or with two decimals
    (``'12.50 USD'``), or with every digit when the amount has a fraction of a cent. In
    English ETH and USD are written ``1,234,567.50 USD``; tenge and, in Kazakh and Russian,
    dollars follow the locale's currency pattern."""
    if amount is None:
        return "—"
    return _format_amount(int(amount), currency, places, current_locale())


#: Formatted amounts by (units, currency, places, locale): a page of listings formats the same
#: prices for every visitor, and Babel's symbol lookups are the costly part of a card.
@lru_cache(maxsize=16_384)
def _format_amount(amount: int, currency: str, places: int | None, locale: Locale) -> str:
    fiat = currency == "KZT" or (currency in FIAT and locale.language != "en")
    # Dollars and tenge show cents as cents (12.50) in every language; a sub-cent amount keeps
    # all its digits, since the amount shown must be the amount signed.
    number = _number(amount, DECIMALS.get(currency, 18), places, locale, currency in FIAT)
    if fiat:
        return _currency_pattern(number, FIAT_SIGNS[currency], locale)
    return f"{number} {SYMBOLS.get(currency, currency)}"


def _number(
    units: int, decimals: int, places: int | None, locale: Locale, fiat: bool = False
) -> str:
    """The digits of ``units`` with the locale's group and decimal symbols; a fiat amount
    that is not whole gets at least two decimals (``1,50``)."""
    whole, _, fraction = format_units(units, decimals, places).partition(".")
    if fiat and fraction:
        fraction = fraction.ljust(2, "0")
    whole = whole.replace(",", get_group_symbol(locale))
    return whole + (get_decimal_symbol(locale) + fraction if fraction else "")


def _currency_pattern(number: str, sign: str, locale: Locale) -> str:
    """``number`` placed in the locale's currency pattern (``#,##0.00 ¤`` in ru_KZ)."""
    pattern = locale.currency_formats["standard"]
    prefix, suffix = pattern.prefix[0], pattern.suffix[0]
    return prefix.replace("¤", sign) + number + suffix.replace("¤", sign)


def approx_tenge(amount: int | None, currency: str = "ETH") -> str:
    """``'≈ 1 234 567 ₸'`` (a no-break space after ≈): an ETH or USD amount in whole tenge at
    the configured rate (``TENGE_PER_ETH``, ``TENGE_PER_USD``); ``''`` without a rate, for
    tenge and for no amount. The rate is the site's setting, never fetched."""
    if amount is None or currency not in TENGE_RATE_SETTINGS or not has_app_context():
        return ""
    rate = _rate(current_app.config.get(TENGE_RATE_SETTINGS[currency]))
    if rate is None:
        return ""
    return APPROX + format_amount(_in_tenge(int(amount), currency, rate), "KZT")


@lru_cache(maxsize=16_384)
def _in_tenge(amount: int, currency: str, rate: Decimal) -> int:
    """``amount`` of ``currency`` in tenge units (whole tenge, rounded half up)."""
    with localcontext() as ctx:
        ctx.prec = UINT256_DIGITS
        tenge = (Decimal(int(amount)).scaleb(-DECIMALS[currency]) * rate).to_integral_value(
            ROUND_HALF_UP
        )
    return int(tenge) * 10 ** DECIMALS["KZT"]


def tenge_unit_rates() -> dict[str, float | None]:
    """The tenge value of one smallest unit of each currency at the site's rates (``None``
    where no rate is set), for ordering listings by price across currencies
    (``search.price_order``)."""
    rates: dict[str, float | None] = {"KZT": 10.0 ** -DECIMALS["KZT"]}
    for currency, setting in TENGE_RATE_SETTINGS.items():
        rate = _rate(current_app.config.get(setting))
        rates[currency] = float(rate.scaleb(-DECIMALS[currency])) if rate is not None else None
    return rates


@lru_cache(maxsize=64)
def _rate(value: Any) -> Decimal | None:
    if value in (None, ""):
        return None
    rate = Decimal(str(value))
    return rate if rate.is_finite() and rate > 0 else None


def tenge_rate_note() -> str:
    """``'Approximate, at the rate of 30 Nov 2026'`` for the title of an ``approx_tenge``
    hint; ``''`` when the rate's date is not set."""
    if not has_app_context():
        return ""
    # Once per request: a page of listings names it on every card.
    return per_request("_tenge_rate_note", _tenge_rate_note)


def _tenge_rate_note() -> str:
    day = current_app.config.get("TENGE_RATE_DATE")
    if isinstance(day, str):
        day = date.fromisoformat(day) if day else None
    if not isinstance(day, date):
        return ""
    return gettext("Approximate, at the rate of %(date)s", date=format_date(day, "medium"))


def to_units(text: str, currency: str) -> int:
    """Parses a user-typed price (``'1,25'``, ``'1 500.5'``) into the token's smallest unit,
    by the rules of ``escrow.amounts.parse_units``.

    Raises ``AmountError`` (a ``ValueError``); ``amount_error_text`` words it for the visitor.
    """
    return parse_units(
        text,
        DECIMALS.get(currency, 18),
        max_units=MAX_PRICE_UNITS.get(currency, MAX_PRICE_UNITS["ETH"]),
        noun="price",
        symbol=currency,
    )


def amount_error_text(exc: Exception) -> str:
    """The message of ``exc`` in the visitor's language: an ``AmountError``'s template
    translated and filled in, any other exception's own text."""
    if not isinstance(exc, AmountError):
        return str(exc)
    text = gettext(exc.template)
    return text % exc.params if exc.params else text


def amount_input_value(units: int | None, currency: str) -> str:
    """A price as an input field shows it for editing: ``'1 500,5'`` in Kazakh and Russian,
    ``'1 500.5'`` in English (narrow no-break spaces between thousands), always read back by
    ``to_units`` to the same units. Where the decimal comma would be unclear (``1,125`` could
    be thousands) the dot form is used. Never parse ``format_amount``'s text instead: in
    Russian ``'1,5 ETH'`` without its commas is 15."""
    if units is None:
        return ""
    decimals = DECIMALS.get(currency, 18)
    text = show_units(int(units), decimals)
    if "." in text and get_decimal_symbol(current_locale()) == ",":
        local = text.replace(".", ",")
        try:
            if parse_units(local, decimals, max_units=2**256 - 1) == int(units):
                return local
        except AmountError:
            pass
    return text


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
    """How people read a time: in the visitor's zone and language, with the zone named.

    ``'30 нояб. 2026 г., 19:55 (Алматы)'`` (ru), ``'2026 ж. 30 қар., 19:55 (Алматы)'`` (kk),
    ``'30 Nov 2026, 19:55 (Almaty)'`` (en); in UTC ``'30 Nov 2026, 14:55 UTC'``, which is also
    the form outside a request. The ISO form goes in attributes (``iso``)."""
    aware = as_utc(value)
    if aware is None:
        return "—"
    if not has_app_context():
        return aware.astimezone(UTC).strftime("%-d %b %Y, %H:%M UTC")
    locale = current_locale()
    return _zoned_text(aware, _date_time_pattern(locale), locale, _zone_name())


def clock(value: datetime | None) -> str:
    """A time of today or tomorrow, as ``when`` writes it without the date: ``'19:55
    (Almaty)'``, ``'19:55 (Алматы)'``; ``'14:55 UTC'`` in UTC or outside a request."""
    aware = as_utc(value)
    if aware is None:
        return "—"
    if not has_app_context():
        return aware.astimezone(UTC).strftime("%H:%M UTC")
    return _zoned_text(aware, "HH:mm", current_locale(), _zone_name())


def _zone_name() -> str:
    """The request's time zone by name (``Asia/Almaty``), looked up once per request."""

    def name() -> str:
        zone = get_timezone()
        return str(getattr(zone, "zone", None) or getattr(zone, "key", "") or zone)

    return per_request("_zone_name", name)


#: Times as shown, by (moment, pattern, locale, zone): pages list the same trades' times to
#: every visitor, and Babel's formatting is the costly part of a row.
@lru_cache(maxsize=32_768)
def _zoned_text(moment: datetime, pattern: str, locale: Locale, zone: str) -> str:
    """``moment`` in ``zone`` written by ``pattern`` in ``locale``, followed by the zone's name
    (``UTC`` or its city), as Flask-Babel's ``format_datetime`` writes it for the request."""
    text = babel_dates.format_datetime(
        moment, pattern, tzinfo=babel_dates.get_timezone(zone), locale=locale
    )
    label = zone_label(zone, str(locale))
    return f"{text} UTC" if label == "UTC" else f"{text} ({label})"


def day(value: datetime | None) -> str:
    """A date in the visitor's zone and language (``'30 нояб. 2026 г.'``, ``'30 Nov 2026'``)."""
    aware = as_utc(value)
    if aware is None:
        return "—"
    if not has_app_context():
        return aware.astimezone(UTC).strftime("%Y-%m-%d")
    return format_date(aware.astimezone(get_timezone()), "medium")


@lru_cache(maxsize=16)
def _date_time_pattern(locale: Locale) -> str:
    """The locale's medium date and short time (no seconds), joined as the locale joins
    them; English keeps the site's own ``30 Nov 2026, 14:55``."""
    if locale.language == "en":
        return "d MMM y, HH:mm"
    joined = str(locale.datetime_formats["medium"])
    date_part = locale.date_formats["medium"].pattern
    time_part = locale.time_formats["short"].pattern
    return joined.replace("{1}", date_part).replace("{0}", time_part)


# A unit's words alone ("3 days") and in "in …" / "… ago" (context "relative time"): they
# differ in Russian, where the latter take the accusative: 1 минута, but через 1 минуту.
def _day(n: int) -> str:
    return ngettext("%(num)d day", "%(num)d days", n)


def _hour(n: int) -> str:
    return ngettext("%(num)d hour", "%(num)d hours", n)


def _minute(n: int) -> str:
    return ngettext("%(num)d minute", "%(num)d minutes", n)


def _relative_day(n: int) -> str:
    return npgettext("relative time", "%(num)d day", "%(num)d days", n)


def _relative_hour(n: int) -> str:
    return npgettext("relative time", "%(num)d hour", "%(num)d hours", n)


def _relative_minute(n: int) -> str:
    return npgettext("relative time", "%(num)d minute", "%(num)d minutes", n)


#: (seconds in the unit, its words alone, its words in "in …" / "… ago")
UNITS = (
    (86400, _day, _relative_day),
    (3600, _hour, _relative_hour),
    (60, _minute, _relative_minute),
)


def duration_words(seconds: int | None) -> str:
    """``259200`` -> ``'3 days'``, ``93600`` -> ``'1 day 2 hours'``, ``3600`` -> ``'1 hour'``
    (``'3 дня'``, ``'1 день 2 часа'`` in Russian): the two largest units that are not zero."""
    if seconds is None:
        return "—"
    rest, parts = int(seconds), []
    for size, words, _ in UNITS:
        count, rest = divmod(rest, size)
        if count:
            parts.append(words(count))
    return " ".join(parts[:2]) or ngettext("%(num)d second", "%(num)d seconds", int(seconds))


def relative(value: datetime | None, now: datetime | None = None) -> str:
    """``'in 2 days 4 hours'`` / ``'2 days 4 hours ago'`` (``'через 2 дня 4 часа'`` /
    ``'2 дня 4 часа назад'``): how far ``value`` is from now, in the largest unit and the
    next one (whole units, rounded down); under a minute ``'in less than a minute'`` /
    ``'less than a minute ago'``. Also registered as the ``deadline_in`` filter."""
    aware = as_utc(value)
    if aware is None:
        return "—"
    seconds = int((aware - (as_utc(now) or datetime.now(UTC))).total_seconds())
    future = seconds > 0
    rest = abs(seconds)
    if rest < 60:
        return gettext("in less than a minute") if future else gettext("less than a minute ago")
    parts: list[str] = []
    for size, _, words in UNITS:
        count, rest = divmod(rest, size)
        if count or parts:
            parts.append(words(count) if count else "")
        if len(parts) == 2:
            break
    duration = " ".join(p for p in parts if p)
    if future:
        return gettext("in %(duration)s", duration=duration)
    return gettext("%(duration)s ago", duration=duration)


class CardSeller(NamedTuple):
    """The seller a listing card names."""

    address: str
    display_name: str | None


class Card(NamedTuple):
    """A listing as a card shows it (``listings/_card.html``, :func:`card_cache_key` and
    ``checkout.held_until`` read these and nothing else): a plain row of :data:`CARD_COLUMNS`,
    without an ORM object per listing. ``seller`` is a :class:`CardSeller` or a ``User``."""

    id: int
    title: str
    price: int
    currency: str
    photos: list[str]
    city: str | None
    reserved_by: str | None
    reserved_until: datetime | None
    seller: Any


#: The listing columns of a :class:`Card`, in its order (the seller comes apart).
CARD_COLUMNS = (
    Listing.id,
    Listing.title,
    Listing.price,
    Listing.currency,
    Listing.photos,
    Listing.city,
    Listing.reserved_by,
    Listing.reserved_until,
)


class Paged(NamedTuple):
    """One page of a counted list (:func:`counted_page`)."""

    rows: list[Any]
    page: int  # 1-based, never past the last page
    pages: int  # at least 1
    total: int


def counted_page(
    page: int,
    size: int,
    counted: Callable[[int], Sequence[Any]],
    uncounted: Callable[[int], Sequence[Any]],
    count: Callable[[], int | None],
) -> Paged:
    """The requested page of a list and the number of all its rows, in one statement when the
    page has rows. ``counted(skip)`` reads a page whose rows carry the count as ``total``;
    ``uncounted(skip)`` reads a page without it; ``count()`` counts. A page past the last one
    (an old link, a list that got shorter) shows the last page."""
    page = max(page, 1)
    rows = counted((page - 1) * size)
    if rows:
        total = int(rows[0].total)
    else:  # nothing at all, or a page past the last one: count, then read the last page
        total = int(count() or 0)
        if page > 1 and total:
            page = math.ceil(total / size)
            rows = uncounted((page - 1) * size)
    pages = max(1, math.ceil(total / size))
    return Paged(list(rows), min(page, pages), pages, total)


#: Changed with listings/_card.html's markup, so that a shared cache never serves old cards.
CARD_TEMPLATE_VERSION = 2


def card_cache_key(listing: Any, held: datetime | None) -> str:
    """The key of a listing card's rendered HTML (``listings/_card.html``): everything the card
    shows or depends on, so that a changed listing, seller name, hold, language, time zone or
    tenge rate makes a new key instead of a stale card; ``held`` is when the listing's
    checkout hold ends, if it is held now (``held_until``). ``repr`` of the tuple keeps the
    parts apart (Flask-Caching joins its keys with ``_``, which titles may contain)."""
    seller = listing.seller
    return repr(
        (
            CARD_TEMPLATE_VERSION,
            listing.id,
            listing.title,
            listing.price,
            listing.currency,
            listing.photos[0] if listing.photos else None,
            listing.city,
            seller.display_name,
            seller.address,
            iso(held),
            _page_setting_key(),
        )
    )


def _page_setting_key() -> tuple[str, ...]:
    """The request's language, time zone and tenge rates, read once per request."""

    def settings() -> tuple[str, ...]:
        config = current_app.config
        names = (*TENGE_RATE_SETTINGS.values(), "TENGE_RATE_DATE")
        return (
            str(current_locale()),
            str(get_timezone()),
            *(str(config.get(name)) for name in names),
        )

    return per_request("_card_settings", settings)


def _site_hosts() -> tuple[str, list[str]]:
    """The market's own host (``SITE_URL``) and its other names (``TRUSTED_HOSTS``)."""
    site = urlsplit(str(current_app.config.get("SITE_URL") or "")).netloc
    return site, [str(h) for h in current_app.config.get("TRUSTED_HOSTS") or ()]


def guarded(text: str) -> Markup:
    """A person's message as its reader sees it: escaped, risky parts (outside links, card
    numbers, payment requests: ``webapp/phishing.py``) masked, with a warning."""
    site, others = _site_hosts()
    return Markup(phishing.render(text or "", site, other_hosts=others))


def guarded_preview(text: str) -> str:
    """A one-line preview of a message, with the same parts masked."""
    site, others = _site_hosts()
    return phishing.preview(text or "", site, other_hosts=others)


#: Statements of every page's header, built once: building one costs more than SQLite's answer.
DISPLAY_NAME = select(User.display_name).where(User.address == bindparam("address"))


def party_name(address: str | None) -> str:
    """The name a party chose (their profile's display name), else their short address; names
    are looked up once per request for every address asked about."""
    if not address:
        return "—"
    names: dict[str, str | None] = per_request("_party_names", dict)
    if address not in names:
        from webapp import db

        if g.get("database_down"):
            return short_address(address)
        try:
            names[address] = db.session().scalar(DISPLAY_NAME, {"address": address})
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError):
            # The header names the visitor on every page, error pages about the database too.
            g.database_down = True
            return short_address(address)
    return names[address] or short_address(address)


#: Link arguments the fast path of ``link`` takes: numbers, hexadecimal addresses and plain
#: file paths, which a URL's path carries unchanged.
_PLAIN_ARGUMENT = re.compile(r"[A-Za-z0-9_.\-/]{1,200}")
#: Stand-ins for the argument while a link's shape is built: url_for keeps them as they are.
_INT_MARK = 987_654_321_987_654_321
_TEXT_MARK = "0xfeedface"
#: ``app.extensions`` key of the shapes ``link`` built, by (script root, endpoint, argument).
_LINK_SHAPES = "escrow_link_shapes"


def link(endpoint: str, **values: Any) -> str:
    """``url_for(endpoint, **values)``, faster for a link with no argument or with one number,
    address or file path in the URL's path: each such URL is built once per worker with a
    stand-in for the argument, and the argument is put in its place. url_for costs about ten
    microseconds; every page's header builds some twenty links, and a page of 25 cases a
    hundred. The app has no URL defaults or host matching, so a shape depends only on the
    endpoint and the site's root path."""
    if len(values) > 1:
        return url_for(endpoint, **values)
    if values:
        ((name, value),) = values.items()
        number = isinstance(value, int) and not isinstance(value, bool)
        text = str(value) if number else value
        if not isinstance(text, str) or not _PLAIN_ARGUMENT.fullmatch(text):
            return url_for(endpoint, **values)
    else:
        name, number, text = "", False, ""
    shapes: dict[tuple[str, str, str, bool], tuple[str, str] | None] = (
        current_app.extensions.setdefault(_LINK_SHAPES, {})
    )
    key = (request.script_root, endpoint, name, number)
    if key not in shapes:
        if not name:
            shapes[key] = (url_for(endpoint), "")
        else:
            mark = str(_INT_MARK) if number else _TEXT_MARK
            stand_in: dict[str, Any] = {name: _INT_MARK if number else _TEXT_MARK}
            head, found, tail = url_for(endpoint, **stand_in).partition(mark)
            # Only a stand-in in the path: a query string would encode the argument.
            plain = found and "?" not in head and mark not in tail
            shapes[key] = (head, tail) if plain else None
    shape = shapes[key]
    if shape is None:
        return url_for(endpoint, **values)
    return shape[0] + text + shape[1]


def party(address: str | None, role: str | None = None) -> Markup:
    """A person in a trade, by the name they chose (or their short address), linked to their
    public profile, with the full address on hover; ``role`` (buyer, seller...) after it."""
    if not address:
        return Markup("—")
    href, name = escape(link("profiles.profile", address=address)), escape(party_name(address))
    role_html = f' <span class="party-role">({escape(role)})</span>' if role else ""
    return Markup(f'<a class="party" href="{href}" title="{escape(address)}">{name}</a>{role_html}')


def trade_title(trade: Trade, bought: dict[str, Any] | None) -> str:
    """What the buyer bought: the title in the checkout snapshot ``bought``, else the listing's
    title now, else "Trade #id"."""
    return title_of(trade.id, bought, trade.listing.title if trade.listing is not None else None)


def title_of(trade_id: int, bought: dict[str, Any] | None, listing_title: str | None) -> str:
    """:func:`trade_title` from the parts: the snapshot's title, the listing's, "Trade #id"."""
    title = (bought or {}).get("title")
    if title:
        return str(title)
    if listing_title is not None:
        return listing_title
    return str(request_translations().ugettext("Trade #%(id)s")) % {"id": trade_id}


def bps_percent(bps: int | None) -> str:
    """``1250`` -> ``'12.5%'``, exactly."""
    if bps is None:
        return "—"
    whole, rest = divmod(int(bps), 100)
    return f"{whole}.{rest:02d}".rstrip("0").rstrip(".") + "%" if rest else f"{whole}%"


def register_template_helpers(app: Flask) -> None:
    app.jinja_env.filters["amount"] = format_amount
    app.jinja_env.filters["bps_percent"] = bps_percent
    app.jinja_env.filters["when"] = when
    app.jinja_env.filters["clock"] = clock
    app.jinja_env.filters["day"] = day
    app.jinja_env.filters["short_address"] = short_address
    app.jinja_env.filters["iso"] = iso
    app.jinja_env.filters["duration_words"] = duration_words
    app.jinja_env.filters["relative"] = relative
    app.jinja_env.filters["deadline_in"] = relative
    app.jinja_env.filters["approx_tenge"] = approx_tenge
    app.jinja_env.globals["tenge_rate_note"] = tenge_rate_note
    app.jinja_env.globals["card_cache_key"] = card_cache_key
    app.jinja_env.globals["guarded"] = guarded
    app.jinja_env.globals["party_name"] = party_name
    app.jinja_env.globals["party"] = party
    app.jinja_env.globals["link"] = link
    app.jinja_env.globals["trade_title"] = trade_title

    @app.context_processor
    def inject() -> dict[str, Any]:
        address = current_address()
        user, arbitrator = None, False
        if not g.get("database_down"):
            try:
                user = current_user()
                if address is not None:
                    from webapp import db

                    arbitrator = is_arbitrator(db.session(), address)
            except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError):
                # An error page about the database must not need the database.
                g.database_down = True
            if user is not None:
                # The header names the visitor: their account is loaded already.
                names: dict[str, str | None] = per_request("_party_names", dict)
                names.setdefault(user.address, user.display_name)
        return {
            "current_address": address,
            "current_user": user,
            "current_is_arbitrator": arbitrator,
            "dev_wallet": _dev_wallet_safe(),
        }


def is_arbitrator(session: Session, address: str) -> bool:
    """Whether ``address`` arbitrates any trade or has an arbitrator profile. For the visitor
    it is one of the header's figures (read once per request with them)."""
    if has_request_context() and address == current_address():
        user = current_user()
        return header.figures(session, address, user.id if user else None).is_arbitrator
    return bool(session.scalar(header.IS_ARBITRATOR, {"address": address}))


def _dev_wallet_safe() -> bool:
    try:
        return dev_wallet_enabled()
    except Exception:  # the chain being down must not break every page
        return False
