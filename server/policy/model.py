"""The per-request policy: immutable values resolved once and read by routes, sources and caches.

``Policy`` says which collections a caller may see and, for each, a ``CollectionAccess``: the
collection as the caller sees it and its ``Restriction`` (the visible fields, the masked ones, the
rows to exclude as structured conditions - never SQL text -, the coordinate precision and
generalization, the tile zoom cap and the imagery resolution cap), the argument every read takes.
``cache_scope`` is a stable hash of everything that changes response bytes; two callers with the
same scope may share cached responses, callers with different scopes never do.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from server.catalog import Collection, CollectionBase, VectorCollection

ANONYMOUS = "-"


@dataclass(frozen=True)
class RowCondition:
    """Rows whose ``field`` value is one of ``values`` (op ``in``); NULL never matches."""

    field: str
    op: str
    values: tuple[str | int | float, ...]

    def matches(self, value: Any) -> bool:
        """Whether one row's value matches (the Python twin of the SQL predicate)."""
        return value is not None and value in self.values


class RestrictionError(TypeError):
    """A read was asked for without the caller's ``Restriction`` (or with another collection's)."""


@dataclass(frozen=True)
class Restriction:
    """Everything a source must apply to one collection's data for one caller, before any byte leaves it.

    ``fields`` are the fields the caller may see (masked ones included), in catalog order: a source
    never selects another property column, whatever collection object it is handed (the id field
    identifies every feature; the editions file may not hide it). Rows matching ``exclude``
    are never read; ``masked`` fields are served masked; geometries are generalized by
    ``generalize_m`` metres and snapped to ``precision`` decimal degrees (storage CRS); vector tiles
    stop above WebMercatorQuad level ``max_zoom``; rasters are never served finer than
    ``max_resolution_m``. There is no default: an unrestricted read is spelled
    ``Restriction.unrestricted(collection)``.
    """

    collection: str
    fields: tuple[str, ...]
    exclude: tuple[RowCondition, ...] = ()
    masked: frozenset[str] = frozenset()
    precision: int | None = None
    generalize_m: float | None = None
    max_zoom: int | None = None
    max_resolution_m: float | None = None

    @classmethod
    def unrestricted(cls, collection: CollectionBase) -> Restriction:
        """Every field and row of ``collection`` as stored (the classified edition, a master-store export)."""
        names = collection.field_names if isinstance(collection, VectorCollection) else ()
        return cls(collection.id, names)

    @property
    def empty(self) -> bool:
        """True when nothing needs doing beyond selecting ``fields`` (the classified edition, typically)."""
        return not (self.exclude or self.masked or self.reduces_geometry
                    or self.max_zoom is not None or self.max_resolution_m is not None)

    @property
    def reduces_geometry(self) -> bool:
        """Whether geometries are generalized or snapped to a coarser grid than the output's 7 digits."""
        return bool(self.generalize_m) or (self.precision is not None and self.precision < 7)

    @property
    def key(self) -> tuple:
        """The shape of the restriction, for caching composed statements (values are parameters)."""
        return (
            tuple((c.field, c.op, len(c.values)) for c in self.exclude),
            tuple(sorted(self.masked)),
            self.precision,
            self.generalize_m,
        )

    def select(self, collection: VectorCollection, wanted: Iterable[str]) -> tuple[str, ...]:
        """The wanted names that are fields of ``collection`` and visible here, in catalog order."""
        chosen = set(wanted) & set(self.fields)
        return tuple(name for name in collection.field_names if name in chosen)

    def temporal_field(self, collection: VectorCollection) -> str | None:
        """The collection's time field when the caller may filter on it (visible and not masked)."""
        name = collection.temporal_field
        return name if name in self.fields and name not in self.masked else None

    def describe(self) -> dict[str, Any]:
        """A JSON-able description, used in cache scopes and release manifests."""
        return {
            "exclude": [{"field": c.field, "op": c.op, "values": list(c.values)} for c in self.exclude],
            "masked": sorted(self.masked),
            "precision": self.precision,
            "generalize_m": self.generalize_m,
        }


def checked(restriction: object, collection: CollectionBase) -> Restriction:
    """``restriction`` when it is a ``Restriction`` for ``collection``; ``RestrictionError`` otherwise.

    Every read calls this first, so a read handed None (or nothing usable) fails instead of
    answering unrestricted.
    """
    if not isinstance(restriction, Restriction):
        raise RestrictionError(
            f"reading collection '{collection.id}' needs the caller's Restriction, not {type(restriction).__name__}"
        )
    if restriction.collection != collection.id:
        raise RestrictionError(
            f"reading collection '{collection.id}' with the restriction of '{restriction.collection}'"
        )
    return restriction


def restricted_ids(restrictions: object) -> frozenset[str]:
    """The collection ids of a mapping of restrictions by id (what reads over several collections
    take); ``RestrictionError`` when it is not one."""
    if not isinstance(restrictions, Mapping) or not all(
        isinstance(r, Restriction) and r.collection == cid for cid, r in restrictions.items()
    ):
        raise RestrictionError(f"a read over several collections needs the caller's restrictions by collection id, "
                               f"not {type(restrictions).__name__}")
    return frozenset(restrictions)


@dataclass(frozen=True)
class CollectionAccess:
    """One visible collection as a caller may see it: ``view`` is the collection restricted to it,
    ``restriction`` what every read of its data must be given."""

    id: str
    restriction: Restriction
    view: Collection = field(compare=False, repr=False)

    @property
    def fields(self) -> tuple[str, ...]:
        """Visible fields (masked ones included), in catalog order."""
        return self.restriction.fields

    @property
    def masked(self) -> frozenset[str]:
        """Fields served masked."""
        return self.restriction.masked

    @property
    def max_zoom(self) -> int | None:
        """No vector tiles above this WebMercatorQuad level."""
        return self.restriction.max_zoom

    @property
    def max_resolution_m(self) -> float | None:
        """No raster finer than this ground resolution."""
        return self.restriction.max_resolution_m

    @property
    def queryable(self) -> tuple[str, ...]:
        """Fields a caller may filter and sort on: visible and not masked."""
        return tuple(f for f in self.fields if f not in self.masked)

    def describe(self) -> dict[str, Any]:
        """Everything about this access that changes bytes."""
        return {
            "fields": list(self.fields),
            "restriction": self.restriction.describe(),
            "max_zoom": self.max_zoom,
            "max_resolution_m": self.max_resolution_m,
        }


def scope_hash(edition: str, rules_digest: str, access: Mapping[str, CollectionAccess]) -> str:
    """``<edition>-<16 hex>``: stable across processes and replicas for the same rules and scope."""
    doc = {"edition": edition, "rules": rules_digest, "collections": {k: a.describe() for k, a in access.items()}}
    digest = hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]
    return f"{edition}-{digest}"


@dataclass(frozen=True)
class Policy:
    """What one request may see. Built by ``server.policy.resolve``; never mutated."""

    edition: str
    key_id: str | None
    collections: Mapping[str, CollectionAccess]
    cache_scope: str
    anonymous: bool = field(default=False)

    @property
    def caller(self) -> str:
        """The key id, or ``-`` for an anonymous caller (as jobs and audit rows record it)."""
        return self.key_id or ANONYMOUS

    def access(self, collection_id: str) -> CollectionAccess | None:
        """The caller's access to a collection, or ``None`` when it is hidden (or missing)."""
        return self.collections.get(collection_id)

    @property
    def restrictions(self) -> dict[str, Restriction]:
        """The restriction of every visible collection, by id (what multi-collection reads take)."""
        return {cid: a.restriction for cid, a in self.collections.items()}
