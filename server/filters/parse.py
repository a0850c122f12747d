"""From what the client sent to CQL2-JSON: size and nesting limits, then the ``cql2`` parser.

Both encodings go through the ``cql2`` library (CQL2 text is turned into CQL2-JSON, CQL2-JSON is
read and normalized), so one compiler (``server.filters.build``) handles both; the polygon literals of
a text filter are read ahead of it (``wkt.py``). The limits are
checked before the parser runs: its recursive descent must never meet unbounded nesting.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

import cql2
import orjson

from server.errors import InvalidParameter
from server.filters.wkt import QUOTED, lift, restore

LANGUAGES = ("cql2-text", "cql2-json", "cql-text")
# the Part 3 drafts' name of CQL2 text, which GDAL's OAPIF driver still looks for in the OpenAPI document
# (a ``filter-lang`` enum holding it) before it sends an attribute filter to the server
DRAFT_TEXT = "cql-text"
MAX_LENGTH = 32_768  # characters; a 200-vertex polygon in WKT takes about 8,000
MAX_DEPTH = 32  # nesting of parentheses (text) or of arrays and objects (JSON)
MAX_NOTS = 64  # NOT operators in a text filter (each one nests)
_QUOTED = re.compile(QUOTED)
_NOT = re.compile(r"\bnot\b", re.IGNORECASE)
_POSITION = re.compile(r"-->\s*(\d+):(\d+)")


def _fail(message: str) -> InvalidParameter:
    return InvalidParameter(f"Parameter 'filter': {message}")


def _text_nesting(text: str) -> None:
    """Reject text nested deeper than the limits (string literals and quoted names do not count). The
    counts over the whole text bound those outside quotes, so most filters skip the closer look."""
    if text.count("(") > MAX_DEPTH:  # fewer cannot nest deeper (the WKT of a polygon opens a few)
        depth = deepest = 0
        for ch in _unquoted(text):
            if ch == "(":
                depth += 1
                deepest = max(deepest, depth)
            elif ch == ")":
                depth -= 1
        if deepest > MAX_DEPTH:
            raise _fail(f"nested {deepest} levels deep; at most {MAX_DEPTH} levels are accepted.")
    if text.lower().count("not") > MAX_NOTS and len(_NOT.findall(_unquoted(text))) > MAX_NOTS:
        raise _fail(f"more than {MAX_NOTS} NOT operators.")


def _unquoted(text: str) -> str:
    """``text`` with its string literals and quoted names emptied."""
    return _QUOTED.sub("''", text) if "'" in text or '"' in text else text


def _json_nesting(doc: Any) -> None:
    """Reject a JSON document nested deeper than ``MAX_DEPTH`` (checked without recursion)."""
    stack = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _fail(f"nested more than {MAX_DEPTH} levels deep.")
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((child, depth + 1) for child in children)


def _parser_message(exc: Exception) -> str:
    found = _POSITION.search(str(exc))
    return f" (at line {found.group(1)}, column {found.group(2)})" if found else ""


def _from_text(raw: str | dict) -> dict[str, Any]:
    if not isinstance(raw, str):
        raise _fail("with filter-lang=cql2-text the filter must be a string.")
    _text_nesting(raw)
    text, lifted = lift(raw)
    if lifted:  # the parser reads the rest; the original text again if that fails, for its diagnostic
        with contextlib.suppress(Exception):
            doc = restore(cql2.parse_text(text).to_json(), lifted)
            if doc is not None:
                return doc
    try:
        return cql2.parse_text(raw).to_json()
    except Exception as exc:  # the parser raises plain exceptions with a pest diagnostic
        raise _fail(f"not valid CQL2 text{_parser_message(exc)}.") from None


def _from_json(raw: str | dict) -> Any:
    doc: Any = raw
    if isinstance(raw, str):
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            if "depth limit" in str(exc) or "recursion" in str(exc).lower():
                raise _fail(f"nested more than {MAX_DEPTH} levels deep.") from None
            raise _fail("not valid JSON (filter-lang=cql2-json).") from None
    _json_nesting(doc)
    if isinstance(doc, bool):  # TRUE or FALSE as the whole filter
        return doc
    if not isinstance(doc, dict):
        raise _fail('a CQL2-JSON filter is an object such as {"op": "=", "args": [...]}.')
    try:
        return cql2.Expr(doc).to_json()
    except Exception:  # a document the library cannot read as CQL2-JSON
        raise _fail("not valid CQL2-JSON.") from None


def parse_cql2(raw: str | dict, lang: str | None) -> Any:
    """The filter as normalized CQL2-JSON; ``raw`` is text (``cql2-text`` or JSON text) or, from a
    POST body, an already decoded ``cql2-json`` object."""
    lang = lang or ("cql2-json" if isinstance(raw, dict) else "cql2-text")
    if lang not in LANGUAGES:
        raise InvalidParameter(f"Parameter 'filter-lang' must be one of {', '.join(LANGUAGES)}, not {lang!r}.")
    if isinstance(raw, str) and len(raw) > MAX_LENGTH:
        raise _fail(f"{len(raw)} characters long; at most {MAX_LENGTH} are accepted.")
    if isinstance(raw, str) and not raw.strip():
        raise _fail("empty.")
    return _from_json(raw) if lang == "cql2-json" else _from_text(raw)
