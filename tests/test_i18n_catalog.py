"""Every text a user reads goes through gettext, and every catalogue translates all of it.

* Templates: the HTML between Jinja tags may hold no words (text nodes and the attributes a
  person reads: title, placeholder, aria-label, alt, a button's value, a meta description).
* Catalogues: the messages extracted from the code (``babel.cfg``) are exactly those of the
  Kazakh and Russian ``.po`` files, each translated (every plural form), none fuzzy, and
  with the same ``%(name)s`` placeholders as the English text.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "webapp" / "templates"
TRANSLATIONS = ROOT / "webapp" / "translations"
LANGUAGES = ("kk", "ru")
#: Words that are the same in every language: the market's name, token symbols, units.
UNTRANSLATED_WORDS = {"P2P", "Escrow", "ETH", "USD", "tUSD", "KZT", "tKZT", "SHA-256", "PDF"}
READ_ATTRIBUTES = {"title", "placeholder", "aria-label", "alt", "content"}
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")
JINJA = re.compile(r"{{.*?}}|{%.*?%}|{#.*?#}", re.S)


class _Words(HTMLParser):
    """Collects the words of an HTML page whose Jinja parts were blanked out."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        names = dict(attrs)
        for name, value in attrs:
            readable = name in READ_ATTRIBUTES or (
                name == "value" and names.get("type") in ("submit", "button", "reset")
            )
            if name == "content" and names.get("name") != "description":
                readable = False
            if readable and value:
                self._check(value)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self._check(data)

    def _check(self, text: str) -> None:
        words = [w for w in re.findall(r"[^\W\d_][\w'’-]*", text) if w not in UNTRANSLATED_WORDS]
        if words:
            self.found.append(" ".join(text.split()))


def words_outside_gettext(source: str) -> list[str]:
    """Texts of a template that a user would read untranslated."""
    parser = _Words()
    parser.feed(JINJA.sub(" ", source))
    parser.close()
    return parser.found


@pytest.mark.parametrize(
    "template",
    sorted(p.relative_to(TEMPLATES).as_posix() for p in TEMPLATES.rglob("*.html")),
)
def test_templates_have_no_text_outside_gettext(template: str) -> None:
    assert words_outside_gettext((TEMPLATES / template).read_text()) == []


def test_the_checker_finds_untranslated_text() -> None:
    assert words_outside_gettext("<p>{{ _('Hello') }}</p>") == []
    assert words_outside_gettext("<p>{{ n }} days</p>") == ["days"]
    assert words_outside_gettext('<input placeholder="Search">') == ["Search"]
    assert words_outside_gettext('<button title="{{ _("x") }}">{{ _("y") }}</button>') == []
    assert words_outside_gettext("<script>const a = 'text';</script>") == []


def _extracted() -> dict[str, str | None]:
    """msgid -> plural msgid (None for a singular message), from the code as it is now."""
    method_map = [
        ("webapp/**.py", "python"),
        ("escrow/amounts.py", "python"),
        ("webapp/templates/**.html", "jinja2"),
        ("webapp/static/js/**.js", "javascript"),
    ]
    keywords = {
        "_": None,
        "gettext": None,
        "ngettext": (1, 2),
        "_l": None,
        "N_": None,
        "lazy_gettext": None,
        "lazy_ngettext": (1, 2),
    }
    found: dict[str, str | None] = {}
    for _, _, message, _, _ in extract_from_dir(
        str(ROOT), method_map, keywords=keywords, options_map={"webapp/templates/**.html": {}}
    ):
        if isinstance(message, tuple):
            found[message[0]] = message[1]
        else:
            found.setdefault(message, None)
    return found


@pytest.fixture(scope="module")
def extracted() -> dict[str, str | None]:
    return _extracted()


@pytest.mark.parametrize("lang", LANGUAGES)
def test_catalogue_translates_every_message(lang: str, extracted: dict[str, str | None]) -> None:
    path = TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=lang)
    entries = {m.id if isinstance(m.id, str) else m.id[0]: m for m in catalog if m.id}
    missing = sorted(set(extracted) - set(entries))
    assert not missing, f"{lang}: not in the catalogue (run `make translations`): {missing[:10]}"
    problems = []
    for msgid in extracted:
        message = entries[msgid]
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if message.fuzzy:
            problems.append(f"fuzzy: {msgid!r}")
        elif not all(strings):
            problems.append(f"untranslated: {msgid!r}")
        else:
            wanted = set(PLACEHOLDER.findall(msgid))
            for text in strings:
                if set(PLACEHOLDER.findall(text)) - wanted - {"num"}:
                    problems.append(f"unknown placeholder in {msgid!r}: {text!r}")
    assert not problems, f"{lang}: {len(problems)} problems: {problems[:10]}"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_kazakh_and_russian_are_written_in_their_own_letters(lang: str) -> None:
    """Real Kazakh uses its own letters; neither catalogue is a transliteration."""
    text = (TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po").read_text()
    strings = "".join(re.findall(r'^msgstr(?:\[\d\])? "(.*)"$', text, re.M))
    cyrillic = sum(1 for c in strings if "\u0400" <= c <= "\u04ff")
    assert cyrillic > 0.5 * sum(1 for c in strings if c.isalpha())
    if lang == "kk":
        assert set("әғқңөұүі") <= set(strings.lower())
