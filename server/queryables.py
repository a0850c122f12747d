"""The fields a caller may query and sort on, and their JSON Schema (OGC API Features Part 5 / Part 3).

A field is queryable when the caller's ``Restriction`` shows it unmasked: a hidden field does not
exist for the caller, and a masked one cannot be compared without revealing what the mask hides.
Every parameter naming a field (``properties``, ``sortby``, ``filter``) resolves names through
``field_for`` or ``unknown_field``, so a hidden field and a field that never existed give the same
error, word for word.
"""

from __future__ import annotations

from typing import Any

from server.catalog import FieldSpec, VectorCollection
from server.codes.classes import CODE_LISTS
from server.errors import InvalidParameter
from server.policy.model import Restriction

JSON_SCHEMA = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_MEDIA = "application/schema+json"
_TYPES: dict[str, dict[str, str]] = {
    "string": {"type": "string"},
    "integer": {"type": "integer"},
    "number": {"type": "number"},
    "boolean": {"type": "boolean"},
    "date": {"type": "string", "format": "date"},
    "datetime": {"type": "string", "format": "date-time"},
}


def queryable_fields(collection: VectorCollection, restriction: Restriction) -> tuple[FieldSpec, ...]:
    """The collection's fields the caller may filter and sort on (visible, not masked), in catalog order."""
    shown = set(restriction.fields) - restriction.masked
    return tuple(f for f in collection.fields if f.name in shown)


def unknown_field(collection: VectorCollection, name: str, parameter: str) -> InvalidParameter:
    """The one error for a field the caller cannot use in ``parameter``, whether hidden or nonexistent."""
    return InvalidParameter(
        f"Parameter '{parameter}': unknown property {name[:100]!r} in collection '{collection.id}'."
    )


def field_for(collection: VectorCollection, restriction: Restriction, name: str, parameter: str) -> FieldSpec:
    """The queryable field called ``name``; ``unknown_field`` otherwise."""
    for f in queryable_fields(collection, restriction):
        if f.name == name:
            return f
    raise unknown_field(collection, name, parameter)


def _codes(f: FieldSpec, restriction: Restriction) -> list[str] | None:
    """The code list of a field, less the codes whose rows the caller may not see."""
    codes = CODE_LISTS.get(f.codes or "")
    if codes is None:
        return None
    hidden = {v for cond in restriction.exclude if cond.field == f.name for v in cond.values}
    return [code for code in codes if code not in hidden]


def field_schema(collection: VectorCollection, f: FieldSpec, restriction: Restriction, lang: str) -> dict[str, Any]:
    """The JSON Schema of one field: type, title in ``lang``, code list as ``enum``, OGC roles."""
    schema: dict[str, Any] = {"title": f.title.en if lang == "en" else f.title.zh, **_TYPES[f.type]}
    if f.description is not None:
        schema["description"] = f.description.en if lang == "en" else f.description.zh
    if (codes := _codes(f, restriction)) is not None:
        schema["enum"] = codes
    if f.name == collection.source.id_field:
        schema["x-ogc-role"] = "id"
    elif f.name == collection.temporal_field:
        schema["x-ogc-role"] = "primary-instant"
    return schema


def schema_document(collection: VectorCollection, restriction: Restriction, lang: str, url: str,
                    geometry: bool) -> dict[str, Any]:
    """The queryables (``geometry=True``: with the primary geometry) or sortables document of a collection."""
    title = collection.title.en if lang == "en" else collection.title.zh
    properties: dict[str, Any] = {}
    if geometry:
        kind = collection.source.geometry_type.lower()
        properties[collection.source.geometry_field] = {
            "title": "Geometry" if lang == "en" else "几何", "format": f"geometry-{kind}",
            "x-ogc-role": "primary-geometry",
        }
    for f in queryable_fields(collection, restriction):
        properties[f.name] = field_schema(collection, f, restriction, lang)
    return {"$schema": JSON_SCHEMA, "$id": url, "type": "object", "title": title,
            "properties": properties, "additionalProperties": False}
