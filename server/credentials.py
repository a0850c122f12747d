"""Where a credential travels, named once, and how it is kept out of everything the server writes.

The policy middleware reads an API key from the ``X-API-Key`` header or a ``KEY_PARAMS`` query
parameter (``api_key``, or ``tk`` as Tianditu's clients send it), else a browser session from the
``SESSION_COOKIE`` cookie (the ``Cookie`` header is a credential header: never cached on, never
logged). Every name in ``CREDENTIAL_PARAMS`` (the key parameters and the names clients commonly put
other secrets under) is stripped, whatever its case, from the links the server writes, from cache
keys, from every log line and from the audit; a request carrying one is not anonymous.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlencode

KEY_HEADER_NAME = "X-API-Key"
KEY_HEADER = KEY_HEADER_NAME.lower().encode()
SESSION_COOKIE = "onemap_session"
CREDENTIAL_HEADERS = (KEY_HEADER, b"authorization", b"cookie")
KEY_PARAMS = ("api_key", "tk")  # tk: Tianditu's name, which WMTS clients send
CREDENTIAL_PARAMS = frozenset({*KEY_PARAMS, "apikey", "access_token"})
# one query parameter as RFC 3986 allows it in a URL's query, no "&"; and a malformed percent escape
_QUERY_TEXT = re.compile(r"[A-Za-z0-9._~!$'()*+,;=:@/?%-]*")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def is_credential(name: str) -> bool:
    """Whether a query parameter of this name carries a credential."""
    return name.lower() in CREDENTIAL_PARAMS


def without_credentials(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Query parameters (name, value) with every credential left out, in their order."""
    return [(k, v) for k, v in pairs if not is_credential(k)]


def redacted_query(query_string: str, leave_out: Iterable[str] = ()) -> str:
    """A raw query string with every credential (and any parameter named in ``leave_out``) left out. The
    other parameters keep the client's encoding when it is plain URL query text, else are re-encoded."""
    pieces = []
    for piece in query_string.split("&"):
        name = unquote_plus(piece.partition("=")[0])
        if not piece or is_credential(name) or name in leave_out:
            continue
        plain = _QUERY_TEXT.fullmatch(piece) and not _BAD_ESCAPE.search(piece)
        pieces.append(piece if plain else urlencode(parse_qsl(piece, keep_blank_values=True)))
    return "&".join(pieces)


def redacted_target(target: str) -> str:
    """A request target (``path?query``) with every credential left out of its query."""
    path, sep, query = target.partition("?")
    if not sep:
        return target
    query = redacted_query(query)
    return f"{path}?{query}" if query else path


# Control characters (C0, DEL, C1, the Unicode line and paragraph separators) and the backslash that
# introduces their escapes: what a client put in a path or parameter can never start a new log line.
_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}
_ESCAPES |= {0x2028: "\\u2028", 0x2029: "\\u2029", ord("\\"): "\\\\"}


def printable(text: str) -> str:
    """``text`` with every control character written as an escape (``\\x0a``), on one line."""
    if text.isprintable() and "\\" not in text:  # the common case, without building a copy
        return text
    return text.translate(_ESCAPES)


def _safe(value: object) -> object:
    if not isinstance(value, str):
        return value
    lowered = value.lower()
    if "?" in value and any(name in lowered for name in CREDENTIAL_PARAMS):
        value = redacted_target(value)
    return printable(value)


def redact_logs() -> None:
    """Keep credentials and control characters out of every log line the process writes, whatever the logger.

    Log records are made with their string arguments cleaned: a request target loses its credential
    parameters, and control characters are escaped, so a ``%0A`` in a path cannot forge a line. Once
    per process; repeated calls do nothing.
    """
    make = logging.getLogRecordFactory()
    if getattr(make, "onemap_redacting", False):
        return

    def record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        made = make(*args, **kwargs)
        if isinstance(made.args, tuple):
            made.args = tuple(_safe(a) for a in made.args)
        elif isinstance(made.args, Mapping):
            made.args = {k: _safe(v) for k, v in made.args.items()}
        return made

    record.onemap_redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(record)
