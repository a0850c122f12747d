"""The query parameters every capability shares, parsed one way: ``datetime`` and ``limit``.

``datetime`` (Features items, raster tiles and elevation, STAC search GET and POST) is an RFC 3339
date-time with a time zone (``2024-05-18T02:35:00Z``), a date (``2024-05-31``: that whole day, as an
instant and as either end of an interval), or an interval ``start/end`` whose open end is ``..`` or
empty (``2024-01-01/..``, ``../2024-05-31``, ``/2024-05-31``). Bad input is a 400 naming the
parameter, with the same text wherever it is sent.

``limit`` (Features items, STAC search GET and POST) defaults to ``settings.default_limit``; a value
above ``settings.max_limit`` is served as the maximum (OGC API Features permits this and its example
API does it); 0, negatives and non-integers are a 400 naming ``limit``.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from server.errors import InvalidParameter

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_FRACTION = re.compile(r"(\.\d{6})\d+")
_OPEN = ("", "..")



@dataclass(frozen=True)
class TimeInterval:
    """A closed/open interval in UTC; ``None`` is open-ended. An instant has start == end."""

    start: dt.datetime | None
    end: dt.datetime | None


DATETIME_DESCRIPTION = (
    "An RFC 3339 date-time with a time zone (2024-05-18T02:35:00Z), a date (2024-05-31: that whole day), "
    "or an interval start/end whose open end is '..' or empty (2024-01-01/.., ../2024-05-31)."
)
LIMIT_DESCRIPTION = (
    "Page size, 1 or more: 10 by default; a value above the maximum (10000 by default) is served as the maximum."
)


def parse_instant(text: str, name: str = "datetime", end: bool = False) -> dt.datetime:
    """An RFC 3339 date-time, or a date (its first instant, or its last with ``end``), as aware UTC."""
    try:
        if _DATE.match(text):
            day = dt.date.fromisoformat(text)
            return dt.datetime.combine(day, dt.time.max if end else dt.time.min, tzinfo=dt.UTC)
        if _DATE_TIME.match(text):
            value = dt.datetime.fromisoformat(_FRACTION.sub(r"\1", text.upper()))
            return value.astimezone(dt.UTC)
    except ValueError:
        pass
    raise InvalidParameter(
        f"Parameter '{name}': '{text}' is not an RFC 3339 date-time (2024-05-18T02:35:00Z), "
        "a date (2024-05-31) or an interval of them (2024-01-01/..)."
    )


def parse_datetime(raw: str | None, name: str = "datetime") -> TimeInterval | None:
    """An instant (a date-time: start == end; a date: that whole day) or an interval with open ends."""
    if raw is None:
        return None
    parts = raw.split("/")
    if len(parts) == 1:
        return TimeInterval(parse_instant(raw, name), parse_instant(raw, name, end=True))
    if len(parts) > 2 or all(p in _OPEN for p in parts):
        raise InvalidParameter(
            f"Parameter '{name}': '{raw}' is neither an instant nor an interval 'start/end' "
            "(one end may be open: '..' or empty)."
        )
    start = None if parts[0] in _OPEN else parse_instant(parts[0], name)
    end = None if parts[1] in _OPEN else parse_instant(parts[1], name, end=True)
    if start and end and start > end:
        raise InvalidParameter(f"Parameter '{name}': the interval '{raw}' starts after it ends.")
    return TimeInterval(start, end)


def parse_limit(raw: int | str | None, default: int, maximum: int) -> int:
    """The page size: ``default`` when absent, at most ``maximum``; below 1 or not an integer is a 400."""
    if raw is None:
        return default
    try:
        value = raw if isinstance(raw, int) else int(raw)
    except ValueError:
        raise InvalidParameter(f"Parameter 'limit' must be an integer, got '{raw}'.") from None
    if value < 1:
        raise InvalidParameter(f"Parameter 'limit' must be 1 or more, got {value}.")
    return min(value, maximum)
