"""Which registered raster asset answers a request: by explicit item id or by acquisition time.

Clients name items (asset ids from the catalog), never paths; the file of an asset is found by
``server.assets.asset_path``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from server.catalog import RasterAsset, RasterCollection
from server.errors import InvalidParameter, NotFound
from server.params import parse_datetime, parse_instant
from server.policy.model import Restriction, checked
from server.policy.resolve import restricted_raster
from server.sheets import SheetIndex


def readable(collection: RasterCollection, *, restriction: Restriction) -> RasterCollection:
    """The collection as ``restriction`` lets it be read: resolution and zooms no finer than its cap.

    Every raster read (map tiles, terrain, elevation, asset files) starts here, so a read handed a
    catalog collection is capped all the same, and one handed no restriction raises ``RestrictionError``.
    """
    return restricted_raster(collection, checked(restriction, collection))


def acquired(asset: RasterAsset) -> dt.datetime:
    """The acquisition time of an asset (an RFC 3339 date-time or a date in the catalog)."""
    return parse_instant(asset.datetime)


def select_asset(collection: RasterCollection, item: str | None, when: str | None) -> RasterAsset:
    """The asset for ``item`` if given; else the latest acquired at or before ``when`` (an instant; a
    date: by the end of that day), or the latest inside ``when`` (an interval); else the latest of all.

    ``when`` is a ``datetime`` parameter as everywhere (``server.params``)."""
    assets = collection.raster.assets
    if item is not None:
        if when is not None:
            raise InvalidParameter("Give either 'item' or 'datetime', not both.")
        found = next((a for a in assets if a.id == item), None)
        if found is None:
            raise NotFound(f"Item '{item}' does not exist in collection '{collection.id}'.")
        return found
    ordered = sorted(assets, key=acquired)
    interval = parse_datetime(when)
    if when is None or interval is None:
        return ordered[-1]
    start = interval.start if "/" in when else None  # an instant: anything acquired by its end
    end = interval.end
    inside = [a for a in ordered if (start is None or acquired(a) >= start) and (end is None or acquired(a) <= end)]
    if not inside:
        first = ordered[0].datetime
        raise NotFound(
            f"Collection '{collection.id}' has no acquisition for datetime '{when}' "
            f"(acquisitions: {', '.join(a.datetime for a in ordered)}; the earliest is {first})."
        )
    return inside[-1]


def iso(value: dt.datetime) -> str:
    """An instant as the sheet index stores acquisition times (RFC 3339, UTC, whole seconds)."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class SheetQuery:
    """Which sheets of a mosaic a request reads: one acquisition, or those acquired in [start, end]."""

    acquisition: str | None = None
    start: str | None = None
    end: str | None = None


def select_sheets(collection: RasterCollection, index: SheetIndex, item: str | None, when: str | None) -> SheetQuery:
    """The time switch of a mosaic: ``item`` (an acquisition), or for ``when`` (an instant) every
    acquisition at or before it, or (an interval) inside it, or without either every acquisition;
    per area, the newest sheet among them is read. 404 when no acquisition qualifies."""
    known = index.acquisitions()
    if item is not None:
        if when is not None:
            raise InvalidParameter("Give either 'item' or 'datetime', not both.")
        if item not in {a.id for a in known}:
            raise NotFound(f"Item '{item}' does not exist in collection '{collection.id}'.")
        return SheetQuery(acquisition=item)
    interval = parse_datetime(when)
    if when is None or interval is None:
        return SheetQuery()
    start = iso(interval.start) if "/" in when and interval.start else None
    end = iso(interval.end) if interval.end else None
    if not any((start is None or a.datetime >= start) and (end is None or a.datetime <= end) for a in known):
        listed = ", ".join(a.datetime for a in known) or "none"
        raise NotFound(f"Collection '{collection.id}' has no acquisition for datetime '{when}' "
                       f"(acquisitions: {listed}).")
    return SheetQuery(start=start, end=end)
