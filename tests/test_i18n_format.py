"""Money and time in the visitor's language: tenge, ETH and dollars written as each locale
writes them (exact to the last wei), times in the visitor's zone with the zone named, plural
forms of Russian and Kazakh, the ≈ ₸ hint, and amount errors translated.

The app here reads the market's own catalogues (``webapp/translations``)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_file
from babel.messages.pofile import read_po
from flask import Flask, g, render_template_string
from flask_babel import force_locale

from escrow.amounts import AmountError, format_units
from escrow.db.engine import upgrade
from web_fixtures import app_settings
from webapp import create_app
from webapp.config import tenge_rates
from webapp.views import (
    amount_error_text,
    amount_input_value,
    approx_tenge,
    duration_words,
    format_amount,
    relative,
    tenge_rate_note,
    tenge_unit_rates,
    to_units,
    when,
)

ROOT = Path(__file__).resolve().parents[1]
TRANSLATIONS = ROOT / "webapp" / "translations"
SOURCES = [ROOT / "webapp" / "views.py", ROOT / "escrow" / "amounts.py"]
NBSP, NNBSP = "\u00a0", "\u202f"
ETH = 10**18
USD = 10**6
TENGE = 10**2
DAY, HOUR, MINUTE = 86400, 3600, 60
RU, KK, EN = "ru_KZ", "kk_KZ", "en"
NOON_UTC = datetime(2026, 11, 30, 14, 55, 4, tzinfo=UTC)  # 19:55 in Almaty (UTC+5)
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


# ---------------------------------------------------------------------------- fixtures


def _messages_of_the_sources() -> list[tuple[str | None, str, str | None]]:
    """(context, msgid, plural) of every message views.py and amounts.py mark."""
    keywords = {**DEFAULT_KEYWORDS, "lazy_gettext": None}
    found: list[tuple[str | None, str, str | None]] = []
    for path in SOURCES:
        for _, message, _, context in extract_from_file("python", str(path), keywords):
            if isinstance(message, tuple):
                found.append((context, message[0], message[1]))
            else:
                found.append((context, message, None))
    return found


def _catalog(lang: str) -> Catalog:
    with (TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        return read_po(handle, locale=lang)


@pytest.fixture(scope="module")
def catalogues() -> Path:
    """The market's catalogues (the app compiles their .mo files when it starts)."""
    return TRANSLATIONS


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, catalogues: Path) -> Iterator[Flask]:
    """One app for the module (nothing here writes to its database)."""
    folder = tmp_path_factory.mktemp("app")
    url = f"sqlite:///{folder / 'web.sqlite3'}"
    upgrade(url)
    app = create_app(
        app_settings(
            url,
            folder,
            BABEL_TRANSLATION_DIRECTORIES=str(catalogues),
            TENGE_PER_ETH=Decimal("1500000"),
            TENGE_PER_USD=Decimal("500.25"),
            TENGE_RATE_DATE=date(2026, 11, 30),
        )
    )
    yield app
    app.extensions["escrow_engine"].dispose()


def in_locale(app: Flask, locale: str, fn: Any, *args: Any) -> Any:
    with app.app_context(), force_locale(locale):
        return fn(*args)


def in_request(app: Flask, locale: str, fn: Any, *args: Any, zone: str | None = None) -> Any:
    """Calls ``fn`` during a request by a visitor in ``locale`` (and time zone ``zone``)."""
    with app.test_request_context("/"):
        g.current_user = SimpleNamespace(time_zone=zone, locale=None) if zone else None
        with force_locale(locale):
            return fn(*args)


# ---------------------------------------------------------------------------- the catalogue


def test_every_message_has_russian_and_kazakh() -> None:
    """Each message views.py and amounts.py mark is translated in the shipped catalogues,
    every plural form, with the English text's placeholders."""
    for lang, forms in (("ru", 3), ("kk", 2)):
        catalog = _catalog(lang)
        for context, msgid, plural in _messages_of_the_sources():
            message = catalog.get(msgid, context=context)
            assert message is not None, (lang, context, msgid)
            texts = list(message.string) if plural else [message.string]
            assert len(texts) == (forms if plural else 1), (msgid, lang)
            for text in texts:
                assert text and text != msgid, (msgid, lang)
                assert set(PLACEHOLDER.findall(text)) <= set(PLACEHOLDER.findall(msgid)) | {
                    "num"
                }, (msgid, lang, text)


def test_kazakh_is_written_with_its_own_letters() -> None:
    catalog = _catalog("kk")
    texts = []
    for context, msgid, _ in _messages_of_the_sources():
        message = catalog.get(msgid, context=context)
        assert message is not None, msgid
        texts.extend(message.string if isinstance(message.string, tuple) else [message.string])
    assert set("әғқңөұүі") <= set(" ".join(texts).lower())


# ---------------------------------------------------------------------------- money


@pytest.mark.parametrize("locale", [RU, KK])
def test_tenge_in_kazakh_and_russian(app: Flask, locale: str) -> None:
    shown = in_locale(app, locale, format_amount, 123_456_750, "KZT")
    assert shown == f"1{NBSP}234{NBSP}567,50{NBSP}₸"
    assert in_locale(app, locale, format_amount, 25_000 * TENGE, "KZT") == f"25{NBSP}000{NBSP}₸"
    assert in_locale(app, locale, format_amount, 5, "KZT") == f"0,05{NBSP}₸"


def test_tenge_in_english(app: Flask) -> None:
    assert in_locale(app, EN, format_amount, 123_456_750, "KZT") == "₸1,234,567.50"


@pytest.mark.parametrize(
    ("locale", "units", "shown"),
    [
        (RU, 15 * 10**17, "1,5 ETH"),
        (KK, 15 * 10**17, "1,5 ETH"),
        (EN, 15 * 10**17, "1.5 ETH"),
        (RU, 1_234_500 * 10**15, f"1{NBSP}234,5 ETH"),
        (EN, 1_234_500 * 10**15, "1,234.5 ETH"),
        (RU, 125 * 10**15, "0,125 ETH"),
        (RU, 2 * ETH, "2 ETH"),
    ],
)
def test_ether_per_locale(app: Flask, locale: str, units: int, shown: str) -> None:
    assert in_locale(app, locale, format_amount, units, "ETH") == shown


@pytest.mark.parametrize(
    ("locale", "units", "shown"),
    [
        (RU, 1_234_567_500_000, f"1{NBSP}234{NBSP}567,50{NBSP}$"),
        (KK, 1_234_567_500_000, f"1{NBSP}234{NBSP}567,50{NBSP}$"),
        (RU, 25 * USD, f"25{NBSP}$"),
        (KK, 1, f"0,000001{NBSP}$"),  # all six decimals of the token, none rounded away
        (EN, 1_234_567_500_000, "1,234,567.50 USD"),  # cents as cents, in English too
        (EN, 1_234_567 * USD, "1,234,567 USD"),
        (EN, 12_050_000, "12.05 USD"),
        (EN, 12_345_000, "12.345 USD"),  # a fraction of a cent: every digit, none rounded
        (EN, 1, "0.000001 USD"),
        (RU, 12_345_600, f"12,3456{NBSP}$"),
    ],
)
def test_dollars_per_locale(app: Flask, locale: str, units: int, shown: str) -> None:
    assert in_locale(app, locale, format_amount, units, "USD") == shown


@pytest.mark.parametrize("locale", [RU, KK, EN])
def test_eighteen_decimals_stay_exact(app: Flask, locale: str) -> None:
    for units in (1, 10**18 + 1, 2**256 - 1, 123_456_789_012_345_678_901_234_567_890):
        shown = in_locale(app, locale, format_amount, units, "ETH")
        digits = re.sub(r"\D", "", shown)
        assert digits.lstrip("0") == re.sub(r"\D", "", format_units(units, 18)).lstrip("0")
    wei = in_locale(app, locale, format_amount, 1, "ETH")
    assert wei == ("0.000000000000000001 ETH" if locale == EN else "0,000000000000000001 ETH")


def test_places_and_nothing(app: Flask) -> None:
    assert in_locale(app, RU, format_amount, 1_234_567 * 10**12, "ETH", 3) == "1,235 ETH"
    assert in_locale(app, RU, format_amount, None, "KZT") == "—"


def test_without_a_visitor_amounts_read_in_english(app: Flask) -> None:
    assert format_amount(15 * 10**17, "ETH") == "1.5 ETH"
    with app.app_context():  # no request, no forced locale: nobody to ask
        assert format_amount(1_234_567 * USD, "USD") == "1,234,567 USD"


def test_a_russian_page_shows_tenge(app: Flask) -> None:
    with app.test_request_context("/", headers={"Accept-Language": "ru"}):
        assert format_amount(123_456_750, "KZT") == f"1{NBSP}234{NBSP}567,50{NBSP}₸"
        assert format_amount(15 * 10**17, "ETH") == "1,5 ETH"


@pytest.mark.parametrize(
    ("locale", "units", "currency", "shown"),
    [
        (RU, 15 * 10**17, "ETH", "1,5"),
        (EN, 15 * 10**17, "ETH", "1.5"),
        (KK, 123_456_750, "KZT", f"1{NNBSP}234{NNBSP}567,5"),
        (RU, 1_125 * 10**15, "ETH", "1.125"),  # "1,125" could be thousands: the dot form
        (RU, 1_500 * USD, "USD", f"1{NNBSP}500"),
    ],
)
def test_amount_input_value_reads_back(
    app: Flask, locale: str, units: int, currency: str, shown: str
) -> None:
    assert in_locale(app, locale, amount_input_value, units, currency) == shown
    assert to_units(shown, currency) == units


# ---------------------------------------------------------------------------- ≈ tenge


def test_approx_tenge_at_the_configured_rate(app: Flask) -> None:
    # 1.5 ETH at 1 500 000 ₸; 25 USD at 500.25 ₸ = 12 506.25, rounded to whole tenge
    assert in_locale(app, RU, approx_tenge, 15 * 10**17, "ETH") == (
        f"≈{NBSP}2{NBSP}250{NBSP}000{NBSP}₸"
    )
    assert in_locale(app, KK, approx_tenge, 25 * USD, "USD") == f"≈{NBSP}12{NBSP}506{NBSP}₸"
    assert in_locale(app, EN, approx_tenge, 15 * 10**17, "ETH") == f"≈{NBSP}₸2,250,000"
    # exact: one wei more than half a tenge's worth rounds up, never through float
    half_tenge = ETH // 3_000_000  # 0.5 ₸ minus a fraction of a wei's worth
    assert in_locale(app, RU, approx_tenge, half_tenge + 1, "ETH") == f"≈{NBSP}1{NBSP}₸"


def test_approx_tenge_is_empty_without_a_rate(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    assert in_locale(app, RU, approx_tenge, 123_456_750, "KZT") == ""
    assert in_locale(app, RU, approx_tenge, None, "ETH") == ""
    monkeypatch.setitem(app.config, "TENGE_PER_USD", None)
    assert in_locale(app, RU, approx_tenge, 25 * USD, "USD") == ""
    monkeypatch.setitem(app.config, "TENGE_PER_ETH", "0")
    assert in_locale(app, RU, approx_tenge, ETH, "ETH") == ""
    assert approx_tenge(ETH, "ETH") == ""  # no app at all


def test_rate_note_names_the_day(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    assert in_locale(app, RU, tenge_rate_note) == f"Примерно, по курсу на 30 нояб. 2026{NNBSP}г."
    assert in_locale(app, EN, tenge_rate_note) == "Approximate, at the rate of Nov 30, 2026"
    monkeypatch.setitem(app.config, "TENGE_RATE_DATE", None)
    assert in_locale(app, RU, tenge_rate_note) == ""


def test_rates_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESCROW_TENGE_PER_ETH", "1 650 000.5")
    monkeypatch.setenv("ESCROW_TENGE_PER_USD", "")
    monkeypatch.setenv("ESCROW_TENGE_RATE_DATE", "2026-11-29")
    assert tenge_rates() == {
        "TENGE_PER_ETH": Decimal("1650000.5"),
        "TENGE_PER_USD": None,
        "TENGE_RATE_DATE": date(2026, 11, 29),
    }
    monkeypatch.delenv("ESCROW_TENGE_PER_ETH")
    monkeypatch.delenv("ESCROW_TENGE_PER_USD")
    defaults = tenge_rates()
    assert defaults["TENGE_PER_ETH"] > 0 and defaults["TENGE_PER_USD"] > 0
    for bad in ("abc", "-5", "NaN"):
        monkeypatch.setenv("ESCROW_TENGE_PER_USD", bad)
        with pytest.raises(ValueError, match="ESCROW_TENGE_PER_USD"):
            tenge_rates()
    monkeypatch.setenv("ESCROW_TENGE_PER_USD", "520")
    monkeypatch.setenv("ESCROW_TENGE_RATE_DATE", "30.11.2026")
    with pytest.raises(ValueError, match="ESCROW_TENGE_RATE_DATE"):
        tenge_rates()


# ---------------------------------------------------------------------------- plurals


@pytest.mark.parametrize(
    ("days", "russian"),
    [
        (1, "1 день"),
        (2, "2 дня"),
        (5, "5 дней"),
        (11, "11 дней"),
        (21, "21 день"),
        (22, "22 дня"),
        (25, "25 дней"),
    ],
)
def test_russian_days(app: Flask, days: int, russian: str) -> None:
    assert in_locale(app, RU, duration_words, days * DAY) == russian


@pytest.mark.parametrize(
    ("count", "hours", "minutes", "seconds"),
    [
        (0, "0 часов", "0 минут", "0 секунд"),
        (1, "1 час", "1 минута", "1 секунда"),
        (2, "2 часа", "2 минуты", "2 секунды"),
        (5, "5 часов", "5 минут", "5 секунд"),
        (11, "11 часов", "11 минут", "11 секунд"),
        (21, "21 час", "21 минута", "21 секунда"),
        (22, "22 часа", "22 минуты", "22 секунды"),
        (25, "25 часов", "25 минут", "25 секунд"),
    ],
)
def test_russian_plural_forms(
    app: Flask, count: int, hours: str, minutes: str, seconds: str
) -> None:
    from webapp.views import _hour, _minute

    assert in_locale(app, RU, _hour, count) == hours
    assert in_locale(app, RU, _minute, count) == minutes
    if count < 60:
        assert in_locale(app, RU, duration_words, count) == seconds


@pytest.mark.parametrize(
    ("seconds", "kazakh"),
    [(DAY, "1 күн"), (2 * DAY, "2 күн"), (HOUR, "1 сағат"), (2 * HOUR, "2 сағат")],
)
def test_kazakh_one_and_other(app: Flask, seconds: int, kazakh: str) -> None:
    assert in_locale(app, KK, duration_words, seconds) == kazakh


def test_duration_words_in_each_language(app: Flask) -> None:
    assert in_locale(app, EN, duration_words, DAY + 2 * HOUR) == "1 day 2 hours"
    assert in_locale(app, RU, duration_words, DAY + 2 * HOUR) == "1 день 2 часа"
    assert in_locale(app, KK, duration_words, 3 * DAY + 30 * MINUTE) == "3 күн 30 минут"
    assert duration_words(3 * DAY) == "3 days"  # no app: English
    assert duration_words(None) == "—"


# ---------------------------------------------------------------------------- relative times

SOON = 2 * DAY + 4 * HOUR + 59


@pytest.mark.parametrize(
    ("locale", "offset", "shown"),
    [
        (EN, SOON, "in 2 days 4 hours"),
        (EN, -SOON, "2 days 4 hours ago"),
        (RU, SOON, "через 2 дня 4 часа"),
        (RU, -SOON, "2 дня 4 часа назад"),
        (KK, SOON, "2 күн 4 сағат қалды"),
        (KK, -SOON, "2 күн 4 сағат бұрын"),
        # Russian "in …" / "… ago" take the accusative: минуту, not минута
        (RU, MINUTE, "через 1 минуту"),
        (RU, -21 * MINUTE, "21 минуту назад"),
        (RU, 22 * MINUTE, "через 22 минуты"),
        (RU, 25 * MINUTE, "через 25 минут"),
        (RU, HOUR + MINUTE, "через 1 час 1 минуту"),
        (RU, 21 * HOUR, "через 21 час"),
        (EN, DAY + MINUTE, "in 1 day"),  # the largest unit and the next one only
        (EN, 5 * MINUTE, "in 5 minutes"),
        (EN, 30, "in less than a minute"),
        (EN, -30, "less than a minute ago"),
        (RU, 30, "меньше чем через минуту"),
        (KK, -30, "жаңа ғана"),
    ],
)
def test_relative(app: Flask, locale: str, offset: int, shown: str) -> None:
    assert in_locale(app, locale, relative, NOON_UTC + timedelta(seconds=offset), NOON_UTC) == (
        shown
    )


def test_relative_from_now_and_naive_means_utc(app: Flask) -> None:
    later = datetime.now(UTC).replace(tzinfo=None) + timedelta(days=3, minutes=1)
    assert in_locale(app, EN, relative, later) == "in 3 days"
    assert relative(None) == "—"


# ---------------------------------------------------------------------------- times


@pytest.mark.parametrize(
    ("locale", "shown"),
    [
        (RU, f"30 нояб. 2026{NNBSP}г., 19:55 (Алматы)"),
        (KK, f"2026{NNBSP}ж. 30 қар., 19:55 (Алматы)"),
        (EN, "30 Nov 2026, 19:55 (Almaty)"),
    ],
)
def test_times_are_shown_in_almaty(app: Flask, locale: str, shown: str) -> None:
    assert in_request(app, locale, when, NOON_UTC) == shown


@pytest.mark.parametrize(
    ("zone", "locale", "shown"),
    [
        ("Europe/Moscow", RU, f"30 нояб. 2026{NNBSP}г., 17:55 (Москва)"),
        ("Asia/Tokyo", EN, "30 Nov 2026, 23:55 (Tokyo)"),
        ("America/New_York", KK, f"2026{NNBSP}ж. 30 қар., 09:55 (Нью-Йорк)"),
        ("UTC", EN, "30 Nov 2026, 14:55 UTC"),
    ],
)
def test_times_in_the_users_zone(app: Flask, zone: str, locale: str, shown: str) -> None:
    assert in_request(app, locale, when, NOON_UTC, zone=zone) == shown


def test_day_changes_with_the_zone(app: Flask) -> None:
    late = datetime(2026, 12, 31, 20, 30, tzinfo=UTC)  # already 1 January in Almaty
    assert in_request(app, EN, when, late) == "1 Jan 2027, 01:30 (Almaty)"
    naive = late.replace(tzinfo=None)  # naive means UTC
    assert in_request(app, EN, when, naive) == "1 Jan 2027, 01:30 (Almaty)"


def test_without_a_visitor_times_read_in_utc() -> None:
    assert when(NOON_UTC) == "30 Nov 2026, 14:55 UTC"
    assert when(None) == "—"


# ---------------------------------------------------------------------------- filters


def test_the_filters_are_registered(app: Flask) -> None:
    source = (
        "{{ t|when }} | {{ t|relative(now) }} | {{ t|deadline_in(now) }} | "
        "{{ 93600|duration_words }} | {{ 150|amount('KZT') }} | "
        "{{ wei|approx_tenge('ETH') }} | {{ tenge_rate_note() }} | {{ t|iso }}"
    )
    with app.test_request_context("/"):
        g.current_user = None
        with force_locale(RU):
            shown = render_template_string(
                source, t=NOON_UTC, now=NOON_UTC - timedelta(hours=3), wei=ETH
            )
    assert shown.split(" | ") == [
        f"30 нояб. 2026{NNBSP}г., 19:55 (Алматы)",
        "через 3 часа",
        "через 3 часа",
        "1 день 2 часа",
        f"1,50{NBSP}₸",
        f"≈{NBSP}1{NBSP}500{NBSP}000{NBSP}₸",
        f"Примерно, по курсу на 30 нояб. 2026{NNBSP}г.",
        "2026-11-30T14:55:04+00:00",
    ]


# ---------------------------------------------------------------------------- amount errors


@pytest.mark.parametrize(
    ("text", "currency", "russian", "kazakh"),
    [
        (
            "1,500",
            "ETH",
            "1,500 можно понять и как 1500, и как 1,5: напишите 1500 или 1,5.",
            "1,500 деген 1500 не 1,5 болуы мүмкін: оның орнына 1500 немесе 1,5 деп жазыңыз.",
        ),
        ("abc", "KZT", "Введите цену числом, например 1,5, 1 500 или 12.75.", None),
        ("", "KZT", "Введите цену.", "Бағаны енгізіңіз."),
        (
            "12,505",
            "USD",
            "12,505 можно понять и как 12505, и как 12.505: напишите 12505 или 12.505.",
            None,
        ),
        (
            "1.005",
            "KZT",
            "В ценах в KZT знаков после запятой не больше 2.",
            "KZT бағаларында үтірден кейін ең көбі 2 таңба болады.",
        ),
        (
            "6 000 000 000",
            "KZT",
            f"Цена слишком большая: не больше 5{NNBSP}000{NNBSP}000{NNBSP}000 KZT.",
            f"Баға тым үлкен: ең көбі 5{NNBSP}000{NNBSP}000{NNBSP}000 KZT.",
        ),
        ("-1", "ETH", "Цена должна быть больше нуля: напишите её без знака минус.", None),
        (
            ",5",
            "ETH",
            "Поставьте цифру перед «,», например 0,5.",
            "«,» алдына цифр жазыңыз, мысалы 0,5.",
        ),
    ],
)
def test_amount_errors_in_russian_and_kazakh(
    app: Flask, text: str, currency: str, russian: str, kazakh: str | None
) -> None:
    with pytest.raises(AmountError) as info:
        to_units(text, currency)
    assert in_locale(app, RU, amount_error_text, info.value) == russian
    if kazakh is not None:
        assert in_locale(app, KK, amount_error_text, info.value) == kazakh
    assert in_locale(app, EN, amount_error_text, info.value) == str(info.value)


def test_other_errors_keep_their_text(app: Flask) -> None:
    assert in_locale(app, RU, amount_error_text, ValueError("Enter a price.")) == "Enter a price."


def test_tenge_prices_parse_with_a_decimal_comma() -> None:
    assert to_units("1 234 567,50", "KZT") == 123_456_750
    assert to_units(f"1{NBSP}234{NBSP}567,5", "KZT") == 123_456_750
    assert to_units("12,5", "KZT") == 1250
    assert to_units("5 000 000 000", "KZT") == 5_000_000_000 * TENGE


def test_tenge_per_smallest_unit_for_the_price_order(app: Flask) -> None:
    """search.price_order compares listings by these: 1 ETH and 1 USD at the site's rates,
    one tiyn for tenge, nothing for a currency without a rate."""
    with app.app_context():
        saved = dict(app.config)
        try:
            app.config.update(TENGE_PER_ETH="1500000", TENGE_PER_USD="500")
            rates = tenge_unit_rates()
            assert rates["ETH"] is not None and rates["USD"] is not None
            assert rates["ETH"] * ETH == pytest.approx(1_500_000)
            assert rates["USD"] * USD == pytest.approx(500)
            assert rates["KZT"] == pytest.approx(0.01)
            app.config["TENGE_PER_USD"] = ""
            assert tenge_unit_rates()["USD"] is None
        finally:
            app.config.clear()
            app.config.update(saved)
