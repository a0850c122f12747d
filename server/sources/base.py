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
bbox is in CRS84 and selects features whose geometry intersects it; when ``bbox_area`` is set (a bbox
given in a projected ``bbox-crs``) the features must intersect that polygon (WKB, storage CRS) and
``bbox`` is its CRS84 envelope, for the spatial index.

Output CRS (``ItemQuery.crs``, Features Part 2): geometries are desensitized in the storage CRS first,
then transformed (PostGIS: ``ST_Transform`` in the same statement), axes swapped where the CRS puts
northing first (``ST_FlipCoordinates``), and rounded: to millimetres in a projected CRS, else as above.
A CQL2 ``filter`` is evaluated on the stored values and geometry (before masking and generalization,
like bbox); both sources give the same answers (``server.filters``).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from server.catalog import VectorCollection
from server.crs import CRS84, Crs
from server.errors import InvalidParameter
from server.params import TimeInterval
from server.policy.model import Restriction, RestrictionError, checked
from server.sources.areas import Overlap, Site
from server.sources.keyset import SortKey, order_keys

if TYPE_CHECKING:
    from server.filters import Filter


INTEGER = re.compile(r"[+-]?[0-9]+")
INT64_LIMIT = 2**63


def integer_id(text: str, what: str) -> int | None:
    """``text`` as a 64-bit integer key; ``None`` when it is no integer; ``InvalidParameter`` beyond 64 bits.

    Every backend stores integer ids in 64 bits, so a larger number names nothing on any of them
    and is a client error, the same everywhere (never the driver's overflow).
    """
    if not INTEGER.fullmatch(text):
        return None
    digits = text.lstrip("+-").lstrip("0")
    if len(digits) > 19 or not -INT64_LIMIT <= int(text) < INT64_LIMIT:
        raise InvalidParameter(f"{what} is beyond the range of a 64-bit integer.")
    return int(text)


@dataclass(frozen=True)
class Cursor:
    """A keyset position: the page after (``forward``) or before the row with id ``key`` whose sort key
    values were ``values``, for the ``sortby`` given as ``sort`` (tokens such as ``-area_m2``)."""

    key: str | int
    forward: bool = True
    values: tuple[Any, ...] = ()
    sort: str = ""

    def encode(self) -> str:
        raw = orjson.dumps(["n" if self.forward else "p", self.key, list(self.values), self.sort])
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        try:
            raw = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            direction, key, values, sort = raw
            if direction not in ("n", "p") or isinstance(key, bool) or not isinstance(key, str | int):
                raise ValueError
            if isinstance(key, int) and not -INT64_LIMIT <= key < INT64_LIMIT:
                raise InvalidParameter("Parameter 'cursor' is beyond the range of a 64-bit integer.")
            if not isinstance(values, list) or not isinstance(sort, str):
                raise ValueError
            if not all(v is None or isinstance(v, str | int | float | bool) for v in values):
                raise ValueError
            return cls(key, direction == "n", tuple(values), sort)
        except (ValueError, TypeError, orjson.JSONDecodeError):
            raise InvalidParameter("Parameter 'cursor' is not a cursor this server issued.") from None


AreaLayer = tuple[VectorCollection, tuple[str, ...], Restriction]  # a layer to measure: collection, fields, restriction


@dataclass(frozen=True)
class ItemQuery:
    """A validated items request. ``properties`` are field names from the catalog, in output order;
    ``filter`` is a CQL2 filter checked against the caller's queryable fields."""

    properties: tuple[str, ...]
    limit: int
    bbox: tuple[float, float, float, float] | None = None
    interval: TimeInterval | None = None
    cursor: Cursor | None = None
    crs: Crs = CRS84
    bbox_area: bytes | None = None
    sortby: tuple[SortKey, ...] = ()
    filter: Filter | None = None

    @property
    def sort_token(self) -> str:
        """The sort order as a cursor records it."""
        return ",".join(k.token for k in self.sortby)

    def boundary(self, collection: VectorCollection) -> tuple[list[SortKey], list[Any]] | None:
        """The full page order and the cursor row's key values in it (None without a cursor); a cursor
        issued for another order is a 400."""
        if self.cursor is None:
            return None
        if self.cursor.sort != self.sort_token or len(self.cursor.values) != len(self.sortby):
            raise InvalidParameter("Parameter 'cursor' was issued for another sortby; follow the links of this order.")
        id_field = collection.source.id_field
        keys = order_keys(self.sortby, id_field, self.cursor.forward)
        return keys, [self.cursor.key if k.field == id_field else self.cursor.values[i] for i, k in enumerate(keys)]

    def order(self, collection: VectorCollection) -> list[SortKey]:
        """The full order of the page read (backwards for a ``prev`` cursor)."""
        return order_keys(self.sortby, collection.source.id_field, self.cursor is None or self.cursor.forward)


@dataclass
class Page:
    """One page of features: ``features`` is the JSON array text of GeoJSON Feature objects."""

    features: bytes
    number_returned: int
    next_key: str | int | None = None
    prev_key: str | int | None = None
    number_matched: int | None = None
    next_values: tuple[Any, ...] = ()
    prev_values: tuple[Any, ...] = ()


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
        self, collection: VectorCollection, feature_id: str, properties: tuple[str, ...], *, restriction: Restriction,
        crs: Crs = CRS84,
    ) -> bytes | None:
        """One feature as GeoJSON bytes in ``crs``, or ``None`` when there is no such feature (or it is excluded)."""

    async def extent(self, collection: VectorCollection, *, restriction: Restriction) -> Extent:
        """The extent of the rows the restriction keeps, as stored."""

    async def overlaps(self, collection: VectorCollection, site: Site, fields: tuple[str, ...], *,
                       restriction: Restriction) -> list[Overlap]:
        """The kept rows overlapping ``site``, by id, with ``fields``' values and the overlap in m² (see
        ``server.sources.areas``); ``fields`` must be visible and unmasked in the restriction."""

    async def overlaps_many(self, layers: list[AreaLayer], site: Site) -> list[list[Overlap]]:
        """``overlaps`` of each layer (collection, fields, restriction) over one site, in the layers' order,
        read at once (one statement on PostGIS)."""

    async def version(self, collection: VectorCollection) -> str:
        """A token that changes whenever the collection's data changes."""

    async def check(self) -> list[str]:
        """Problems with the store for this catalog (missing tables or columns); empty when fine."""

    async def tile(self, collection: VectorCollection, req: TileRequest, *, restriction: Restriction) -> bytes:
        """One MVT layer named after the collection; empty bytes when no feature falls in the tile."""

    async def tiles(self, layers: Layers, *, restrictions: Mapping[str, Restriction]) -> bytes:
        """Several MVT layers in one tile (one read where the backend allows); empty bytes when none."""
