"""STAC API Filter, Sort and Fields extensions of item search, and the queryables they rest on.

Filter: CQL2 (``server.filters``) on the queryables below: the item's id and collection, its
``datetime`` and the properties every item carries; ``geometry`` is the footprint. Sort: ``sortby``
on the same fields (``-datetime,+id`` in a GET, ``[{"field": ..., "direction": "desc"}]`` in a
POST), missing values last, ties broken by collection and id. Fields: ``fields`` (``id,-assets`` in
a GET, ``{"include": [...], "exclude": [...]}`` in a POST) picks the parts of each item returned;
``type``, ``stac_version``, ``id`` and ``links`` always stay.
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass
from typing import Any

from server.crs import CRS84, Crs, epsg_crs, parse_crs
from server.errors import InvalidParameter
from server.filters import FILTER_CONFORMANCE, Fields, Filter, parse_filter, row_predicate

QUERYABLES: dict[str, tuple[str, str]] = {
    "id": ("string", "Item id"),
    "collection": ("string", "Collection id"),
    "datetime": ("datetime", "Acquisition time"),
    "title": ("string", "Title"),
    "gsd": ("number", "Ground sample distance (m)"),
    "platform": ("string", "Platform (imagery)"),
    "proj:code": ("string", "Projection code of the asset"),
}
FILTER_FIELDS = Fields("STAC items", {k: t for k, (t, _) in QUERYABLES.items()}, frozenset({"geometry"}))
EXTENSION_CONFORMANCE = [
    "https://api.stacspec.org/v1.0.0-rc.2/item-search#filter",
    "https://api.stacspec.org/v1.0.0/item-search#sort",
    "https://api.stacspec.org/v1.0.0/item-search#fields",
    *FILTER_CONFORMANCE[:1],
]
_KEPT = ("type", "stac_version", "id", "links")
_JSON_TYPES = {"string": "string", "number": "number", "datetime": "string"}


def queryables(url: str) -> dict[str, Any]:
    """The queryables as a JSON Schema."""
    props: dict[str, Any] = {"geometry": {"$ref": "https://geojson.org/schema/Geometry.json", "title": "Footprint"}}
    for name, (kind, title) in QUERYABLES.items():
        props[name] = {"type": _JSON_TYPES[kind], "title": title}
        if kind == "datetime":
            props[name]["format"] = "date-time"
    return {"$schema": "https://json-schema.org/draft/2019-09/schema", "$id": url, "type": "object",
            "title": "Queryable properties of STAC items", "properties": props, "additionalProperties": False}


def item_row(entry_id: str, collection: str, datetime: dt.datetime, properties: dict[str, Any]) -> dict[str, Any]:
    """An item's queryable values by name."""
    return {**properties, "id": entry_id, "collection": collection, "datetime": datetime}


def parse_search_filter(params: dict[str, Any]) -> Filter | None:
    """The ``filter`` of a search (GET text, or a POST object), checked against the queryables."""
    raw = params.get("filter")
    if raw is None:
        if params.get("filter-lang") or params.get("filter-crs"):
            raise InvalidParameter("Parameters 'filter-lang' and 'filter-crs' apply to a 'filter', and none was given.")
        return None
    if not isinstance(raw, (str, dict)):
        raise InvalidParameter("Parameter 'filter' must be CQL2 text or a CQL2-JSON object.")
    return parse_filter(raw, params.get("filter-lang"), _filter_crs(params.get("filter-crs")), FILTER_FIELDS)


def _filter_crs(value: str | None) -> Crs | None:
    """The CRS of a search filter's geometries: CRS84 (default) or EPSG:4490 (lat/lon), as items' footprints."""
    if value is None:
        return None
    crs = parse_crs(value, "filter-crs")
    if crs.srid not in (CRS84.srid, 4490):
        raise InvalidParameter(f"Parameter 'filter-crs' must be {CRS84.uri} or {epsg_crs(4490).uri}, not {crs.uri}.")
    return crs


def matcher(f: Filter | None):
    """A predicate over (row, footprint), or ``None`` when there is no filter."""
    return None if f is None else row_predicate(f.expr)


def _field(name: Any, parameter: str) -> str:
    if not isinstance(name, str):
        raise InvalidParameter(f"Parameter '{parameter}' must name fields.")
    bare = name.removeprefix("properties.")
    if bare not in QUERYABLES:
        raise InvalidParameter(f"Parameter '{parameter}': unknown field {name!r}; sortable: {', '.join(QUERYABLES)}.")
    return bare


def parse_sortby(value: Any) -> tuple[tuple[str, bool], ...]:
    """``sortby`` as (field, descending) pairs."""
    if value is None:
        return ()
    out = []
    if isinstance(value, str):
        for part in (p.strip() for p in value.split(",") if p.strip()):
            desc = part.startswith("-")
            out.append((_field(part.lstrip("+-"), "sortby"), desc))
    elif isinstance(value, list) and all(isinstance(v, dict) for v in value):
        for v in value:
            direction = v.get("direction", "asc")
            if direction not in ("asc", "desc"):
                raise InvalidParameter("Parameter 'sortby': direction is 'asc' or 'desc'.")
            out.append((_field(v.get("field"), "sortby"), direction == "desc"))
    else:
        raise InvalidParameter("Parameter 'sortby' is '-field,+field' or a list of {field, direction}.")
    return tuple(out)


def sort_rows(rows: list, keys: tuple[tuple[str, bool], ...], row_of) -> list:
    """``rows`` sorted by ``keys`` (stable: earlier keys win), missing values last in either direction."""
    for name, desc in reversed(keys):
        present = [r for r in rows if row_of(r).get(name) is not None]
        missing = [r for r in rows if row_of(r).get(name) is None]
        rows = sorted(present, key=lambda r, n=name: row_of(r)[n], reverse=desc) + missing  # type: ignore[misc]
    return rows


@dataclass(frozen=True)
class FieldsSpec:
    """Dotted paths to include (none: all) and to exclude."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


def parse_fields(value: Any) -> FieldsSpec | None:
    """``fields``: ``a,-b`` (GET) or ``{"include": [...], "exclude": [...]}`` (POST)."""
    if value is None:
        return None
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",") if p.strip()]
        return FieldsSpec(tuple(p.lstrip("+") for p in parts if not p.startswith("-")),
                          tuple(p[1:] for p in parts if p.startswith("-")))
    if isinstance(value, dict) and set(value) <= {"include", "exclude"}:
        lists = [value.get(k) or [] for k in ("include", "exclude")]
        if all(isinstance(v, list) and all(isinstance(p, str) for p in v) for v in lists):
            return FieldsSpec(tuple(lists[0]), tuple(lists[1]))
    raise InvalidParameter("Parameter 'fields' is 'a,-b' or an object with 'include' and 'exclude' lists of names.")


def _pick(doc: dict[str, Any], path: list[str]) -> Any:
    for key in path:
        if not isinstance(doc, dict) or key not in doc:
            return None
        doc = doc[key]
    return doc


def apply_fields(doc: dict[str, Any], spec: FieldsSpec | None) -> dict[str, Any]:
    """The item document with only the included paths (and the kept members), without excluded ones.
    ``doc`` (shared by the index) is never changed."""
    if spec is None:
        return doc
    if spec.include:
        out = {k: doc[k] for k in _KEPT if k in doc}
        for path in spec.include:
            keys = path.split(".")
            value = _pick(doc, keys)
            if value is None:
                continue
            node = out
            for key in keys[:-1]:
                node = node.setdefault(key, {})
            node[keys[-1]] = value
    else:
        out = dict(doc)
    out = copy.deepcopy(out) if spec.exclude else out
    for path in spec.exclude:
        keys = path.split(".")
        parent = _pick(out, keys[:-1]) if len(keys) > 1 else out
        if isinstance(parent, dict) and not (len(keys) == 1 and keys[0] in _KEPT):
            parent.pop(keys[-1], None)
    return out
