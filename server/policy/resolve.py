"""From the catalog's classification and the edition's rules to a ``Policy`` per caller.

The edition's view of every collection is computed once at start-up; a request's policy is that
view narrowed to the caller's key scope (cached per scope, so resolving costs a dict lookup).

A collection above the edition's levels is hidden. A field is hidden when its level (its own, or
the collection's) is above the edition's, unless the edition masks it; ``drop`` hides it anyway.
Rows are excluded by every catalog row rule above the edition's levels and by the edition's own
``exclude`` conditions. The collection a route hands to a source is a ``CollectionView``: the
catalog collection with only the visible fields, the capped zooms and resolution, carrying its
``Restriction`` (``restriction_of``).
"""

from __future__ import annotations

import math
from types import MappingProxyType

from cachetools import LRUCache
from pydantic import PrivateAttr

from server.catalog import Catalog, Collection, FieldSpec
from server.policy.editions import CollectionRules, EditionError, EditionSpec, EditionsFile, highest
from server.policy.model import (
    UNRESTRICTED,
    CollectionAccess,
    Policy,
    Restriction,
    RowCondition,
    scope_hash,
)

WMQ_PX0 = 2 * math.pi * 6378137 / 256  # metres per pixel at WebMercatorQuad level 0, at the equator


class CollectionView(Collection):
    """A collection as one caller may see it (a ``Collection`` in every respect)."""

    _restriction: Restriction = PrivateAttr(default=UNRESTRICTED)


def restriction_of(collection: Collection) -> Restriction:
    """What a source must apply when reading ``collection`` (nothing for a plain catalog collection)."""
    return getattr(collection, "_restriction", UNRESTRICTED) if isinstance(collection, CollectionView) else UNRESTRICTED


def zoom_for_resolution(resolution_m: float, max_abs_lat: float = 0.0) -> int:
    """The finest WebMercatorQuad level whose ground pixel, at ``max_abs_lat``, is no finer than ``resolution_m``."""
    ground0 = WMQ_PX0 * math.cos(math.radians(min(abs(max_abs_lat), 85.0)))
    return max(0, math.floor(math.log2(ground0 / resolution_m)))


def _visible_fields(c: Collection, spec: EditionSpec, rules: CollectionRules) -> tuple[list[FieldSpec], set[str]]:
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
    if c.raster is None:
        return None
    if rules.max_resolution_m is not None:
        return rules.max_resolution_m
    return spec.max_imagery_resolution_m if c.raster.kind == "imagery" else None


def _view(c: Collection, fields: list[FieldSpec], access_zoom: int | None, res_cap: float | None,
          restriction: Restriction) -> CollectionView:
    data = {name: getattr(c, name) for name in type(c).model_fields}
    data["fields"] = fields
    names = {f.name for f in fields}
    if c.temporal_field and (c.temporal_field not in names or c.temporal_field in restriction.masked):
        data["temporal_field"] = None
    if access_zoom is not None and access_zoom < c.tiles.maxzoom:
        data["tiles"] = c.tiles.model_copy(update={"maxzoom": access_zoom})
    if res_cap is not None and c.raster is not None and c.raster.resolution_m < res_cap:
        lat = max(abs(c.extent.spatial.bbox[1]), abs(c.extent.spatial.bbox[3]))
        zoom = min(c.raster.maxzoom, zoom_for_resolution(res_cap, lat))
        data["raster"] = c.raster.model_copy(update={"resolution_m": res_cap, "maxzoom": zoom})
    view = CollectionView.model_construct(_fields_set=c.model_fields_set, **data)
    view._restriction = restriction
    return view


def collection_access(c: Collection, spec: EditionSpec) -> CollectionAccess | None:
    """The edition's access to one collection, or ``None`` when the collection is above the edition."""
    if not spec.allows(c.classification.level):
        return None
    rules = spec.collections.get(c.id) or CollectionRules()
    fields, masked = _visible_fields(c, spec, rules)
    restriction = Restriction(
        exclude=_exclusions(c, spec, rules),
        masked=frozenset(masked),
        precision=rules.precision,
        generalize_m=rules.generalize_m,
    )
    res_cap = _resolution_cap(c, spec, rules)
    return CollectionAccess(
        id=c.id,
        fields=tuple(f.name for f in fields),
        masked=frozenset(masked),
        restriction=restriction,
        max_zoom=rules.max_zoom,
        max_resolution_m=res_cap,
        view=_view(c, fields, rules.max_zoom, res_cap, restriction),
    )


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
        self._policies: LRUCache[tuple, Policy] = LRUCache(maxsize=4096)

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
            self._policies[cache_key] = found
        return found
