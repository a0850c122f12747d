"""The catalog: one YAML file per collection in ``collections/``, validated into typed models.

Every file names its ``kind``: ``vector`` (a ``VectorCollection``: source table, fields, tiling) or
``raster`` (a ``RasterCollection``: COG assets). ``Collection`` is the union of the kinds; code that
serves one kind asks for that class. A bad file stops start-up with a message naming the file and
the key that is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, Literal, TypeVar, cast

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

IDENT = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
FieldType = Literal["string", "integer", "number", "boolean", "date", "datetime"]
Level = Literal["public", "sensitive", "secret"]  # classification, lowest first (see server.policy)


class Strict(BaseModel):
    """Base for catalog models: unknown keys are errors, models are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Text(Strict):
    """A text in Chinese and English."""

    zh: str
    en: str


class FieldSpec(Strict):
    """One attribute of a collection."""

    name: str
    type: FieldType
    title: Text
    description: Text | None = None
    codes: str | None = Field(default=None, description="Name of a code list the values come from")
    level: Level | None = Field(default=None, description="Classification when above the collection's")

    @field_validator("name")
    @classmethod
    def _ident(cls, v: str) -> str:
        if not IDENT.match(v):
            raise ValueError(f"'{v}' is not a valid field name (lower case, digits, underscore)")
        return v


class SourceSpec(Strict):
    """Where the features are stored: a table with an id column and a geometry column."""

    table: str
    id_field: str
    geometry_field: str = "geom"
    geometry_type: Literal[
        "Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon"
    ]
    srid: int = 4490

    @field_validator("table", "id_field", "geometry_field")
    @classmethod
    def _ident(cls, v: str) -> str:
        if not IDENT.match(v):
            raise ValueError(f"'{v}' is not a valid identifier")
        return v


class SpatialExtent(Strict):
    bbox: tuple[float, float, float, float]
    crs: str = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"


class TemporalExtent(Strict):
    interval: tuple[str | None, str | None]


class Extent(Strict):
    spatial: SpatialExtent
    temporal: TemporalExtent | None = None


class TileSpec(Strict):
    """Vector tile generalization: zoom range (WebMercatorQuad levels) and per-tile limits."""

    minzoom: int = Field(default=0, ge=0, le=24)
    maxzoom: int = Field(default=22, ge=0, le=24)
    simplify_px: float = Field(default=0.5, ge=0, description="Douglas-Peucker tolerance in tile pixels")
    min_area_px: float = Field(default=0.0, ge=0, description="Drop polygons smaller than this, in px²")
    max_features: int = Field(default=20_000, ge=1, description="Cap on features in one tile")
    extent: int = Field(default=4096, ge=256, le=16384)
    properties: list[str] | None = Field(
        default=None, description="Fields carried in vector tiles (all when unset; the id field always)"
    )


class ExtrudeSpec(Strict):
    """3D Tiles of a polygon collection: footprints extruded to a height, standing on a DEM."""

    height_field: str = Field(description="Numeric field holding the height above the base (m)")
    floors_field: str | None = Field(default=None, description="Integer field used (x floor_height_m) when "
                                     "the height is not visible to the caller")
    floor_height_m: float = Field(default=3.0, gt=0)
    default_height_m: float = Field(default=3.0, gt=0, description="Height when neither field is visible")
    terrain: str | None = Field(default=None, description="The DEM raster collection the bases stand on")
    properties: list[str] | None = Field(
        default=None, description="Fields carried as per-feature metadata (all when unset; the id field always)"
    )
    max_features: int = Field(default=1500, ge=1, description="Most buildings in one content tile")


class RasterAsset(Strict):
    """One registered raster file, addressed by id; clients never see or pass its path."""

    id: str
    path: str = Field(description="Relative to the data directory, or an object-store URL (s3://bucket/key) "
                                  "or GDAL virtual file system name (/vsis3/..., /vsicurl/...)")
    datetime: str


class RasterSpec(Strict):
    """A raster collection: imagery or an elevation model, as COG assets."""

    kind: Literal["imagery", "dem"]
    assets: list[RasterAsset]
    sheets: str | None = Field(
        default=None,
        description="A mosaic: the sheet index file (relative to the data directory) listing each acquisition's "
                    "COG sheets; the assets are then the acquisitions, each path the folder of its sheets",
    )
    resolution_m: float = Field(gt=0)
    minzoom: int = Field(default=0, ge=0, le=24)
    maxzoom: int = Field(default=18, ge=0, le=24)


class RowRule(Strict):
    """Rows whose ``field`` value is one of ``values`` are classified at ``level``."""

    level: Level
    field: str
    op: Literal["in"] = "in"
    values: list[str | int | float] = Field(min_length=1)
    reason: Text | None = None


class Classification(Strict):
    """Level of the collection, plus declared rules raising some rows higher. Undeclared = secret."""

    level: Level = "secret"
    rows: list[RowRule] = []


class CollectionBase(Strict):
    """What every kind of collection declares: identity, texts, extent and classification.

    Each kind is a subclass with a literal ``kind`` (the discriminator in the YAML file) and its own
    half: ``VectorCollection`` (a table of features), ``RasterCollection`` (COG assets). A new kind
    (3D tiles, say) is one more subclass added to ``KINDS`` and to the ``Collection`` union.
    """

    kind: str
    id: str
    title: Text
    description: Text
    keywords: list[str] = []
    extent: Extent
    classification: Classification = Classification()


class VectorCollection(CollectionBase):
    """A collection of features stored in a table: its source, fields, time field and tiling."""

    kind: Literal["vector"]
    source: SourceSpec
    temporal_field: str | None = None
    fields: list[FieldSpec] = []
    tiles: TileSpec = TileSpec()
    extrude: ExtrudeSpec | None = None

    @model_validator(mode="after")
    def _consistent(self) -> VectorCollection:
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise ValueError("field names must be unique")
        if self.temporal_field and self.temporal_field not in names:
            raise ValueError(f"temporal_field '{self.temporal_field}' is not among the fields")
        if self.source.id_field not in names:
            raise ValueError(f"source.id_field '{self.source.id_field}' is not among the fields")
        if self.tiles.minzoom > self.tiles.maxzoom:
            raise ValueError("tiles.minzoom is above tiles.maxzoom")
        unknown = [n for n in self.tiles.properties or () if n not in names]
        if unknown:
            raise ValueError(f"tiles.properties {unknown} are not among the fields")
        _check_row_rules(self.classification, names)
        _check_extrude(self.extrude, names)
        return self

    @property
    def field_names(self) -> tuple[str, ...]:
        """The field names, in catalog order."""
        return tuple(f.name for f in self.fields)

    def field(self, name: str) -> FieldSpec | None:
        """The field called ``name``, or None."""
        return next((f for f in self.fields if f.name == name), None)


class RasterCollection(CollectionBase):
    """Imagery or an elevation model, as registered COG assets."""

    kind: Literal["raster"]
    raster: RasterSpec

    @model_validator(mode="after")
    def _consistent(self) -> RasterCollection:
        _check_row_rules(self.classification, [])
        return self

    @property
    def data_type(self) -> str:
        """The OGC data type of its tiles: ``coverage`` (values: an elevation model) or ``map`` (imagery)."""
        return "coverage" if self.raster.kind == "dem" else "map"


def _check_extrude(extrude: ExtrudeSpec | None, names: list[str]) -> None:
    if extrude is None:
        return
    wanted = [extrude.height_field, *([extrude.floors_field] if extrude.floors_field else []),
              *(extrude.properties or ())]
    unknown = [n for n in wanted if n not in names]
    if unknown:
        raise ValueError(f"extrude fields {unknown} are not among the fields")


def _check_row_rules(classification: Classification, names: list[str]) -> None:
    for rule in classification.rows:
        if rule.field not in names:
            raise ValueError(f"classification row rule field '{rule.field}' is not among the fields")


Collection = Annotated[VectorCollection | RasterCollection, Field(discriminator="kind")]
"""Any collection of the catalog; ``isinstance`` against a kind's class tells which."""

KINDS: dict[str, type[CollectionBase]] = {"vector": VectorCollection, "raster": RasterCollection}
C = TypeVar("C", bound=CollectionBase)


class CatalogError(Exception):
    """A collection file is invalid; the message names the file and the key."""


class Catalog:
    """All collections, in file-name order."""

    def __init__(self, collections: Iterable[Collection]) -> None:
        self._by_id: dict[str, Collection] = {c.id: c for c in collections}

    def __iter__(self) -> Iterator[Collection]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, collection_id: str) -> Collection | None:
        return self._by_id.get(collection_id)

    @property
    def ids(self) -> tuple[str, ...]:
        """Every collection id, in catalog order."""
        return tuple(self._by_id)

    def of_kind(self, kind: type[C]) -> list[C]:
        """The collections of one kind (e.g. ``VectorCollection``), in catalog order."""
        return [c for c in self._by_id.values() if isinstance(c, kind)]


def _where(loc: tuple) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def load_collection(path: Path) -> Collection:
    """Read and validate one collection file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CatalogError(f"{path.name}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise CatalogError(f"{path.name}: expected a mapping at the top level")
    kind = data.get("kind")
    model = KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        found = "missing" if kind is None else f"'{kind}' is not a collection kind"
        raise CatalogError(f"{path.name}: key 'kind': {found}; use one of {', '.join(KINDS)}")
    try:
        collection = cast(Collection, model.model_validate(data))
    except ValidationError as exc:
        lines = [f"{path.name}: key '{_where(e['loc'])}': {e['msg']}" for e in exc.errors()]
        raise CatalogError("\n".join(lines)) from None
    if collection.id != path.stem:
        raise CatalogError(f"{path.name}: key 'id': '{collection.id}' must match the file name")
    return collection


def load_catalog(directory: Path) -> Catalog:
    """Read every ``*.yaml`` in the directory; any bad file raises ``CatalogError``."""
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise CatalogError(f"no collection files found in {directory}")
    return Catalog([load_collection(p) for p in files])
