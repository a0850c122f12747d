"""Where a credential travels, named once, and how it is kept out of everything the server writes.

The policy middleware reads an API key from the ``X-API-Key`` header or a ``KEY_PARAMS`` query
parameter. Every name in ``CREDENTIAL_PARAMS`` (the key parameters and the names clients commonly
put other secrets under) is stripped, whatever its case, from the links the server writes, from
cache keys, from the access log and from the audit; a request carrying one is not anonymous.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode

KEY_HEADER_NAME = "X-API-Key"
KEY_HEADER = KEY_HEADER_NAME.lower().encode()
CREDENTIAL_HEADERS = (KEY_HEADER, b"authorization")
KEY_PARAMS = ("api_key",)
CREDENTIAL_PARAMS = frozenset({*KEY_PARAMS, "apikey", "access_token"})
ACCESS_LOGGER = "uvicorn.access"


def is_credential(name: str) -> bool:
    """Whether a query parameter of this name carries a credential."""
    return name.lower() in CREDENTIAL_PARAMS


def without_credentials(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Query parameters (name, value) with every credential left out, in their order."""
    return [(k, v) for k, v in pairs if not is_credential(k)]


def redacted_query(query_string: str) -> str:
    """A raw query string with every credential left out (the rest re-encoded)."""
    return urlencode(without_credentials(parse_qsl(query_string, keep_blank_values=True)))


def redacted_target(target: str) -> str:
    """A request target (``path?query``) with every credential left out of its query."""
    path, sep, query = target.partition("?")
    if not sep:
        return target
    query = redacted_query(query)
    return f"{path}?{query}" if query else path


class _AccessLogRedaction(logging.Filter):
    """Takes credentials out of the request target of each access log line (uvicorn's format)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redacted_target(a) if isinstance(a, str) and "?" in a else a for a in record.args)
        return True


def redact_access_log() -> None:
    """Keep credentials out of the server's access log (once per process; repeated calls do nothing)."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, _AccessLogRedaction) for f in logger.filters):
        logger.addFilter(_AccessLogRedaction())
