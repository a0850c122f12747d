"""Spatial extents of collections (CRS84 boxes): the one union used by tiles, styles, the viewer and seeding."""

from __future__ import annotations

from collections.abc import Iterable

from server.catalog import Collection

Bbox = tuple[float, float, float, float]


def as_bbox(values: Iterable[float]) -> Bbox:
    """Four numbers (minx, miny, maxx, maxy) as a box; any other count is a ValueError."""
    minx, miny, maxx, maxy = values
    return minx, miny, maxx, maxy


def union_bbox(collections: Iterable[Collection]) -> Bbox | None:
    """The smallest CRS84 box around the collections' extents, or None for no collection."""
    boxes = [c.extent.spatial.bbox for c in collections]
    if not boxes:
        return None
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )
