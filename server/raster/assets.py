"""Which registered raster asset answers a request: by explicit item id or by acquisition time.

Clients name items (asset ids from the catalog), never paths; the file of an asset is found by
``server.assets.asset_path``.
"""

from __future__ import annotations

import datetime as dt
import re

from server.catalog import RasterAsset, RasterCollection
from server.errors import InvalidParameter, NotFound
from server.policy.model import Restriction, checked
from server.policy.resolve import restricted_raster

_END_OF_DAY = dt.time(23, 59, 59, 999999, tzinfo=dt.timezone.utc)
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def parse_time(value: str, name: str = "datetime", end: bool = False, strict: bool = False) -> dt.datetime:
    """An RFC 3339 date-time or a date (UTC). A bare date means its start, or its end with ``end``.

    ``strict`` accepts RFC 3339 date-times only (with a time zone), as STAC API search requires.
    """
    text = value.strip()
    if strict and not RFC3339.match(text):
        raise InvalidParameter(
            f"Parameter '{name}': '{value}' is not an RFC 3339 date-time (e.g. 2024-05-18T02:35:00Z)."
        )
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            time = _END_OF_DAY if end else dt.time(0, tzinfo=dt.timezone.utc)
            return dt.datetime.combine(day, time)
        parsed = dt.datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise InvalidParameter(
            f"Parameter '{name}': '{value}' is not an RFC 3339 date-time or date (e.g. 2024-05-18T02:35:00Z)."
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def parse_interval(
    value: str, name: str = "datetime", strict: bool = False
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """An instant (start == end), or ``start/end`` with ``..`` or empty for an open end."""
    if "/" not in value:
        return parse_time(value, name, strict=strict), parse_time(value, name, end=True, strict=strict)
    parts = value.split("/")
    if len(parts) != 2 or all(p.strip() in ("", "..") for p in parts):
        raise InvalidParameter(f"Parameter '{name}': '{value}' is not an instant or a start/end interval.")
    start = None if parts[0].strip() in ("", "..") else parse_time(parts[0], name, strict=strict)
    stop = None if parts[1].strip() in ("", "..") else parse_time(parts[1], name, end=True, strict=strict)
    if start and stop and start > stop:
        raise InvalidParameter(f"Parameter '{name}': the interval '{value}' ends before it starts.")
    return start, stop


def readable(collection: RasterCollection, *, restriction: Restriction) -> RasterCollection:
    """The collection as ``restriction`` lets it be read: resolution and zooms no finer than its cap.

    Every raster read (map tiles, terrain, elevation, asset files) starts here, so a read handed a
    catalog collection is capped all the same, and one handed no restriction raises ``RestrictionError``.
    """
    return restricted_raster(collection, checked(restriction, collection))


def acquired(asset: RasterAsset) -> dt.datetime:
    """The acquisition time of an asset (catalog values are validated RFC 3339)."""
    return parse_time(asset.datetime)


def select_asset(collection: RasterCollection, item: str | None, when: str | None) -> RasterAsset:
    """The asset for ``item`` if given; else the latest acquired at or before ``when`` (an instant),
    or the latest inside ``when`` (an interval); else the latest of all."""
    assets = collection.raster.assets
    if item is not None:
        if when is not None:
            raise InvalidParameter("Give either 'item' or 'datetime', not both.")
        found = next((a for a in assets if a.id == item), None)
        if found is None:
            raise NotFound(f"Item '{item}' does not exist in collection '{collection.id}'.")
        return found
    ordered = sorted(assets, key=acquired)
    if when is None:
        return ordered[-1]
    if "/" in when:
        start, stop = parse_interval(when)
        inside = [a for a in ordered if (start is None or acquired(a) >= start) and (stop is None or acquired(a) <= stop)]
    else:
        stop = parse_time(when, end=True)
        inside = [a for a in ordered if acquired(a) <= stop]
    if not inside:
        first = ordered[0].datetime
        raise NotFound(
            f"Collection '{collection.id}' has no acquisition for datetime '{when}' "
            f"(acquisitions: {', '.join(a.datetime for a in ordered)}; the earliest is {first})."
        )
    return inside[-1]
