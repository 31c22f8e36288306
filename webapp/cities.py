"""Kazakhstan's main cities in Kazakh, Russian and Latin spellings, and the brand names buyers
type in Cyrillic, so that a search for one spelling finds listings written in another.

:func:`expand_word` is what search uses: a query word naming a city ("Almaty", "алматы",
"Alma-Ata") or a brand ("айфон", "iPhone") becomes every spelling of it; any other word stays
as it is. Words are compared case-insensitively (Unicode, Kazakh letters included) and with
"ё" read as "е".
"""

from __future__ import annotations

from collections.abc import Iterable

#: One row per city: its spellings in Kazakh (Cyrillic), Russian, Latin (official and common),
#: and former names still in use. The first entry is the name shown to people.
CITIES: tuple[tuple[str, ...], ...] = (
    ("Алматы", "Almaty", "Алма-Ата", "Alma-Ata", "Alma-Aty"),
    ("Астана", "Astana", "Нур-Султан", "Nur-Sultan", "Nursultan", "Акмола", "Akmola"),
    ("Шымкент", "Shymkent", "Чимкент", "Chimkent"),
    ("Қарағанды", "Караганда", "Караганды", "Karaganda", "Karagandy", "Qaragandy"),
    ("Ақтөбе", "Актобе", "Актюбинск", "Aktobe", "Aqtobe", "Aktyubinsk"),
    ("Тараз", "Taraz", "Джамбул", "Жамбыл", "Zhambyl"),
    ("Павлодар", "Pavlodar"),
    ("Өскемен", "Оскемен", "Усть-Каменогорск", "Oskemen", "Öskemen", "Ust-Kamenogorsk"),
    ("Семей", "Semey", "Semei", "Семипалатинск", "Semipalatinsk"),
    ("Атырау", "Atyrau", "Гурьев", "Guryev"),
    ("Қостанай", "Костанай", "Кустанай", "Kostanay", "Kostanai", "Qostanai", "Kustanay"),
    ("Қызылорда", "Кызылорда", "Kyzylorda", "Qyzylorda"),
    ("Орал", "Уральск", "Oral", "Uralsk"),
    ("Петропавл", "Петропавловск", "Petropavl", "Petropavlovsk"),
    ("Ақтау", "Актау", "Aktau", "Aqtau"),
    ("Түркістан", "Туркестан", "Turkistan", "Turkestan"),
    ("Теміртау", "Темиртау", "Temirtau"),
    ("Көкшетау", "Кокшетау", "Kokshetau", "Kökshetau"),
    ("Талдықорған", "Талдыкорган", "Taldykorgan", "Taldyqorgan"),
    ("Екібастұз", "Экибастуз", "Екибастуз", "Ekibastuz"),
    ("Жезқазған", "Жезказган", "Zhezkazgan", "Jezqazgan"),
    ("Кентау", "Kentau"),
)

#: Brand names as they are typed in Cyrillic, and their Latin spelling.
BRANDS: tuple[tuple[str, ...], ...] = (
    ("iphone", "айфон"),
    ("samsung", "самсунг"),
    ("macbook", "макбук"),
    ("playstation", "плейстейшн", "плейстейшен"),
)

#: How many letters of a Russian or Kazakh case ending may follow a brand word ("айфона",
#: "самсунгом") and still be read as the brand.
MAX_ENDING = 3


def fold(word: str) -> str:
    """The form words are compared in: lower case, "ё" as "е"."""
    return word.lower().replace("ё", "е")


def _table(groups: Iterable[tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    table: dict[str, tuple[str, ...]] = {}
    for group in groups:
        spellings = tuple(dict.fromkeys(group))
        for spelling in spellings:
            table[fold(spelling)] = spellings
    return table


CITY_SPELLINGS: dict[str, tuple[str, ...]] = _table(CITIES)
BRAND_SPELLINGS: dict[str, tuple[str, ...]] = _table(BRANDS)
#: The longest city name in words ("Alma Ata" typed with a space is two words).
MAX_CITY_WORDS = 2


def city_spellings(name: str) -> tuple[str, ...]:
    """Every spelling of the city ``name`` names (itself first); ``(name,)`` for other text.

    A space counts as a hyphen: "Alma Ata" is "Alma-Ata"."""
    key = fold(name.strip())
    found = CITY_SPELLINGS.get(key) or CITY_SPELLINGS.get("-".join(key.split()))
    if not found:
        return (name,)
    return tuple(dict.fromkeys((name, *found)))


def canonical_city(name: str) -> str | None:
    """The city's display name (its Kazakh spelling) when ``name`` is a known city."""
    found = CITY_SPELLINGS.get(fold(name.strip()))
    return found[0] if found else None


def brand_spellings(word: str) -> tuple[str, ...]:
    """Every spelling of the brand ``word`` names (itself first), also with a case ending
    ("айфона" -> "айфона", "iphone", "айфон"); ``(word,)`` for other words."""
    key = fold(word)
    found = BRAND_SPELLINGS.get(key)
    if not found:
        for cut in range(1, MAX_ENDING + 1):
            stem = key[:-cut]
            if len(stem) >= 4 and stem in BRAND_SPELLINGS:
                found = BRAND_SPELLINGS[stem]
                break
    if not found:
        return (word,)
    return tuple(dict.fromkeys((word, *found)))


def expand_word(word: str) -> tuple[str, ...]:
    """The spellings a search for ``word`` should accept: a city's or brand's every spelling,
    else the word alone."""
    spellings = city_spellings(word)
    if len(spellings) == 1:
        spellings = brand_spellings(word)
    return spellings
