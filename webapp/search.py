"""Listing search: Unicode case-insensitive substring search over title, description and city,
on the database's own indexes.

* SQLite: the FTS5 table ``listings_search`` (trigram tokenizer, ``case_sensitive 0``: its
  folding covers Cyrillic and Kazakh letters) holds the listings' title, description and city
  as an external-content index kept in step by triggers (migration 0011). A word of three or
  more characters is a quoted FTS5 phrase, which with trigrams is an exact substring match.
* PostgreSQL: the stored generated column ``listings.search_text`` =
  ``lower(title || ' ' || description || ' ' || city)`` with a pg_trgm GIN index (migration
  0011); a word is ``search_text LIKE lower('%word%')``, lower-cased by the database's own
  ``lower()``. The database's LC_CTYPE must be a UTF-8 locale (``C.UTF-8``, ``ru_RU.UTF-8``…):
  in the plain ``C`` locale ``lower()`` leaves Cyrillic alone.

Words shorter than three characters have no trigram to look up, so they are matched by a scan
(SQLite: ``instr`` with each upper/lower-case variant of the word, since SQLite's own
``lower``/``LIKE`` fold ASCII only; PostgreSQL: the same ``LIKE``, without the index). On
10,000 listings that scan is the slow case on SQLite (about 30-45 ms for the count).

A query is split into words; a listing matches when it contains every word (AND). A word that
names a city or a brand (:mod:`webapp.cities`) matches any of its spellings (OR): "Almaty" finds
"Алматы", "айфон" finds "iPhone". User text never reaches SQL as syntax: LIKE wildcards are
escaped and FTS5 words are always quoted phrases, so ``"``, ``*``, ``AND`` or ``%`` are searched
for as text.

Typical use (the listings index)::

    query = apply_search(select(Listing), session, "айфон Алматы")

Price order across currencies (``price_order``): listings in ETH, USD and tenge are ordered by
their approximate tenge value at the site's rates, so "Price: low to high" mixes them as a
buyer compares them.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Float,
    Select,
    String,
    and_,
    bindparam,
    case,
    cast,
    column,
    false,
    func,
    literal_column,
    or_,
    select,
    table,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from escrow.db.models import Listing
from webapp.cities import city_spellings, expand_word

#: The FTS5 table of migration 0011 (SQLite).
FTS_TABLE = "listings_search"
#: The generated column of migration 0011 (PostgreSQL).
PG_COLUMN = "search_text"
#: A trigram index needs words of at least this many characters.
MIN_INDEXED = 3
#: Longer queries are cut (the index view already cuts at 100 characters).
MAX_QUERY_CHARS = 256
#: At most this many words are searched for; more add cost and hardly narrow anything.
MAX_WORDS = 8
#: Characters trimmed from either end of a word ("Алматы," is "Алматы"), unless nothing is left.
EDGE_PUNCTUATION = ".,;:!?()[]{}«»\"'“”„"

_fts = table(FTS_TABLE, column("rowid"))
S = TypeVar("S", bound=Select[Any])


@dataclass(frozen=True)
class Word:
    """One word of a query and the spellings that satisfy it."""

    text: str
    spellings: tuple[str, ...]


def dialect_name(bind: Session | Connection | Engine | Dialect | str) -> str:
    """``"sqlite"`` or ``"postgresql"`` from a session, connection, engine, dialect or name."""
    if isinstance(bind, str):
        return bind
    if isinstance(bind, Dialect):
        return str(bind.name)
    if isinstance(bind, Session):
        return str(bind.get_bind().dialect.name)
    return str(bind.dialect.name)


def parse(text: str | None) -> list[Word]:
    """The words of a query with their spellings; ``[]`` for blank text.

    Two words that together name a city ("Alma Ata", "Усть Каменогорск") count as one."""
    raw = (text or "")[:MAX_QUERY_CHARS].split()
    tokens = [t.strip(EDGE_PUNCTUATION) or t for t in raw]
    words: list[Word] = []
    i = 0
    while i < len(tokens) and len(words) < MAX_WORDS:
        if i + 1 < len(tokens):
            pair = f"{tokens[i]}-{tokens[i + 1]}"
            spellings = city_spellings(pair)
            if len(spellings) > 1:
                words.append(Word(pair, _unique(spellings[1:])))
                i += 2
                continue
        words.append(Word(tokens[i], _unique(expand_word(tokens[i]))))
        i += 1
    return _dedupe(words)


def _unique(spellings: tuple[str, ...]) -> tuple[str, ...]:
    """Spellings without ones that differ only in case (the search ignores case anyway)."""
    seen: dict[str, str] = {}
    for s in spellings:
        seen.setdefault(s.lower(), s)
    return tuple(seen.values())


def _dedupe(words: list[Word]) -> list[Word]:
    seen: set[tuple[str, ...]] = set()
    out = []
    for w in words:
        key = tuple(sorted(s.lower() for s in w.spellings))
        if key not in seen:
            seen.add(key)
            out.append(w)
    return out


# ---------------------------------------------------------------------------- SQL pieces


def fts_phrase(word: str) -> str:
    """``word`` as an FTS5 string: always a quoted phrase, ``"`` doubled (no operators)."""
    return '"' + word.replace('"', '""') + '"'


def like_pattern(word: str) -> str:
    """``%word%`` with LIKE's wildcards and the escape character escaped (escape: ``\\``)."""
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def case_variants(word: str) -> list[str]:
    """Every mix of upper and lower case of a short word ("ab" -> ab, aB, Ab, AB)."""
    choices = [dict.fromkeys(v for v in (c, c.lower(), c.upper()) if len(v) == 1) for c in word]
    return ["".join(p) for p in itertools.product(*choices)]


def _pg_document(title_only: bool) -> ColumnElement[str]:
    """The lower-cased text a word is looked for in: the generated, indexed ``search_text``
    column of migration 0011 (not mapped on the model), or the lower-cased title."""
    if title_only:
        return func.lower(Listing.title)
    return column(PG_COLUMN, String, _selectable=Listing.__table__)


def _columns(title_only: bool) -> list[Any]:
    if title_only:
        return [Listing.title]
    return [Listing.title, Listing.description, Listing.city]


def _sqlite_fts(expression: str) -> ColumnElement[bool]:
    """Listings whose FTS5 row matches ``expression`` (built by this module, never user text)."""
    match = literal_column(FTS_TABLE).op("MATCH")(bindparam("fts_query", expression, unique=True))
    # A materialised CTE: a statement that counts the matches and reads a page of them (the
    # market's index) runs the full-text match once for both.
    matches = select(_fts.c.rowid).where(match).cte().prefix_with("MATERIALIZED")
    return Listing.id.in_(select(matches.c.rowid))


def _sqlite_short(word: str, title_only: bool) -> ColumnElement[bool]:
    """A scan: ``instr`` (case-sensitive, no wildcards) with each case mix of the word, per
    column. Measured faster than one GLOB with letter classes over the columns joined."""
    return or_(
        *(
            func.instr(col, variant) > 0
            for col in _columns(title_only)
            for variant in case_variants(word)
        )
    )


def _sqlite_condition(words: list[Word], title_only: bool) -> ColumnElement[bool]:
    prefix = "title : " if title_only else ""
    indexed: list[str] = []
    scanned: list[ColumnElement[bool]] = []
    for word in words:
        long = [s for s in word.spellings if len(s) >= MIN_INDEXED]
        short = [s for s in word.spellings if len(s) < MIN_INDEXED]
        group = "(" + " OR ".join(fts_phrase(s) for s in long) + ")" if long else ""
        if not short:
            indexed.append(prefix + group)
            continue
        parts = [_sqlite_short(s, title_only) for s in short]
        if group:
            parts.append(_sqlite_fts(prefix + group))
        scanned.append(or_(*parts))
    conditions = []
    if indexed:
        conditions.append(_sqlite_fts(" AND ".join(indexed)))
    return and_(*conditions, *scanned)


def _pg_condition(words: list[Word], title_only: bool) -> ColumnElement[bool]:
    document = _pg_document(title_only)
    return and_(
        *(
            or_(
                *(
                    document.like(
                        func.lower(bindparam("pattern", like_pattern(s), unique=True)),
                        escape="\\",
                    )
                    for s in word.spellings
                )
            )
            for word in words
        )
    )


def _generic_condition(words: list[Word], title_only: bool) -> ColumnElement[bool]:
    """Other databases: ``lower(...) LIKE`` per column, as good as the database's ``lower``."""
    return and_(
        *(
            or_(
                *(
                    func.lower(col).like(func.lower(like_pattern(s)), escape="\\")
                    for s in word.spellings
                    for col in _columns(title_only)
                )
            )
            for word in words
        )
    )


def condition(
    bind: Session | Connection | Engine | Dialect | str,
    text: str | None,
    *,
    title_only: bool = False,
) -> ColumnElement[bool] | None:
    """The WHERE condition for listings matching ``text``; None for a blank query."""
    return _condition(dialect_name(bind), text or "", title_only)


#: Conditions by (database, text, title only): a popular search is built once per worker, not
#: on every view (expressions are immutable; statements built on them copy, never change them).
@lru_cache(maxsize=1024)
def _condition(name: str, text: str, title_only: bool) -> ColumnElement[bool] | None:
    words = parse(text)
    if not words:
        return None
    if name == "sqlite":
        return _sqlite_condition(words, title_only)
    if name == "postgresql":
        return _pg_condition(words, title_only)
    return _generic_condition(words, title_only)


def apply_search(
    query: S,
    bind: Session | Connection | Engine | Dialect | str,
    text: str | None,
    *,
    rank: bool = False,
) -> S:
    """``query`` (a Select over :class:`Listing`) narrowed to listings matching ``text``.

    A blank query returns ``query`` unchanged. With ``rank=True`` the listings whose title
    holds every word come first (an ORDER BY that the caller's own ordering follows)."""
    where = condition(bind, text)
    if where is None:
        return query
    query = query.where(where)
    if rank:
        query = query.order_by(relevance(bind, text))
    return query


def relevance(
    bind: Session | Connection | Engine | Dialect | str, text: str | None
) -> ColumnElement[int]:
    """0 for listings whose title holds every word of ``text``, else 1 (ascending order puts
    title matches first). Cheap: evaluated only for the listings the search found."""
    in_title = condition(bind, text, title_only=True)
    if in_title is None:
        return literal_column("0")
    return case((in_title, 0), else_=1)


def city_condition(
    bind: Session | Connection | Engine | Dialect | str, city: str | None
) -> ColumnElement[bool] | None:
    """Listings whose city is ``city`` in any spelling, ignoring case (Cyrillic included): the
    city filter. None for a blank city."""
    city = (city or "").strip()
    if not city:
        return None
    spellings = _unique(city_spellings(city))
    name = dialect_name(bind)
    if name == "sqlite":
        # The FTS5 index finds the city as a substring, ignoring case; the same length in
        # characters makes it the whole value.
        parts = []
        for s in spellings:
            if len(s) >= MIN_INDEXED:
                parts.append(
                    and_(
                        _sqlite_fts("city : " + fts_phrase(s)),
                        func.length(Listing.city) == len(s),
                    )
                )
            else:
                parts.append(Listing.city.in_(case_variants(s)))
        return or_(*parts) if parts else false()
    return func.lower(Listing.city).in_([s.lower() for s in spellings])


def price_order(
    tenge_per_unit: Mapping[str, float | None], *, descending: bool = False
) -> tuple[Any, ...]:
    """ORDER BY terms for listings by price across currencies: ``tenge_per_unit`` is the
    tenge value of one smallest unit of each currency (``views.tenge_unit_rates``). A listing
    whose currency has no rate comes after all others, ordered within its currency. The tenge
    value is a float, good for ordering only (prices shown are formatted from their units)."""
    return _price_order(tuple(sorted(tenge_per_unit.items())), descending)


@lru_cache(maxsize=64)
def _price_order(rates: tuple[tuple[str, float | None], ...], descending: bool) -> tuple[Any, ...]:
    whens = [
        (Listing.currency == currency, cast(Listing.price, Float) * float(rate))
        for currency, rate in rates
        if rate
    ]
    if not whens:
        value: ColumnElement[Any] = literal_column("NULL")
    else:
        value = case(*whens, else_=None)
    unknown = case((value.is_(None), 1), else_=0)
    if descending:
        return (unknown, value.desc(), Listing.currency, Listing.price.desc())
    return (unknown, value.asc(), Listing.currency, Listing.price.asc())
