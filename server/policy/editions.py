"""The editions file (``config/editions.yaml``): levels, anonymous access and desensitization rules.

The file is validated into typed models, then checked against the catalog: every collection and
field a rule names must exist, the id field can be neither dropped nor masked, and only string
fields can be masked. A bad file stops start-up with a message naming the key that is wrong.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

import orjson
import pyproj
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from server.catalog import Catalog, Level, RasterCollection, Text, VectorCollection

LEVELS: tuple[Level, ...] = ("public", "sensitive", "secret")
EDITIONS_FILE = "editions.yaml"
DATA_RULES = {"levels", "max_imagery_resolution_m", "collections"}  # what an edition's data depends on


class Strict(BaseModel):
    """Unknown keys are errors; models are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Condition(Strict):
    """Rows whose ``field`` value is one of ``values``."""

    field: str
    op: Literal["in"] = "in"
    values: list[str | int | float] = Field(min_length=1)


class CollectionRules(Strict):
    """Desensitization of one collection in one edition."""

    drop: list[str] = []
    mask: list[str] = []
    exclude: list[Condition] = []
    precision: int | None = Field(default=None, ge=0, le=7)
    generalize_m: float | None = Field(default=None, gt=0)
    max_zoom: int | None = Field(default=None, ge=0, le=24)
    max_resolution_m: float | None = Field(default=None, gt=0)


class Coverage(Strict):
    """A layer covering its area without gaps: the area of rows a release removes is filled.

    The removed rows' area (adjacent ones merged) is grown by ``grid_m`` metres and snapped to a
    ``grid_m`` grid in the planar ``crs``; the result, clipped to the layer, becomes placeholder rows
    carrying only ``placeholder`` values, and the published rows give it up (a row wholly inside is
    absorbed). ``area_field`` is then recomputed in ``crs`` for every row whose shape changed.
    """

    grid_m: float = Field(gt=0)
    crs: str
    placeholder: dict[str, str | int | float] = Field(min_length=1)
    area_field: str | None = None


class ReleaseRules(Strict):
    """How a release treats one collection for every edition below the one it is built from."""

    rekey_ids: bool = False
    coverage: Coverage | None = None


class EditionSpec(Strict):
    """One edition: what it may hold and serve, and to whom."""

    title: Text
    levels: list[Level] = Field(min_length=1)
    anonymous: bool = False
    limits_without_redis: Literal["closed", "open"] = "closed"
    max_imagery_resolution_m: float | None = Field(default=None, gt=0)
    collections: dict[str, CollectionRules] = {}

    def allows(self, level: str | None) -> bool:
        """Whether data at ``level`` may be held and served by this edition (an unknown level may not)."""
        return level in self.levels


class EditionsFile(Strict):
    """The whole file."""

    rules_version: str
    release: dict[str, ReleaseRules] = {}
    editions: dict[str, EditionSpec]

    @property
    def digest(self) -> str:
        """A stable hash of every rule (recorded in release manifests and cache scopes)."""
        return hashlib.sha256(orjson.dumps(self.model_dump(), option=orjson.OPT_SORT_KEYS)).hexdigest()

    def fingerprint(self, name: str) -> dict[str, Any]:
        """Every rule that shapes the data of edition ``name`` (its own and the release rules), as JSON."""
        return {"edition": self.edition(name).model_dump(mode="json", include=DATA_RULES),
                "release": {cid: r.model_dump(mode="json") for cid, r in sorted(self.release.items())}}

    def edition(self, name: str) -> EditionSpec:
        """The named edition; ``EditionError`` naming the known ones otherwise."""
        spec = self.editions.get(name)
        if spec is None:
            known = ", ".join(sorted(self.editions))
            raise EditionError(f"edition '{name}' is not defined in {EDITIONS_FILE} (defined: {known})")
        return spec


class EditionError(Exception):
    """The editions file is invalid, or the configured edition is unknown or unusable."""


def _where(loc: tuple) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def load_editions(config_dir: Path) -> EditionsFile:
    """Read and validate ``editions.yaml`` from the config directory."""
    path = Path(config_dir) / EDITIONS_FILE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EditionError(f"{path} not found") from None
    except yaml.YAMLError as exc:
        raise EditionError(f"{EDITIONS_FILE}: not valid YAML ({exc})") from None
    try:
        return EditionsFile.model_validate(data)
    except ValidationError as exc:
        lines = [f"{EDITIONS_FILE}: key '{_where(e['loc'])}': {e['msg']}" for e in exc.errors()]
        raise EditionError("\n".join(lines)) from None


def _rule_problems(where: str, catalog: Catalog, cid: str, rules: CollectionRules) -> list[str]:
    c = catalog.get(cid)
    if c is None:
        return [f"{where}: collection '{cid}' is not in the catalog"]
    out = []
    named = [("drop", n) for n in rules.drop] + [("mask", n) for n in rules.mask]
    named += [("exclude", cond.field) for cond in rules.exclude]
    for key, name in named:
        spec = c.field(name) if isinstance(c, VectorCollection) else None
        if spec is None:
            out.append(f"{where}.{key}: field '{name}' is not a field of '{cid}'")
        elif key != "exclude" and isinstance(c, VectorCollection) and name == c.source.id_field:
            out.append(f"{where}.{key}: the id field '{name}' cannot be removed or masked")
        elif key == "mask" and spec.type != "string":
            out.append(f"{where}.mask: field '{name}' is not a string field")
    if not isinstance(c, RasterCollection) and rules.max_resolution_m is not None:
        out.append(f"{where}.max_resolution_m: '{cid}' is not a raster collection")
    return out


def _release_problems(where: str, catalog: Catalog, cid: str, rules: ReleaseRules) -> list[str]:
    c = catalog.get(cid)
    if not isinstance(c, VectorCollection):
        return [f"{where}: '{cid}' is not a vector collection of the catalog"]
    out = []
    id_field = c.field(c.source.id_field)
    if rules.rekey_ids and (id_field is None or id_field.type != "integer"):
        out.append(f"{where}.rekey_ids: the id field '{c.source.id_field}' is not an integer field")
    cov = rules.coverage
    if cov is not None and not rules.rekey_ids:
        out.append(f"{where}.coverage: needs rekey_ids: true (placeholder rows get fresh ids)")
    if cov is not None:
        names = [*cov.placeholder, *([cov.area_field] if cov.area_field else [])]
        out += [f"{where}.coverage: '{name}' is not a non-id field of '{cid}'"
                for name in names if c.field(name) is None or name == c.source.id_field]
        try:
            if not pyproj.CRS.from_user_input(cov.crs).is_projected:
                out.append(f"{where}.coverage.crs: {cov.crs} is not a projected (metric) CRS")
        except pyproj.exceptions.CRSError:
            out.append(f"{where}.coverage.crs: unknown CRS {cov.crs}")
    return out


def check_against_catalog(editions: EditionsFile, catalog: Catalog) -> list[str]:
    """Problems between the rules and the catalog; empty when every name resolves."""
    problems = []
    for cid, release in editions.release.items():
        problems += _release_problems(f"{EDITIONS_FILE}: release.{cid}", catalog, cid, release)
    for name, spec in editions.editions.items():
        for cid, rules in spec.collections.items():
            problems += _rule_problems(f"{EDITIONS_FILE}: editions.{name}.collections.{cid}", catalog, cid, rules)
    return problems


def level_rank(level: Level) -> int:
    """0 for public, 1 for sensitive, 2 for secret."""
    return LEVELS.index(level)


def highest(levels: list[Level] | tuple[Level, ...]) -> Level:
    """The highest of some levels."""
    return max(levels, key=level_rank)
