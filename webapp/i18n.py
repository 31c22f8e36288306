"""Languages and time zones: Kazakh, Russian and English with Flask-Babel.

The language of a request is, in order: the one the visitor chose with the switch in the
header (kept in the session, and in the profile of a signed-in user), the first of ours in
the browser's ``Accept-Language``, and Russian. Russian is the default because it is the
language the whole of Kazakhstan's second-hand market reads (OLX.kz and Kaspi open in it);
a browser that asks for Kazakh gets Kazakh. Times are shown in the user's zone, Almaty's by
default.

The page's JavaScript gets its messages from ``/i18n/<lang>.js`` (``webapp/languages.py``):
the same catalogue, served as data for the messages that ``webapp/static/js`` passes to
``gettext``/``ngettext``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any, TypeVar, cast

from babel import Locale
from babel.dates import get_timezone_location
from babel.messages.extract import extract_from_file
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.plural import to_javascript
from flask import Flask, current_app, g, request, session
from flask_babel import Babel, get_locale, get_translations, gettext
from jinja2 import pass_context
from jinja2.runtime import Context

#: Language code -> (locale used for formatting, the language's own name).
LANGUAGES: dict[str, tuple[str, str]] = {
    "kk": ("kk_KZ", "Қазақша"),
    "ru": ("ru_KZ", "Русский"),
    "en": ("en", "English"),
}
DEFAULT_LANGUAGE = "ru"
T = TypeVar("T")
DEFAULT_TIME_ZONE = "Asia/Almaty"
SESSION_KEY = "lang"
TRANSLATIONS_DIR = Path(__file__).resolve().parent / "translations"
JS_DIR = Path(__file__).resolve().parent / "static" / "js"
JS_KEYWORDS = {"gettext": None, "ngettext": (1, 2)}


def language() -> str:
    """The language code of the current request (``kk``, ``ru`` or ``en``)."""
    chosen = session.get(SESSION_KEY)
    if chosen in LANGUAGES:
        return str(chosen)
    from webapp.auth import current_user

    try:
        user = current_user()
    except Exception:  # no database: the page must still render
        user = None
    if user is not None and getattr(user, "locale", None) in LANGUAGES:
        return str(user.locale)
    best = request.accept_languages.best_match(list(LANGUAGES))
    return best or current_app.config.get("DEFAULT_LANGUAGE", DEFAULT_LANGUAGE)


def per_request(name: str, compute: Callable[[], T]) -> T:
    """``compute()`` worked out once per request and kept in ``g`` under ``name``; an
    exception is not kept, so the next call tries again."""
    try:
        return cast(T, getattr(g, name))
    except AttributeError:
        value = compute()
        setattr(g, name, value)
        return value


def request_translations() -> Any:
    """The request's catalogue, looked up once per request: Flask-Babel walks its contexts
    on every call, and a page of listings translates a hundred strings."""
    return per_request("_i18n_translations", get_translations)


def request_locale() -> Locale | None:
    """The request's Babel locale (Flask-Babel's ``get_locale``), looked up once per request."""
    return per_request("_i18n_locale", get_locale)


#: The template variable holding the page's catalogue (set by ``template_globals``).
CATALOGUE_VAR = "i18n_catalogue"


def _catalogue(context: Context) -> Any:
    """The page's catalogue from the template's context (one dictionary lookup), or the
    request's for a template rendered without it (a macro imported without context)."""
    return context.get(CATALOGUE_VAR) or request_translations()


@pass_context
def _template_gettext(context: Context, string: str) -> str:
    return str(_catalogue(context).ugettext(string))


@pass_context
def _template_ngettext(context: Context, singular: str, plural: str, n: int) -> str:
    return str(_catalogue(context).ungettext(singular, plural, n))


@pass_context
def _template_pgettext(context: Context, ctx: str, string: str) -> str:
    return str(_catalogue(context).upgettext(ctx, string))


@pass_context
def _template_npgettext(context: Context, ctx: str, singular: str, plural: str, n: int) -> str:
    return str(_catalogue(context).unpgettext(ctx, singular, plural, n))


def _install_jinja_gettext(app: Flask) -> None:
    """The templates' ``_``/``gettext``/``ngettext`` read the page's catalogue from the
    template context, put there once per page, instead of Flask-Babel's callables, which look
    the catalogue up through the request's globals for each of a page's hundred strings."""
    app.jinja_env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=_template_gettext,
        ngettext=_template_ngettext,
        newstyle=True,
        pgettext=_template_pgettext,
        npgettext=_template_npgettext,
    )


def select_locale() -> str:
    return LANGUAGES[language()][0]


def select_timezone() -> str:
    from webapp.auth import current_user

    try:
        user = current_user()
    except Exception:
        user = None
    zone = getattr(user, "time_zone", None) if user is not None else None
    return zone or current_app.config.get("DEFAULT_TIME_ZONE", DEFAULT_TIME_ZONE)


def compile_catalogues(directory: Path = TRANSLATIONS_DIR) -> list[Path]:
    """Writes ``messages.mo`` next to every ``messages.po`` that is newer (what ``make
    install`` runs; the app runs it too, so a fresh checkout never serves stale texts)."""
    written = []
    for po_path in sorted(directory.glob("*/LC_MESSAGES/messages.po")):
        mo_path = po_path.with_suffix(".mo")
        if mo_path.is_file() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        with po_path.open("rb") as handle:
            catalog = read_po(handle, locale=po_path.parent.parent.name)
        tmp = mo_path.with_suffix(f".mo.{id(catalog)}.tmp")
        with tmp.open("wb") as out:
            write_mo(out, catalog, use_fuzzy=False)
        tmp.replace(mo_path)
        written.append(mo_path)
    return written


@cache
def js_messages() -> tuple[tuple[str, str | None], ...]:
    """(singular, plural) of every message the JavaScript files translate."""
    found: dict[tuple[str, str | None], None] = {}
    for path in sorted(JS_DIR.glob("*.js")):
        for _, message, _, _ in extract_from_file("javascript", str(path), JS_KEYWORDS):
            if isinstance(message, tuple):
                found[(message[0], message[1])] = None
            else:
                found[(message, None)] = None
    return tuple(found)


def js_catalogue(lang: str) -> str:
    """The JavaScript that defines ``window.I18N``: messages and the plural rule."""
    messages: dict[str, Any] = {}
    for singular, plural in js_messages():
        if plural is None:
            messages[singular] = gettext(singular)
        else:
            # The forms for n = the CLDR sample of each category are enough for the client:
            # it picks one with the plural function below.
            # The raw forms (placeholders kept) for a number of each plural category; the
            # client picks one with the plural function below and fills it in.
            locale = Locale.parse(LANGUAGES[lang][0])
            translations = get_translations()
            messages[singular] = [
                translations.ngettext(singular, plural, sample)
                for sample in _plural_samples(locale)
            ]
    locale = Locale.parse(LANGUAGES[lang][0])
    categories = [tag for tag, _ in _plural_categories(locale)]
    return (
        "window.I18N = "
        + json.dumps(
            {"lang": lang, "messages": messages, "categories": categories},
            ensure_ascii=False,
            sort_keys=True,
        )
        + ";\nwindow.I18N.plural = "
        + to_javascript(locale.plural_form)
        + ";\n"
    )


def _plural_categories(locale: Locale) -> list[tuple[str, int]]:
    """(CLDR category, an integer in it) for each category of the locale's plural rule."""
    samples = {"one": 1, "few": 2, "many": 5, "other": 5, "zero": 0, "two": 2}
    rule = locale.plural_form
    # ``rule.tags`` names the categories with a rule; "other" (everything else) has none.
    tags = set(rule.tags) | {"other"}
    order = [tag for tag in ("zero", "one", "two", "few", "many", "other") if tag in tags]
    out: list[tuple[str, int]] = []
    for tag in order:
        number = next((n for n in range(0, 200) if rule(n) == tag), samples[tag])
        out.append((tag, number))
    return out


def _plural_samples(locale: Locale) -> list[int]:
    return [n for _, n in _plural_categories(locale)]


def template_globals() -> dict[str, Any]:
    lang = language()
    zone = select_timezone()
    return {
        CATALOGUE_VAR: request_translations(),
        "languages": [(code, name) for code, (_, name) in LANGUAGES.items()],
        "current_language": lang,
        "html_lang": lang,
        # For the page's scripts, which write times the way the server does.
        "time_zone": zone,
        "zone_label": zone_label(zone, LANGUAGES[lang][0]),
    }


#: Zones a user can pick for the times they see (all of Kazakhstan keeps Almaty's time).
TIME_ZONES = (
    "Asia/Almaty",
    "Asia/Tashkent",
    "Asia/Bishkek",
    "Europe/Moscow",
    "Europe/Istanbul",
    "Asia/Dubai",
    "Europe/Berlin",
    "Europe/London",
    "UTC",
)


def time_zone_choices() -> list[tuple[str, str]]:
    """(zone, "City (GMT+05:00)") in the page's language, for the profile's time zone menu."""
    from babel.dates import get_timezone, get_timezone_gmt

    locale = LANGUAGES[language()][0]
    out = []
    for zone in TIME_ZONES:
        city = zone_label(zone, locale)
        if zone == "UTC":
            out.append((zone, "UTC"))
            continue
        offset = get_timezone_gmt(datetime.now(get_timezone(zone)), width="long", locale=locale)
        out.append((zone, f"{city} ({offset})"))
    return out


#: Names of the zone without an offset: times in it are followed by "UTC", not a city.
UTC_ZONES = {"UTC", "Etc/UTC", "Etc/GMT", "GMT", "Universal", "Zulu"}


def zone_label(zone: str, locale: str) -> str:
    """How a time zone is named after a time: its city (``Алматы``), or ``UTC``."""
    if zone in UTC_ZONES:
        return "UTC"
    try:
        return str(get_timezone_location(zone, locale=locale, return_city=True))
    except (LookupError, ValueError):
        return zone


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS_DIR))
    app.config.setdefault("BABEL_DEFAULT_LOCALE", LANGUAGES[DEFAULT_LANGUAGE][0])
    app.config.setdefault("BABEL_DEFAULT_TIMEZONE", "UTC")
    compile_catalogues()
    Babel(app, locale_selector=select_locale, timezone_selector=select_timezone)
    _install_jinja_gettext(app)
    app.context_processor(template_globals)


__all__ = ["LANGUAGES", "get_locale", "init_app", "language"]
