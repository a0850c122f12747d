"""From the catalog's classification and the edition's rules to a ``Policy`` per caller.

The edition's view of every collection is computed once at start-up; a request's policy is that
view narrowed to the caller's key scope (cached per scope, so resolving costs a dict lookup).

A collection above the edition's levels is hidden. A field is hidden when its level (its own, or
the collection's) is above the edition's, unless the edition masks it; ``drop`` hides it anyway.
Rows are excluded by every catalog row rule above the edition's levels and by the edition's own
``exclude`` conditions. Each visible collection gets a ``Restriction`` (all of the above, plus the
zoom and resolution caps), which every read of its data takes as a required argument, and a view:
the catalog collection as that restriction shows it (``restricted``: visible fields only, capped
zooms and resolution), which routes describe and tile with. Sources apply the restriction itself,
so a catalog collection handed to a source with a restriction still reads nothing hidden.
"""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import Any

from cachetools import LRUCache

from server.catalog import Catalog, Collection, FieldSpec, RasterCollection, VectorCollection
from server.policy.editions import CollectionRules, EditionError, EditionsFile, EditionSpec, highest
from server.policy.model import CollectionAccess, Policy, Restriction, RowCondition, scope_hash

WMQ_PX0 = 2 * math.pi * 6378137 / 256  # metres per pixel at WebMercatorQuad level 0, at the equator


def zoom_for_resolution(resolution_m: float, max_abs_lat: float = 0.0) -> int:
    """The finest WebMercatorQuad level whose ground pixel, at ``max_abs_lat``, is no finer than ``resolution_m``."""
    ground0 = WMQ_PX0 * math.cos(math.radians(min(abs(max_abs_lat), 85.0)))
    return max(0, math.floor(math.log2(ground0 / resolution_m)))


def _visible_fields(c: VectorCollection, spec: EditionSpec, rules: CollectionRules) -> tuple[list[FieldSpec], set[str]]:
    fields, masked = [], set()
    for f in c.fields:
        if f.name in rules.drop:
            continue
        level = highest([c.classification.level, f.level or c.classification.level])
        if f.name in rules.mask:
            fields.append(f)
            masked.add(f.name)
        elif spec.allows(level):
            fields.append(f)
    return fields, masked


def _exclusions(c: Collection, spec: EditionSpec, rules: CollectionRules) -> tuple[RowCondition, ...]:
    conds = [RowCondition(r.field, r.op, tuple(r.values)) for r in c.classification.rows if not spec.allows(r.level)]
    conds += [RowCondition(x.field, x.op, tuple(x.values)) for x in rules.exclude]
    return tuple(dict.fromkeys(conds))


def _resolution_cap(c: Collection, spec: EditionSpec, rules: CollectionRules) -> float | None:
    if not isinstance(c, RasterCollection):
        return None
    if rules.max_resolution_m is not None:
        return rules.max_resolution_m
    return spec.max_imagery_resolution_m if c.raster.kind == "imagery" else None


def restricted_vector(c: VectorCollection, restriction: Restriction) -> VectorCollection:
    """The vector collection as ``restriction`` shows it: visible fields only, no time field the
    caller may not filter on, tiles capped at ``max_zoom``."""
    update: dict[str, Any] = {"fields": [f for f in c.fields if f.name in restriction.fields]}
    if c.temporal_field and restriction.temporal_field(c) is None:
        update["temporal_field"] = None
    if restriction.max_zoom is not None and restriction.max_zoom < c.tiles.maxzoom:
        update["tiles"] = c.tiles.model_copy(update={"maxzoom": restriction.max_zoom})
    return c.model_copy(update=update)


def restricted_raster(c: RasterCollection, restriction: Restriction) -> RasterCollection:
    """The raster collection as ``restriction`` shows it: resolution and zooms no finer than its cap.

    Applying it to a collection already restricted changes nothing.
    """
    cap = restriction.max_resolution_m
    if cap is None or c.raster.resolution_m >= cap:
        return c
    lat = max(abs(c.extent.spatial.bbox[1]), abs(c.extent.spatial.bbox[3]))
    zoom = min(c.raster.maxzoom, zoom_for_resolution(cap, lat))
    return c.model_copy(update={"raster": c.raster.model_copy(update={"resolution_m": cap, "maxzoom": zoom})})


def restricted(c: Collection, restriction: Restriction) -> Collection:
    """The collection of any kind as ``restriction`` shows it."""
    if isinstance(c, VectorCollection):
        return restricted_vector(c, restriction)
    return restricted_raster(c, restriction)


def collection_access(c: Collection, spec: EditionSpec) -> CollectionAccess | None:
    """The edition's access to one collection, or ``None`` when the collection is above the edition."""
    if not spec.allows(c.classification.level):
        return None
    rules = spec.collections.get(c.id) or CollectionRules()
    fields, masked = _visible_fields(c, spec, rules) if isinstance(c, VectorCollection) else ([], set())
    restriction = Restriction(
        collection=c.id,
        fields=tuple(f.name for f in fields),
        exclude=_exclusions(c, spec, rules),
        masked=frozenset(masked),
        precision=rules.precision,
        generalize_m=rules.generalize_m,
        max_zoom=rules.max_zoom,
        max_resolution_m=_resolution_cap(c, spec, rules),
    )
    return CollectionAccess(id=c.id, restriction=restriction, view=restricted(c, restriction))

MAX_POLICIES = 10_000  # remembered policies (keys x scope sets); all are dropped past it


class PolicyResolver:
    """Builds the policy of each caller of one edition; policies are cached per (key, scope)."""

    def __init__(self, catalog: Catalog, editions: EditionsFile, edition: str) -> None:
        self.catalog = catalog
        self.editions = editions
        self.edition = edition
        self.spec = editions.edition(edition)
        self.digest = editions.digest
        self.base: dict[str, CollectionAccess] = {}
        for c in catalog:
            access = collection_access(c, self.spec)
            if access is None:
                continue
            hidden = [x.field for x in access.restriction.exclude if x.field not in access.fields]
            if hidden:  # a release store would lack the column the serving-time predicate reads
                raise EditionError(f"edition '{edition}', collection '{c.id}': rows are excluded by field(s) "
                                   f"{', '.join(hidden)}, which the edition hides; keep them visible")
            self.base[c.id] = access
        self._scopes: LRUCache[frozenset[str] | None, tuple[MappingProxyType, str]] = LRUCache(maxsize=1024)
        self._policies: dict[tuple, Policy] = {}  # one per key and scope set: few, and read on every request

    def _scoped(self, scopes: frozenset[str] | None) -> tuple[MappingProxyType, str]:
        found = self._scopes.get(scopes)
        if found is None:
            chosen = {k: a for k, a in self.base.items() if scopes is None or k in scopes}
            found = (MappingProxyType(chosen), scope_hash(self.edition, self.digest, chosen))
            self._scopes[scopes] = found
        return found

    def policy(self, key_id: str | None = None, scopes: frozenset[str] | None = None) -> Policy:
        """The policy of a caller: ``scopes`` None means every collection the edition serves."""
        cache_key = (key_id, scopes)
        found = self._policies.get(cache_key)
        if found is None:
            access, scope = self._scoped(scopes)
            found = Policy(self.edition, key_id, access, scope, anonymous=key_id is None)
            if len(self._policies) >= MAX_POLICIES:
                self._policies.clear()
            self._policies[cache_key] = found
        return found
