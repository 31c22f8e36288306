"""The phishing guard for people's messages: which parts of a text are risky, and why.

The scams of Kazakh classifieds (OLX.kz, Kaspi) come in a few shapes, and each is a reason
here: a link to a fake "delivery" or "safe deal" page (``external_link``), an address made to
look like the market's own (``lookalike_domain``: letters swapped or doubled, Cyrillic letters
that look Latin, punycode, the market's name with extra words), a bank card number
(``card_number``: 13 to 19 digits that pass the Luhn check), a request for card details or an
SMS code (``card_details``), a transfer by phone number or Kaspi (``payment_request``), and a
request to leave the market or to pay outside the escrow (``off_platform``).

``scan`` is pure: no database, no network. It reads Kazakh, Russian and English, in any case
and mix of scripts, through zero-width characters, fullwidth or styled letters, spaced-out
``h t t p s : / /`` and written-out dots (``точка ком``, ``dot com``, ``нүкте ком``, ``[.]``).
Links to the site's own host (and its subdomains) are fine.

``render`` shows a message to its reader: HTML-escaped, risky links, card and phone numbers
masked behind a warning in the reader's language (a click on "Show" reveals the text, as plain
text, through ``static/js/messages.js``; without JavaScript it stays masked), risky phrases
marked, and never a link.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

#: Reason codes, in the order the warnings are listed.
REASONS = (
    "lookalike_domain",
    "external_link",
    "card_number",
    "card_details",
    "payment_request",
    "off_platform",
)

INVISIBLE = frozenset(
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b\u200c\u200d\u200e\u200f"
    "\u202a\u202b\u202c\u202d\u202e\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069"
    "\ufeff"
)
#: Letters of other scripts that look like Latin ones (after lower-casing).
CONFUSABLES = str.maketrans(
    {
        "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o",
        "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j",
        "ѕ": "s", "ԁ": "d", "һ": "h", "ӏ": "l", "ү": "y", "ԛ": "q", "ԝ": "w", "ʏ": "y",
        "ɡ": "g", "ο": "o", "α": "a", "ν": "v", "ρ": "p", "τ": "t", "ι": "i", "κ": "k",
        "χ": "x", "ε": "e", "υ": "u", "ı": "i",
    }
)  # fmt: skip
#: Top-level domains a bare address (no ``http://``) is recognised by.
TLDS = (
    "com net org info biz pro site online store shop top xyz club link click live icu app dev "
    "io ai co me cc ly gl to ws su tk ml ga cf gq kz ru ua by uz kg tj am az ge md eu de uk us "
    "tr cn in pw vip fun space website tech today services delivery express page digital "
    "money pay finance bank support help world group center agency email cloud host "
    "рф қаз"
).split()
#: Written-out top-level domains (``точка ком``) and the real one they stand for.
SPELLED_TLDS = {
    "ком": "com", "ру": "ru", "кз": "kz", "нет": "net", "орг": "org", "инфо": "info",
    "сайт": "site", "онлайн": "online",
}  # fmt: skip
_TLD = "(?:" + "|".join(sorted(map(re.escape, TLDS), key=len, reverse=True)) + ")"
_SPELLED = "(?:" + "|".join(sorted(list(SPELLED_TLDS) + TLDS, key=len, reverse=True)) + ")"
_LABEL = r"[^\W_](?:[\w-]{0,61}[^\W_])?"
_PATH = r"(?:[/?#][^\s<>\"'«»]*)?"

LINK = re.compile(
    r"(?:(?:https?|ftp)://[^\s<>\"'«»]+"
    rf"|(?<![\w@.-])(?:www\.)?(?:{_LABEL}\.)+{_TLD}(?![\w-])(?::\d{{1,5}})?{_PATH})",
    re.IGNORECASE,
)
#: ``p2p-escrow.kz@evil.com/…``: what stands before the ``@`` is a user name; the host is after.
USERINFO_LINK = re.compile(
    rf"(?<![\w@.-])(?:{_LABEL}\.)+{_TLD}@(?:{_LABEL}\.)+{_TLD}(?![\w-])(?::\d{{1,5}})?{_PATH}"
)
EMAIL = re.compile(rf"(?<![\w.])[\w.+-]+@(?:{_LABEL}\.)+{_TLD}(?![\w-])")
HANDLE = re.compile(r"(?<![\w.@/])@[a-z][a-z0-9_]{3,31}(?![\w@])")
DIGITS = re.compile(r"(?<![\d])\d(?:[ \-.\u00a0\u202f]?\d){12,22}(?!\d)")
#: Kazakhstan's mobile numbers (+7 7xx …, 8 7xx …) and other international ones.
PHONE = re.compile(
    r"(?<![\w+])(?:(?:\+\s?7|8|7)[\s\-.(]*7\d{2}[\s\-.)]*\d{3}[\s\-.]*\d{2}[\s\-.]*\d{2}"
    r"|\+\s?\d{1,3}[\s\-.(]*\d{2,4}[\s\-.)]*\d{3}[\s\-.]*\d{2,4}(?:[\s\-.]*\d{2,4})?)(?!\d)"
)
#: Words near a number that make it an IMEI or a serial, not a card.
NOT_A_CARD = re.compile(r"imei|имей|серийн|serial|s/n|трек|track|накладн|жүкқұжат|заказ|order")

PAY_WORDS = re.compile(
    r"перев[оеи]д|переведи|перечисл|кида|кинь|скин|закин|отправ\w*\s+деньг|оплат|плат[иеё]|"
    r"предоплат|деньг|аудар|сал[ыа]|төле|ақша|transfer|send\s+(?:me\s+)?(?:the\s+)?money|"
    r"\bpay|wire|money|prepay|deposit|kaspi|каспи|halyk|халык"
)
CARD_DETAILS = (
    r"\bcv[cv]2?\b|\bcvv\b|\bcvc\b|ц[вб]ц|свв|"
    r"(?:тр[иёе]\w*|3|үш)\s+(?:\w+\s+){0,1}(?:цифр\w*|сан\w*)\s+(?:\w+\s+){0,1}"
    r"(?:на\s+)?(?:оборот\w*|сзади|обратн\w*|артында\w*)|"
    r"артындағы\s+(?:үш|3)\s+сан\w*|"
    r"(?:3|three)\s+digits\s+on\s+the\s+back|"
    r"номер\w*\s+(?:\w+\s+){0,1}карт\w*|карт\w*\s+(?:\w+\s+){0,1}нөмір\w*|"
    r"реквизит\w*\s+(?:\w+\s+){0,1}карт\w*|данн\w+\s+(?:\w+\s+){0,1}карт\w*|"
    r"карт\w*\s+(?:\w+\s+){0,1}(?:деректер\w*|мерзім\w*)|"
    r"срок\w*\s+действия|expiry|expiration\s+date|"
    r"card\s+(?:number|details|data|info\w*)|"
    r"фот\w*\s+(?:\w+\s+){0,1}карт\w*|photo\s+of\s+(?:\w+\s+){0,1}card|"
    r"карт\w*\s+(?:\w+\s+){0,1}(?:сурет|фото)\w*|"
    r"(?:код\w*\s+(?:\w+\s+){0,1}(?:из\s+|в\s+)?смс|смс[\s-]*код\w*|sms[\s-]*код\w*|"
    r"sms[\s-]*code|code\s+(?:from|in)\s+(?:the\s+)?sms|смс-?кодт\w*|sms-?кодт\w*)"
)
PAYMENT_PHRASES = (
    r"(?:kaspi|каспи[йи]?|halyk|халык|jusan|жусан|forte|форте)\w*"
    r"(?:[\s-]+(?:gold|голд|перевод\w*|аудар\w*|transfer))?|"
    r"по\s+номеру(?:\s+телефона)?|нөміріне|"
    r"(?:перевед|переведи|перевод|кида|кинь|скинь|закин|отправ)\w*\s+(?:\w+\s+){0,2}"
    r"на\s+(?:мою\s+|мой\s+)?(?:карт|счет|счёт)\w*|"
    r"(?:картаға|картама|шотқа|шотыма)\s+(?:\w+\s+){0,1}(?:аудар|сал)\w*|"
    r"(?:transfer|send|wire)\s+(?:\w+\s+){0,3}to\s+my\s+(?:card|account|phone)"
)
OFF_PLATFORM = (
    r"whats\s*app|ват[сц]?\s*ап\w*|вотсап\w*|вацап\w*|telegram|телеграм\w*|телег[аеу]\b|"
    r"viber|вайбер\w*|\bimo\b|\bsignal\b|"
    r"\bбез\s+(?:\w+\s+){0,2}(?:сделк|эскроу|гарант|сайт|площадк)\w*|"
    r"\b(?:мимо|минуя|вне|помимо)\s+(?:\w+\s+){0,1}(?:сделк|эскроу|сайт|площадк|платформ)\w*|"
    r"(?:перевед|переведи|кида|кинь|скинь|отправ|плат)\w*\s+(?:\w+\s+){0,3}напрямую|"
    r"напрямую\s+(?:\w+\s+){0,3}(?:перев|плат|кида|скин|отправ)\w*|"
    r"комисси\w*\s+(?:\w+\s+){0,1}не\s+(?:хочу|будем)|"
    r"эскроусыз|мәмілесіз|(?:сайттан|платформадан|алаңнан)\s+тыс|"
    r"мәміле\s+(?:\w+\s+){0,1}керек\s+емес|тікелей\s+(?:\w+\s+){0,2}(?:аудар|төле|сал)\w*|"
    r"комиссия\s+төлеме\w*|"
    r"\b(?:skip|avoid|bypass|without|outside(?:\s+of)?)\s+(?:the\s+|this\s+)?"
    r"(?:escrow|platform|site|website|market)\b|"
    r"\bpay\s+(?:me\s+)?directly\b|\bsend\s+(?:me\s+)?(?:the\s+)?money\s+directly\b"
)
PHRASES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("card_details", re.compile(CARD_DETAILS)),
    ("payment_request", re.compile(PAYMENT_PHRASES)),
    ("off_platform", re.compile(OFF_PLATFORM)),
)
#: Bank and payment names count as a transfer request only with a payment word nearby.
BANK_NAME = re.compile(r"kaspi|каспи|halyk|халык|jusan|жусан|forte|форте")
NEAR = 48


@dataclass(frozen=True)
class Span:
    """A risky part of the text: ``text[start:end]`` of the original, and why. ``masked``:
    something to hide until the reader asks (a link, an address, a card or phone number); the
    other spans are risky words, which are marked."""

    start: int
    end: int
    reasons: tuple[str, ...]
    text: str
    masked: bool = False


@dataclass(frozen=True)
class Scan:
    text: str
    spans: tuple[Span, ...] = field(default_factory=tuple)

    @property
    def risky(self) -> bool:
        return bool(self.spans)

    @property
    def reasons(self) -> tuple[str, ...]:
        found = {reason for span in self.spans for reason in span.reasons}
        return tuple(reason for reason in REASONS if reason in found)


# ---------------------------------------------------------------------------- normalising


class _Folded:
    """The text as the patterns read it, each character knowing the original range it came
    from: invisible characters dropped, NFKC, lower case, obfuscations undone."""

    def __init__(self, text: str) -> None:
        chars: list[str] = []
        origin: list[tuple[int, int]] = []
        for index, char in enumerate(text):
            if char in INVISIBLE:
                continue
            folded = unicodedata.normalize("NFKC", char).lower()
            for piece in folded:
                chars.append(piece)
                origin.append((index, index + 1))
        self.text = "".join(chars)
        self.origin = origin

    def sub(self, pattern: re.Pattern[str], replace: Callable[[re.Match[str]], str]) -> None:
        chars: list[str] = []
        origin: list[tuple[int, int]] = []
        last = 0
        for match in pattern.finditer(self.text):
            chars.extend(self.text[last : match.start()])
            origin.extend(self.origin[last : match.start()])
            new = replace(match)
            if match.end() > match.start():
                whole = (self.origin[match.start()][0], self.origin[match.end() - 1][1])
            else:
                whole = self.origin[match.start()] if match.start() < len(self.origin) else (0, 0)
            chars.extend(new)
            origin.extend([whole] * len(new))
            last = match.end()
        chars.extend(self.text[last:])
        origin.extend(self.origin[last:])
        self.text = "".join(chars)
        self.origin = origin

    def original(self, start: int, end: int) -> tuple[int, int]:
        return self.origin[start][0], self.origin[end - 1][1]


SPACED_SCHEME = re.compile(r"\b(?:h\s*[tx]\s*[tx]\s*p)(\s*s)?\s*:\s*/\s*/\s*")
SPACED_WWW = re.compile(r"\bw\s+w\s+w\s*\.\s*")
SPELLED_DOT = re.compile(
    r"\s*(?:\[\s*(?:\.|dot|точка)\s*\]|\(\s*(?:\.|dot|точка)\s*\)|\{\s*\.\s*\}"
    r"|\s(?:dot|точка|тчк|нүкте)\s)\s*"
    rf"(?=(?:{_SPELLED})(?![\w-]))"
)
SPACED_DOT = re.compile(rf"(?<=[^\W_])\s+\.\s+(?=(?:{_TLD})(?![\w-]))")
SPELLED_TLD = re.compile(r"(?<=\.)(" + "|".join(map(re.escape, SPELLED_TLDS)) + r")(?![\w-])")
SPELLED_SLASH = re.compile(rf"(\.{_TLD})\s+(?:slash|слэш|слеш|слш)\s+")


def _fold(text: str) -> _Folded:
    folded = _Folded(text)
    folded.sub(SPACED_SCHEME, lambda m: "https://" if m.group(1) else "http://")
    folded.sub(SPACED_WWW, lambda m: "www.")
    folded.sub(SPELLED_DOT, lambda m: ".")
    folded.sub(SPACED_DOT, lambda m: ".")
    folded.sub(SPELLED_TLD, lambda m: SPELLED_TLDS[m.group(1)])
    folded.sub(SPELLED_SLASH, lambda m: m.group(1) + "/")
    return folded


# ---------------------------------------------------------------------------- hosts


def _skeleton(text: str) -> str:
    """Look-alike letters as the Latin ones they imitate."""
    return text.translate(CONFUSABLES)


def _visual(text: str) -> str:
    """A host as it looks: look-alike letters, ``rn``/``vv`` and digits for letters folded,
    hyphens and dots dropped."""
    out = _skeleton(text)
    for old, new in (("rn", "m"), ("vv", "w"), ("0", "o"), ("1", "l"), ("!", "i")):
        out = out.replace(old, new)
    return out.replace("-", "").replace(".", "").replace("_", "")


def _host_of(link: str) -> str:
    """The host of a link found in the folded text (lower case, no port, IDNA decoded)."""
    rest = link.split("://", 1)[1] if "://" in link else link
    host = re.split(r"[/?#]", rest, maxsplit=1)[0].rsplit("@", 1)[-1]
    host = host.split(":", 1)[0].rstrip(".")
    labels = []
    for label in host.split("."):
        if label.startswith("xn--"):
            try:
                label = label.encode("ascii").decode("idna")
            except (UnicodeError, ValueError):
                pass
        labels.append(label)
    return ".".join(labels)


def _clean_host(host: str) -> str:
    host = host.strip().lower()
    if "://" in host:
        host = host.split("://", 1)[1]
    host = host.split("/", 1)[0]
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _core(host: str) -> str:
    """The name part of a host: without ``www.`` and its top-level domain."""
    host = host.removeprefix("www.")
    parts = host.split(".")
    return ".".join(parts[:-1]) if len(parts) > 1 else host


def _distance(a: str, b: str) -> int:
    """Damerau-Levenshtein distance (adjacent swaps count once)."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[-1]


def _is_own(host: str, own: Iterable[str]) -> bool:
    return any(host == site or host.endswith("." + site) for site in own if site)


def _looks_like(host: str, site: str) -> bool:
    """Whether ``host`` (not the site's) imitates the site's host."""
    if not site or re.fullmatch(r"[\d.:\[\]]+", site):
        return False  # an IP address has no name to imitate
    if _skeleton(host) == _skeleton(site):
        return True  # homoglyphs or punycode of the same letters
    name = _visual(_core(site))
    if len(name) < 4:
        return False
    seen = _visual(host)
    if name in seen:
        return True  # the site's name with extra words, another TLD, a subdomain
    limit = 1 if len(name) < 8 else 2
    candidates = {_visual(_core(host))} | {_visual(label) for label in host.split(".")}
    return any(_distance(candidate, name) <= limit for candidate in candidates if candidate)


# ---------------------------------------------------------------------------- scan


def _luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def scan(text: str, site_host: str, *, other_hosts: Iterable[str] = ()) -> Scan:
    """The risky spans of ``text`` for a market served at ``site_host`` (``other_hosts``:
    more names of the same site, such as its trusted hosts)."""
    if not text:
        return Scan(text or "")
    folded = _fold(text)
    body = folded.text
    site = _clean_host(site_host)
    own = {site, *(_clean_host(h) for h in other_hosts)}
    found: list[tuple[int, int, str, bool]] = []  # positions in the folded text, masked

    link_ranges: list[tuple[int, int]] = []
    links = [*USERINFO_LINK.finditer(body), *LINK.finditer(body)]
    for match in links:
        start, end = match.start(), match.end()
        if any(a <= start < b for a, b in link_ranges):
            continue
        while end > start and body[end - 1] in ".,;:!?)]}»\"'":
            end -= 1
        host = _host_of(body[start:end])
        link_ranges.append((start, end))
        if _is_own(host, own):
            continue
        if any(_looks_like(host, name) for name in own):
            found.append((start, end, "lookalike_domain", True))
        else:
            found.append((start, end, "external_link", True))
    for match in EMAIL.finditer(body):
        if any(a <= match.start() < b for a, b in link_ranges):
            continue
        found.append((match.start(), match.end(), "off_platform", True))
    for match in HANDLE.finditer(body):
        found.append((match.start(), match.end(), "off_platform", True))

    def inside_link(start: int, end: int) -> bool:
        return any(a <= start and end <= b for a, b in link_ranges)

    card_ranges: list[tuple[int, int]] = []
    for match in DIGITS.finditer(body):
        digits = re.sub(r"\D", "", match.group())
        if not 13 <= len(digits) <= 19 or not _luhn(digits) or inside_link(*match.span()):
            continue
        before = body[max(0, match.start() - 30) : match.start()]
        if NOT_A_CARD.search(before):
            continue
        card_ranges.append(match.span())
        found.append((match.start(), match.end(), "card_number", True))

    pays = bool(PAY_WORDS.search(body))
    for match in PHONE.finditer(body):
        start, end = match.span()
        if inside_link(start, end) or any(a <= start < b for a, b in card_ranges):
            continue
        found.append((start, end, "payment_request" if pays else "off_platform", True))

    for reason, pattern in PHRASES:
        for match in pattern.finditer(body):
            start, end = match.span()
            if inside_link(start, end):
                continue
            if reason == "payment_request" and BANK_NAME.match(match.group()):
                around = body[max(0, start - NEAR) : end + NEAR]
                rest = around.replace(match.group(), " ", 1)
                if not PAY_WORDS.search(rest) and not PHONE.search(around):
                    continue
            found.append((start, end, reason, False))

    return Scan(text, _merge(text, folded, found))


def _merge(text: str, folded: _Folded, found: list[tuple[int, int, str, bool]]) -> tuple[Span, ...]:
    """Spans in the original text, overlapping ones merged with all their reasons."""
    ranges = sorted(
        (*folded.original(start, end), reason, mask)
        for start, end, reason, mask in found
        if end > start
    )
    merged: list[list[Any]] = []
    for start, end, reason, mask in ranges:
        if merged and start < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
            merged[-1][2].add(reason)
            merged[-1][3] = merged[-1][3] or mask
        else:
            merged.append([start, end, {reason}, mask])
    return tuple(
        Span(start, end, tuple(r for r in REASONS if r in reasons), text[start:end], mask)
        for start, end, reasons, mask in merged
    )


# ---------------------------------------------------------------------------- showing


def reason_text(reason: str) -> str:
    """What a reason means, for the reader, in the reader's language."""
    from flask_babel import gettext as _

    texts = {
        "lookalike_domain": _(
            "An address made to look like this market's. It is not our site: do not open it."
        ),
        "external_link": _(
            "A link to another site. Never pay or type card details on a page you reach "
            "from a message."
        ),
        "card_number": _("A bank card number. Never send card numbers in messages."),
        "card_details": _(
            "Asks for card details or a code from an SMS. The market never needs them: "
            "do not share them with anyone."
        ),
        "payment_request": _(
            "Asks for a transfer by phone number, card or Kaspi. Money sent that way is not "
            "protected by the escrow."
        ),
        "off_platform": _(
            "Asks to continue elsewhere or to pay outside the escrow. Keep the conversation "
            "and the payment here."
        ),
    }
    return texts[reason]


def reason_label(reason: str) -> str:
    """A short name of the reason, shown in place of a masked part."""
    from flask_babel import gettext as _

    labels = {
        "lookalike_domain": _("fake address of this market"),
        "external_link": _("link to another site"),
        "card_number": _("card number"),
        "card_details": _("card details request"),
        "payment_request": _("payment outside the escrow"),
        "off_platform": _("move off the market"),
    }
    return labels[reason]


def render(text: str, site_host: str, *, other_hosts: Iterable[str] = ()) -> Any:
    """The message as safe HTML for its reader (``markupsafe.Markup``): escaped text, risky
    parts masked or marked, and, when there are any, a warning that lists the reasons."""
    from flask_babel import gettext as _
    from markupsafe import Markup, escape

    result = scan(text, site_host, other_hosts=other_hosts)
    parts: list[Any] = []
    position = 0
    for span in result.spans:
        parts.append(escape(text[position : span.start]))
        reasons = " ".join(span.reasons)
        if span.masked:
            label = reason_label(span.reasons[0])
            parts.append(
                Markup(
                    '<span class="masked" data-masked="{reasons}" data-original="{original}">'
                    '<span class="masked-label">⚠ {label}</span> '
                    '<button type="button" class="link masked-reveal" hidden '
                    'title="{title}">{show}</button></span>'
                ).format(
                    reasons=reasons,
                    original=span.text,
                    label=label,
                    title=_("Shows the hidden text. It stays plain text, not a link."),
                    show=_("Show"),
                )
            )
        else:
            parts.append(
                Markup('<mark class="risky" data-risky="{reasons}">{text}</mark>').format(
                    reasons=reasons, text=span.text
                )
            )
        position = span.end
    parts.append(escape(text[position:]))
    body = Markup("").join(parts)
    if not result.risky:
        return Markup('<div class="message-text">{body}</div>').format(body=body)
    items = Markup("").join(
        Markup('<li data-reason="{code}">{text}</li>').format(code=code, text=reason_text(code))
        for code in result.reasons
    )
    return Markup(
        '<div class="phishing-warning" role="note"><strong>{title}</strong><ul>{items}</ul></div>'
        '<div class="message-text">{body}</div>'
    ).format(title=_("Careful: this message may be a scam."), items=items, body=body)


def preview(
    text: str, site_host: str, *, other_hosts: Iterable[str] = (), length: int = 120
) -> str:
    """A one-line plain-text preview (the inbox): masked parts replaced by ``⚠ <what it is>``,
    whitespace folded, at most ``length`` characters. Plain text: the template escapes it."""
    result = scan(text, site_host, other_hosts=other_hosts)
    parts: list[str] = []
    position = 0
    for span in result.spans:
        if not span.masked:
            continue
        parts.append(text[position : span.start])
        parts.append(f"[⚠ {reason_label(span.reasons[0])}]")
        position = span.end
    parts.append(text[position:])
    line = " ".join("".join(parts).split())
    return line if len(line) <= length else line[: length - 1].rstrip() + "…"
