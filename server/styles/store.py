"""Style templates: MapLibre style JSON files in ``styles/``, read once and kept read-only.

A file ``styles/<id>.json`` is a MapLibre (version 8) style whose tile URLs start with the
placeholder ``{base_url}``; the server replaces it with its own public base URL when serving.
Root ``metadata`` carries the OGC style description: ``onemap:title`` and ``onemap:description``
(``{"zh": ..., "en": ...}``) and ``onemap:keywords``.

A style may be composed from others: ``metadata["onemap:compose"]`` lists ``{"style": <id>,
"visibility": "none"?}``; the layers of each listed style are appended, in order, drawing from the
composing style's single vector source (the dataset-level tileset, one layer per collection). The
palette is therefore written once, in the collection's own style.

Which collection a layer draws is its ``source-layer`` (vector layers) or its ``source`` id (raster
layers); background layers draw none. That is what lets a style be filtered to the collections a
caller may see (see ``server.styles.render``).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson

PLACEHOLDER = "{base_url}"
STYLE_ID = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


class StyleError(Exception):
    """A style file is invalid; the message names the file and what is wrong."""


@dataclass(frozen=True)
class StyleTemplate:
    """One style as stored: its id, OGC description and the MapLibre document (never mutated)."""

    id: str
    doc: dict[str, Any]
    title: dict[str, str]
    description: dict[str, str]
    keywords: tuple[str, ...] = ()
    collections: frozenset[str] = field(default_factory=frozenset)

    def text(self, value: dict[str, str], lang: str) -> str:
        """The text in the language asked for, falling back to Chinese."""
        return value.get(lang) or value.get("zh") or value.get("en") or self.id


def layer_collection(layer: dict[str, Any]) -> str | None:
    """The collection a layer draws: its ``source-layer``, or its source id for a raster layer."""
    if "source-layer" in layer:
        return layer["source-layer"]
    if layer.get("type") in ("raster", "hillshade", "color-relief"):
        return layer.get("source")
    return None


def collections_of(doc: dict[str, Any]) -> frozenset[str]:
    """Every collection id the layers of a style draw."""
    return frozenset(c for layer in doc.get("layers", []) if (c := layer_collection(layer)))


def _read(path: Path) -> dict[str, Any]:
    try:
        doc = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise StyleError(f"{path.name}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("version") != 8:
        raise StyleError(f"{path.name}: expected a MapLibre style object with 'version': 8")
    if not isinstance(doc.get("sources"), dict) or not isinstance(doc.get("layers"), list):
        raise StyleError(f"{path.name}: 'sources' must be an object and 'layers' a list")
    return doc


def _compose(name: str, doc: dict[str, Any], parts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Append the layers of the listed styles, re-pointed at this style's one vector source."""
    vector = [sid for sid, s in doc["sources"].items() if s.get("type") == "vector"]
    if len(vector) != 1:
        raise StyleError(f"{name}: a composed style needs exactly one vector source")
    out = copy.deepcopy(doc)
    for entry in doc["metadata"]["onemap:compose"]:
        part = parts.get(entry.get("style"))
        if part is None:
            raise StyleError(f"{name}: key 'metadata.onemap:compose': no style '{entry.get('style')}'")
        for layer in copy.deepcopy(part["layers"]):
            if "source-layer" not in layer:
                continue
            layer["source"] = vector[0]
            if entry.get("visibility") == "none":
                layer.setdefault("layout", {})["visibility"] = "none"
            out["layers"].append(layer)
    return out


def _template(style_id: str, doc: dict[str, Any]) -> StyleTemplate:
    meta = doc.get("metadata") or {}
    title = meta.get("onemap:title") or {"zh": style_id, "en": style_id}
    description = meta.get("onemap:description") or {"zh": "", "en": ""}
    return StyleTemplate(
        id=style_id,
        doc=doc,
        title=title,
        description=description,
        keywords=tuple(meta.get("onemap:keywords") or ()),
        collections=collections_of(doc),
    )


def read_styles(directory: Path) -> dict[str, StyleTemplate]:
    """Read and check every ``*.json`` style in the directory; a bad file raises ``StyleError``."""
    raw: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.json")):
        if not STYLE_ID.match(path.stem):
            raise StyleError(f"{path.name}: the file name must be a style id (lower case, digits, _ or -)")
        raw[path.stem] = _read(path)
    styles = {}
    for style_id, doc in raw.items():
        if "onemap:compose" in (doc.get("metadata") or {}):
            doc = _compose(f"{style_id}.json", doc, raw)
        styles[style_id] = _template(style_id, doc)
    return styles


@lru_cache(maxsize=8)
def _cached(directory: str) -> dict[str, StyleTemplate]:
    return read_styles(Path(directory))


def load_styles(directory: Path) -> dict[str, StyleTemplate]:
    """The styles of a directory, read on first use and kept for the life of the process."""
    return _cached(str(Path(directory).resolve()))
