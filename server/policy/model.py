"""The per-request policy: immutable values resolved once and read by routes, sources and caches.

``Policy`` says which collections a caller may see and, for each, a ``CollectionAccess``: the
visible fields, the masked ones, the rows to exclude (structured conditions, never SQL text), the
coordinate precision and generalization, the tile zoom cap and the imagery resolution cap.
``cache_scope`` is a stable hash of everything that changes response bytes; two callers with the
same scope may share cached responses, callers with different scopes never do.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from server.catalog import Collection

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


@dataclass(frozen=True)
class Restriction:
    """What a source must apply to the rows it reads for one caller, before any byte leaves it."""

    exclude: tuple[RowCondition, ...] = ()
    masked: frozenset[str] = frozenset()
    precision: int | None = None
    generalize_m: float | None = None

    @property
    def empty(self) -> bool:
        """True when nothing needs doing (the classified edition, typically)."""
        return not (self.exclude or self.masked or self.precision is not None or self.generalize_m)

    @property
    def key(self) -> tuple:
        """The shape of the restriction, for caching composed statements (values are parameters)."""
        return (
            tuple((c.field, c.op, len(c.values)) for c in self.exclude),
            tuple(sorted(self.masked)),
            self.precision,
            self.generalize_m,
        )

    def excluded(self, row: Mapping[str, Any]) -> bool:
        """Whether a row (field -> value) is excluded."""
        return any(c.matches(row.get(c.field)) for c in self.exclude)

    def describe(self) -> dict[str, Any]:
        """A JSON-able description, used in cache scopes and release manifests."""
        return {
            "exclude": [{"field": c.field, "op": c.op, "values": list(c.values)} for c in self.exclude],
            "masked": sorted(self.masked),
            "precision": self.precision,
            "generalize_m": self.generalize_m,
        }


UNRESTRICTED = Restriction()


@dataclass(frozen=True)
class CollectionAccess:
    """One visible collection as a caller may see it. ``view`` is the collection restricted to it."""

    id: str
    fields: tuple[str, ...]
    masked: frozenset[str]
    restriction: Restriction
    max_zoom: int | None
    max_resolution_m: float | None
    view: Collection = field(compare=False, repr=False)

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
        """The key id, or ``-`` for an anonymous caller."""
        return self.key_id or ANONYMOUS

    @property
    def visible_ids(self) -> tuple[str, ...]:
        """Visible collection ids, in catalog order."""
        return tuple(self.collections)

    def access(self, collection_id: str) -> CollectionAccess | None:
        """The caller's access to a collection, or ``None`` when it is hidden (or missing)."""
        return self.collections.get(collection_id)
