"""The small protocol every data source implements, and the values that cross it.

Routes parse and validate client input into an ``ItemQuery`` whose identifiers all come from the
catalog's allowlist; a source turns it into one read and hands back bytes ready to send.

Storage: each vector collection is a table named ``source.table`` with one column per catalog field
(string -> text, integer -> bigint, number -> double precision, date -> date, boolean, datetime ->
timestamptz) and a geometry column ``source.geometry_field`` in ``source.srid`` (EPSG:4490, lon/lat
order). The id field is unique and indexed; the geometry has a spatial index.

Feature JSON, identical from every source: ``{"type": "Feature", "id": <id value>, "geometry": {...},
"properties": {<selected fields in catalog order>}}``; coordinates lon/lat rounded to 7 decimals,
dates as ``YYYY-MM-DD``, nulls as null.

Every read is given the caller's ``Restriction`` and applies it before any byte leaves the source
(see ``Source``). Vector tiles apply its precision and generalization to the stored geometry (in the
storage CRS, exactly as items do) before the tile's own simplification, clip and quantization.

Paging is keyset on the id field, ascending. A forward page (no cursor, or a forward cursor with key K)
reads up to limit+1 rows with id > K: ``next_key`` is the last returned id when more rows exist,
``prev_key`` is the first returned id when a cursor was given. A backward cursor with key K reads up to
limit+1 rows with id < K in descending order and returns them ascending: ``prev_key`` is the first
returned id when more rows exist before, ``next_key`` is the last returned id. ``number_matched`` is
set only when exact for free: first page (no cursor) with fewer than limit+1 rows found.
Temporal filters on a date field compare calendar dates (UTC) of the interval ends, inclusive.
bbox is in CRS84 and selects features whose geometry intersects it.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from server.catalog import VectorCollection
from server.errors import InvalidParameter
from server.policy.model import Restriction, RestrictionError, checked
from server.sources.areas import Overlap, Site


@dataclass(frozen=True)
class TimeInterval:
    """A closed/open interval in UTC; ``None`` is open-ended. An instant has start == end."""

    start: dt.datetime | None
    end: dt.datetime | None


@dataclass(frozen=True)
class Cursor:
    """A keyset position: page after (``forward``) or before the given id value."""

    key: str | int
    forward: bool = True

    def encode(self) -> str:
        kind = "i" if isinstance(self.key, int) else "s"
        raw = f"{'n' if self.forward else 'p'}{kind}{self.key}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> "Cursor":
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            direction, kind, key = raw[0], raw[1], raw[2:]
            if direction not in "np" or kind not in "is":
                raise ValueError
            return cls(int(key) if kind == "i" else key, direction == "n")
        except (ValueError, IndexError, UnicodeDecodeError):
            raise InvalidParameter("Parameter 'cursor' is not a cursor this server issued.") from None


@dataclass(frozen=True)
class ItemQuery:
    """A validated items request. ``properties`` are field names from the catalog, in output order."""

    properties: tuple[str, ...]
    limit: int
    bbox: tuple[float, float, float, float] | None = None
    interval: TimeInterval | None = None
    cursor: Cursor | None = None


@dataclass
class Page:
    """One page of features: ``features`` is the JSON array text of GeoJSON Feature objects."""

    features: bytes
    number_returned: int
    next_key: str | int | None = None
    prev_key: str | int | None = None
    number_matched: int | None = None


@dataclass(frozen=True)
class Extent:
    """The data's current extent in CRS84 and its time span, if any."""

    bbox: tuple[float, float, float, float] | None
    interval: tuple[str | None, str | None] | None = None


@dataclass(frozen=True)
class TileRequest:
    """One layer of a vector tile: bounds in the tile matrix set's CRS plus generalization limits.

    ``bounds`` (minx, miny, maxx, maxy, x = easting/longitude) and ``srid`` are the tile's; ``extent``
    and ``buffer`` are in tile units. ``simplify`` (tolerance) and ``min_area`` are in the tile CRS's
    units (units²); lines shorter than sqrt(min_area) are dropped too. ``zoom`` is the equivalent
    WebMercatorQuad level, which picks the pre-generalized copy (see ``sources/tile_overviews.py``).
    The biggest features are kept first when more than ``max_features`` fall in the tile.
    """

    bounds: tuple[float, float, float, float]
    srid: int
    extent: int = 4096
    buffer: int = 64
    simplify: float = 0.0
    min_area: float = 0.0
    max_features: int = 20_000
    properties: tuple[str, ...] = field(default_factory=tuple)
    zoom: int = 0


Layers = Sequence[tuple[VectorCollection, TileRequest]]
ReadLayer = tuple[VectorCollection, TileRequest, Restriction]  # a layer as a backend reads it


def restricted_layers(layers: Layers, restrictions: Mapping[str, Restriction]) -> list[ReadLayer]:
    """Each layer with its collection's restriction; ``RestrictionError`` when one has none.

    Layers above their restriction's ``max_zoom`` are left out (nothing is drawn there), and each
    request's properties are narrowed to the fields the restriction shows.
    """
    if not isinstance(restrictions, Mapping):
        found = type(restrictions).__name__
        raise RestrictionError(f"reading tile layers needs the caller's restrictions, not {found}")
    out: list[ReadLayer] = []
    for c, req in layers:
        restriction = checked(restrictions.get(c.id), c)
        if restriction.max_zoom is not None and req.zoom > restriction.max_zoom:
            continue
        props = restriction.select(c, req.properties)
        out.append((c, req if props == req.properties else replace(req, properties=props), restriction))
    return out


class Source(Protocol):
    """Data access for vector collections. Implementations: PostGIS and the embedded GeoPackage.

    Every method that reads data takes the caller's ``Restriction`` of the collection as a required
    keyword argument (``restrictions`` by collection id for several layers) and applies all of it:
    only its fields are selected (whatever the collection object lists), its excluded rows are never
    read, masked fields are masked, geometries are generalized and snapped as it says, tiles stop
    above its ``max_zoom``. A read given anything else (None, a missing entry, another collection's
    restriction) raises ``RestrictionError``; an unrestricted read is ``Restriction.unrestricted(c)``.
    """

    async def open(self) -> None:
        """Open pools or handles; called once from the app lifespan."""

    async def close(self) -> None:
        """Release everything ``open`` took."""

    async def query(self, collection: VectorCollection, q: ItemQuery, *, restriction: Restriction) -> Page:
        """One page of features matching ``q``, in ascending id order."""

    async def get(
        self, collection: VectorCollection, feature_id: str, properties: tuple[str, ...], *, restriction: Restriction
    ) -> bytes | None:
        """One feature as GeoJSON bytes, or ``None`` when there is no such feature (or it is excluded)."""

    async def extent(self, collection: VectorCollection, *, restriction: Restriction) -> Extent:
        """The extent of the rows the restriction keeps, as stored."""

    async def overlaps(self, collection: VectorCollection, site: Site, fields: tuple[str, ...], *,
                       restriction: Restriction) -> list[Overlap]:
        """The kept rows overlapping ``site``, by id, with ``fields``' values and the overlap in m² (see
        ``server.sources.areas``); ``fields`` must be visible and unmasked in the restriction."""

    async def version(self, collection: VectorCollection) -> str:
        """A token that changes whenever the collection's data changes."""

    async def check(self) -> list[str]:
        """Problems with the store for this catalog (missing tables or columns); empty when fine."""

    async def tile(self, collection: VectorCollection, req: TileRequest, *, restriction: Restriction) -> bytes:
        """One MVT layer named after the collection; empty bytes when no feature falls in the tile."""

    async def tiles(self, layers: Layers, *, restrictions: Mapping[str, Restriction]) -> bytes:
        """Several MVT layers in one tile (one read where the backend allows); empty bytes when none."""
