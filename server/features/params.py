"""Parsing and validation of the OGC API Features query parameters.

Each parser takes the raw string a client sent and either returns a typed value or raises
``InvalidParameter`` with a description naming the parameter and what is wrong with it.
"""

from __future__ import annotations

import datetime as dt
import math
import re

from server.catalog import Collection
from server.errors import InvalidParameter
from server.sources import TimeInterval

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_OPEN = {"", ".."}


def parse_bbox(raw: str | None) -> tuple[float, float, float, float] | None:
    """A CRS84 bbox ``minx,miny,maxx,maxy`` (a 6-number 3D bbox keeps its horizontal part)."""
    if raw is None:
        return None
    parts = raw.split(",")
    if len(parts) not in (4, 6):
        raise InvalidParameter(
            f"Parameter 'bbox' needs 4 (or 6) comma-separated numbers, got {len(parts)}."
        )
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise InvalidParameter("Parameter 'bbox' must contain only numbers.") from None
    if not all(math.isfinite(v) for v in values):
        raise InvalidParameter("Parameter 'bbox' must contain only finite numbers.")
    if len(values) == 6:
        values = [values[0], values[1], values[3], values[4]]
    minx, miny, maxx, maxy = values
    for name, v, lim in (("minx", minx, 180), ("maxx", maxx, 180), ("miny", miny, 90), ("maxy", maxy, 90)):
        if not -lim <= v <= lim:
            raise InvalidParameter(f"Parameter 'bbox': {name} {v} is outside -{lim}..{lim} (CRS84 degrees).")
    if minx > maxx:
        raise InvalidParameter("Parameter 'bbox': minx is greater than maxx.")
    if miny > maxy:
        raise InvalidParameter("Parameter 'bbox': miny is greater than maxy.")
    return minx, miny, maxx, maxy


def _instant(text: str, end: bool) -> dt.datetime:
    """An RFC 3339 date-time, or a full date (start or end of that day), as an aware UTC datetime."""
    if _DATE.match(text):
        day = dt.date.fromisoformat(text)
        t = dt.time.max if end else dt.time.min
        return dt.datetime.combine(day, t, tzinfo=dt.timezone.utc)
    if "T" not in text.upper():
        raise ValueError(text)
    value = dt.datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(text)
    return value.astimezone(dt.timezone.utc)


def parse_datetime(raw: str | None) -> TimeInterval | None:
    """An instant, a closed interval ``a/b`` or a half-open one ``../b``, ``a/..``."""
    if raw is None:
        return None
    parts = raw.split("/")
    if len(parts) > 2 or all(p in _OPEN for p in parts):
        raise InvalidParameter(
            "Parameter 'datetime' must be an RFC 3339 instant or an interval 'start/end' (either end may be '..')."
        )
    try:
        if len(parts) == 1:
            start, end = _instant(parts[0], end=False), _instant(parts[0], end=True)
            if not _DATE.match(parts[0]):
                end = start
        else:
            start = None if parts[0] in _OPEN else _instant(parts[0], end=False)
            end = None if parts[1] in _OPEN else _instant(parts[1], end=True)
    except ValueError:
        raise InvalidParameter(f"Parameter 'datetime': '{raw}' is not an RFC 3339 date-time or interval.") from None
    if start and end and start > end:
        raise InvalidParameter("Parameter 'datetime': the interval starts after it ends.")
    return TimeInterval(start, end)


def parse_limit(raw: str | None, default: int, maximum: int) -> int:
    """A page size between 1 and the configured maximum."""
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidParameter(f"Parameter 'limit' must be an integer, got '{raw}'.") from None
    if not 1 <= value <= maximum:
        raise InvalidParameter(f"Parameter 'limit' must be between 1 and {maximum}, got {value}.")
    return value


def parse_properties(raw: str | None, collection: Collection, visible: tuple[str, ...]) -> tuple[str, ...]:
    """The selected property names in catalog order; every name must be a visible field."""
    if raw is None:
        return visible
    names = [p.strip() for p in raw.split(",") if p.strip()]
    unknown = [n for n in names if n not in visible]
    if unknown:
        raise InvalidParameter(
            f"Parameter 'properties': unknown property {', '.join(repr(n) for n in unknown)} "
            f"in collection '{collection.id}'."
        )
    wanted = set(names)
    return tuple(n for n in visible if n in wanted)
