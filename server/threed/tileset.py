"""What the 3D Tiles routes serve, built from the caller's view of the data.

``city(...)`` reads every footprint the caller may see once per data version and policy shape and
keeps only the tree (a few kilobytes) in a small per-process LRU; a content tile re-reads its cell's
footprints by bounding box, keeps those filed in that cell and writes their GLB. Both reads go through
the source with the caller's restriction, so a hidden building is in no volume and no tile.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cachetools import LRUCache
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from server.assets import asset_path
from server.catalog import RasterCollection, VectorCollection
from server.errors import NotFound
from server.params import parse_instant
from server.policy import restriction_for, restrictions
from server.policy.model import Restriction
from server.threed import footprints as fp
from server.threed import tree
from server.threed.glb import build_glb, enu_to_ecef, property_type

MEDIA = "model/gltf-binary"
TILESET_MEDIA = "application/json+3dtiles"
_TREES = 32  # trees kept per process (data versions x policy shapes)


@dataclass
class Terrain:
    """The DEM file the bases are sampled from, and the caller's resolution cap on it."""

    path: Path | None
    cap_m: float | None

    @property
    def key(self) -> tuple:
        """What the bases depend on, for the tree cache."""
        if self.path is None:
            return ()
        stat = self.path.stat()
        return (str(self.path), stat.st_mtime_ns, stat.st_size, self.cap_m)


def terrain_for(request: Request, collection: VectorCollection) -> Terrain:
    """The declared DEM as the caller may read it; no file (bases at 0) when it is hidden or absent."""
    spec = collection.extrude
    dem = request.app.state.catalog.get(spec.terrain) if spec and spec.terrain else None
    seen = restrictions(request).get(dem.id) if dem is not None else None
    if not isinstance(dem, RasterCollection) or dem.raster.kind != "dem" or seen is None or not dem.raster.assets:
        return Terrain(None, None)
    latest = max(dem.raster.assets, key=lambda a: parse_instant(a.datetime))
    path = asset_path(request.app.state.settings.data_dir, latest)
    return Terrain(path if path.is_file() else None, seen.max_resolution_m)


def metadata(collection: VectorCollection, restriction: Restriction) -> list[tuple[str, str, str]]:
    """(name, metadata type, title) of each field carried as metadata for this caller."""
    out = []
    for name in fp.metadata_fields(collection, restriction):
        spec = collection.field(name)
        title = spec.title.en if spec else name
        out.append((name, property_type(spec, name in restriction.masked), title))
    return out


def _root(collection: VectorCollection) -> tuple[float, float, float, float]:
    west, south, east, north = collection.extent.spatial.bbox[:4]
    return float(west), float(south), float(east), float(north)


async def _read(request: Request, collection: VectorCollection, bbox, terrain: Terrain) -> list[fp.Footprint]:
    restriction = restriction_for(request, collection)
    found = await fp.read_footprints(request.app.state.source, collection, restriction, bbox)
    await run_in_threadpool(fp.set_bases, found, terrain.path, terrain.cap_m)
    return found


async def city(request: Request, collection: VectorCollection) -> tree.Node | None:
    """The caller's tree of ``collection`` (None when it sees no footprint), built once per version."""
    trees: LRUCache = _state(request, "threed_trees", lambda: LRUCache(_TREES))
    locks: dict = _state(request, "threed_locks", dict)
    terrain = terrain_for(request, collection)
    version = await request.app.state.cache.versions.get(collection)
    key = (collection.id, version, restriction_for(request, collection), terrain.key)
    async with locks.setdefault(key[:1], asyncio.Lock()):
        if key not in trees:
            found = await _read(request, collection, None, terrain)
            spec = collection.extrude
            assert spec is not None
            trees[key] = tree.build(_root(collection), found, spec.max_features) if found else None
        return trees[key]


def _state(request: Request, name: str, make) -> Any:
    state = request.app.state
    if not hasattr(state, name):
        setattr(state, name, make())
    return getattr(state, name)


def _volume(region: tuple[float, ...]) -> dict[str, list[float]]:
    w, s, e, n, low, high = region
    return {"region": [math.radians(w), math.radians(s), math.radians(e), math.radians(n), low, high]}


def _tile(root: tuple[float, float, float, float], node: tree.Node) -> dict[str, Any]:
    out: dict[str, Any] = {"boundingVolume": _volume(node.region), "geometricError": tree.error_of(root, node)}
    if node.children:
        out["refine"] = "REPLACE"
        out["children"] = [_tile(root, c) for c in node.children]
    else:
        west, south, east, north = tree.cell(root, node.key)
        out["transform"] = enu_to_ecef((west + east) / 2, (south + north) / 2)
        out["content"] = {"uri": f"tiles/r{node.key}.glb"}
    return out


def tileset_json(collection: VectorCollection, node: tree.Node | None, version: str) -> dict[str, Any]:
    """The tileset document (3D Tiles 1.1) of a tree; an empty root when the caller sees nothing."""
    root = _root(collection)
    if node is None:
        top: dict[str, Any] = {"boundingVolume": _volume((*root, 0.0, 0.0)), "geometricError": 0.0}
    else:
        top = _tile(root, node)
        top.setdefault("refine", "REPLACE")
    return {
        "asset": {"version": "1.1", "tilesetVersion": version, "generator": "OneMap"},
        "geometricError": max(2.0 * top["geometricError"], 1.0),
        "root": top,
    }


async def content(request: Request, collection: VectorCollection, name: str) -> bytes:
    """The GLB of the leaf named ``name`` (``r`` + its key) of the caller's tree; 404 for any other."""
    key = name[1:]
    node = await city(request, collection) if name[:1] == "r" and tree.KEY.fullmatch(key) else None
    if node is None or tree.leaf(node, key) is None:
        raise NotFound(f"Collection '{collection.id}' has no 3D tile '{name}'.")
    root = _root(collection)
    west, south, east, north = tree.cell(root, key)
    region = tree.leaf(node, key).region  # type: ignore[union-attr]
    found = await _read(request, collection, region[:4], terrain_for(request, collection))
    mine = sorted((f for f in found if tree.in_cell(root, key, f)), key=lambda f: f.id)
    fields = metadata(collection, restriction_for(request, collection))
    idf = collection.source.id_field
    return await run_in_threadpool(build_glb, mine, ((west + east) / 2, (south + north) / 2), fields, idf)
