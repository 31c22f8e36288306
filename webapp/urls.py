"""Small URL helpers every blueprint may use: where to send a user after an action, and
node addresses with their secrets taken out before they reach a log line."""

from __future__ import annotations

import re
import unicodedata
from typing import Any
from urllib.parse import unquote, urlsplit

#: Longer ``next`` values are not links people follow; they are refused.
MAX_NEXT_CHARS = 2000


def safe_next(value: Any, default: str) -> str:
    """``value`` when it is a path on this site, else ``default``.

    A path starts with one ``/``, names no scheme and no host once parsed, and holds no
    backslash and no control or format character: browsers read ``/\\evil.example`` and
    ``/<tab>/evil.example`` as ``//evil.example``, another site. The same holds once
    percent-escapes are decoded, for anything that decodes the path again on the way.
    """
    if not isinstance(value, str) or len(value) > MAX_NEXT_CHARS:
        return default
    return value if _is_local_path(value) and _is_local_path(unquote(value)) else default


def _is_local_path(value: str) -> bool:
    if not value.startswith("/") or value.startswith("//") or "\\" in value:
        return False
    if any(unicodedata.category(ch).startswith("C") for ch in value):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return not parts.scheme and not parts.netloc


_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^\s/@'\"<>]+@")
_QUERY = re.compile(r"\?[^\s'\"<>()]+")
#: A path segment that looks like an API key or token (Infura ``/v3/<32 hex>``, Alchemy
#: ``/v2/<key>``...): long, and made of letters and digits.
_KEY_SEGMENT = re.compile(r"/(?=[A-Za-z0-9_\-]*\d)(?=[A-Za-z0-9_\-]*[A-Za-z])[A-Za-z0-9_\-]{16,}")
REDACTED = "***"


def redact(text: object) -> str:
    """``text`` with the credentials of any URL in it replaced by ``***``: user and password,
    query strings, and path segments that look like keys. For log lines about the node."""
    shown = str(text)
    shown = _USERINFO.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", shown)
    shown = _QUERY.sub(f"?{REDACTED}", shown)
    return _KEY_SEGMENT.sub(f"/{REDACTED}", shown)
