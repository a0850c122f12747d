"""glTF 2.0 binary (GLB) content of one tile: extruded footprints with per-feature ids and metadata.

Geometry: each footprint is a prism from its base to its top (walls with flat normals, a roof
triangulated by earcut with its holes; no floor, it stands on the terrain). Positions are metres in
the east-north-up frame at the tile's origin, written Y-up as glTF requires (x east, y up, z south);
``enu_to_ecef`` is the tile's ``transform`` that places them on the globe (3D Tiles turns Y-up
content Z-up before applying it).

Features: ``EXT_mesh_features`` gives every vertex the index of its footprint (``_FEATURE_ID_0``),
pointing into the one property table of ``EXT_structural_metadata``, whose schema lists exactly the
fields passed in (those the caller may see). Written with pygltflib.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import mapbox_earcut
import numpy as np
import pygltflib
from pyproj import Transformer

from server.catalog import FieldSpec
from server.threed.footprints import Footprint

_TO_ECEF = Transformer.from_crs("EPSG:4979", "EPSG:4978", always_xy=True)
CLASS = "feature"
_NO_DATA = {"STRING": "", "INT32": -2147483648, "FLOAT64": -1.0e9}


def enu_rotation(lon: float, lat: float) -> np.ndarray:
    """Rows: the east, north and up unit vectors (ECEF) at ``lon``, ``lat`` (degrees)."""
    lam, phi = math.radians(lon), math.radians(lat)
    return np.array([
        [-math.sin(lam), math.cos(lam), 0.0],
        [-math.sin(phi) * math.cos(lam), -math.sin(phi) * math.sin(lam), math.cos(phi)],
        [math.cos(phi) * math.cos(lam), math.cos(phi) * math.sin(lam), math.sin(phi)],
    ])


def enu_to_ecef(lon: float, lat: float) -> list[float]:
    """The column-major 4x4 matrix taking east-north-up metres at ``lon``, ``lat`` (height 0) to ECEF."""
    rot = enu_rotation(lon, lat)
    origin = _TO_ECEF.transform(lon, lat, 0.0)
    matrix = np.eye(4)
    matrix[:3, :3] = rot.T
    matrix[:3, 3] = origin
    return [float(v) for v in matrix.T.ravel()]


class _Mesh:
    """Vertices (ENU), normals, feature ids and triangles of a tile's footprints, built in bulk."""

    def __init__(self, lon: float, lat: float) -> None:
        self.rot = enu_rotation(lon, lat)
        self.origin = np.array(_TO_ECEF.transform(lon, lat, 0.0))
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self.count = 0

    def enu(self, lonlat: np.ndarray, h: np.ndarray) -> np.ndarray:
        """ENU metres of lon/lat points at ellipsoidal heights ``h``."""
        x, y, z = _TO_ECEF.transform(lonlat[:, 0], lonlat[:, 1], h)
        return (np.column_stack([x, y, z]) - self.origin) @ self.rot.T

    def add(self, positions: np.ndarray, normals: np.ndarray, ids: np.ndarray, triangles: np.ndarray) -> None:
        """Append vertices with their feature ids; ``triangles`` index ``positions``."""
        self.parts.append((positions, normals, ids.astype(np.float32), triangles + self.count))
        self.count += len(positions)

    def prisms(self, footprints: Sequence[Footprint]) -> None:
        """Walls and roofs of every footprint, extruded from its base to its top."""
        rings = [(r, i, k) for i, f in enumerate(footprints) for k, p in enumerate(f.polygons) for r in p]
        sizes = np.array([len(r) for r, _, _ in rings])
        owner = np.repeat([i for _, i, _ in rings], sizes)
        points = np.concatenate([r for r, _, _ in rings])
        base = np.array([f.base for f in footprints])[owner]
        low = self.enu(points, base)
        high = self.enu(points, base + np.array([f.height for f in footprints])[owner])
        starts = np.repeat(np.cumsum(sizes) - sizes, sizes)
        nxt = starts + (np.arange(len(points)) - starts + 1) % np.repeat(sizes, sizes)
        quads = np.stack([low, low[nxt], high[nxt], high], axis=1)  # a0 b0 b1 a1, seen from outside CCW
        normal = np.cross(quads[:, 1] - quads[:, 0], quads[:, 3] - quads[:, 0])
        normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
        first = np.arange(len(points))[:, None] * 4
        self.add(quads.reshape(-1, 3), np.repeat(normal, 4, axis=0), np.repeat(owner, 4),
                 np.concatenate([first + [0, 1, 2], first + [0, 2, 3]]))
        self._roofs(high, sizes, owner, [(i, k) for _, i, k in rings])

    def _roofs(self, high: np.ndarray, sizes: np.ndarray, owner: np.ndarray, keys: list[tuple[int, int]]) -> None:
        """Roofs over the top vertices: one earcut per polygon (``keys``: footprint, polygon of each ring),
        triangles turned counter-clockwise seen from above."""
        ends = np.cumsum(sizes)
        bounds = [0] + [j for j in range(1, len(keys)) if keys[j] != keys[j - 1]] + [len(keys)]
        pieces = []
        for at, stop in zip(bounds[:-1], bounds[1:], strict=True):
            lo = int(ends[at] - sizes[at])
            ring_ends = (ends[at:stop] - lo).astype(np.uint32)
            pieces.append(mapbox_earcut.triangulate_float64(high[lo:int(ends[stop - 1]), :2], ring_ends) + lo)
        tris = np.concatenate(pieces).reshape(-1, 3)
        a, b, c = (high[tris[:, i], :2] for i in range(3))
        cw = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]) < 0
        tris[cw] = tris[cw][:, [0, 2, 1]]
        self.add(high, np.tile([0.0, 0.0, 1.0], (len(high), 1)), owner, tris)


def _y_up(v: np.ndarray) -> np.ndarray:
    """ENU (x east, y north, z up) to glTF's Y-up frame (x east, y up, z south)."""
    return np.column_stack([v[:, 0], v[:, 2], -v[:, 1]])


class _Blob:
    """The binary chunk: buffer views appended with 8-byte alignment (property tables need it)."""

    def __init__(self, gltf: pygltflib.GLTF2) -> None:
        self.gltf, self.data = gltf, bytearray()

    def view(self, raw: bytes, target: int | None = None) -> int:
        """Append ``raw`` as a new buffer view; its index."""
        self.data += b"\0" * (-len(self.data) % 8)
        self.gltf.bufferViews.append(pygltflib.BufferView(buffer=0, byteOffset=len(self.data),
                                                          byteLength=len(raw), target=target))
        self.data += raw
        return len(self.gltf.bufferViews) - 1

    def accessor(self, array: np.ndarray, kind: str, component: int, bounds: bool = False) -> int:
        """A new accessor over ``array`` in its own buffer view; its index."""
        target = pygltflib.ELEMENT_ARRAY_BUFFER if kind == "SCALAR" and component == pygltflib.UNSIGNED_INT \
            else pygltflib.ARRAY_BUFFER
        acc = pygltflib.Accessor(bufferView=self.view(array.tobytes(), target), componentType=component,
                                 count=len(array), type=kind)
        if bounds:
            acc.min, acc.max = array.min(axis=0).tolist(), array.max(axis=0).tolist()
        self.gltf.accessors.append(acc)
        return len(self.gltf.accessors) - 1


def property_type(field: FieldSpec | None, masked: bool) -> str:
    """The metadata type of a field: ``INT32``, ``FLOAT64`` or ``STRING`` (dates, masked values...)."""
    if field is None or masked:
        return "STRING"
    return {"integer": "INT32", "number": "FLOAT64"}.get(field.type, "STRING")


def schema(fields: Sequence[tuple[str, str, str]], id_field: str) -> dict:
    """The ``EXT_structural_metadata`` schema of one class: ``fields`` are (name, type, title)."""
    props = {}
    for name, kind, title in fields:
        spec: dict = {"name": title, "type": "STRING"} if kind == "STRING" else \
            {"name": title, "type": "SCALAR", "componentType": kind}
        if name == id_field:
            spec["required"] = True
        else:
            spec["noData"] = _NO_DATA[kind]
        props[name] = spec
    return {"id": "onemap", "classes": {CLASS: {"name": "Feature", "properties": props}}}


def _column(blob: _Blob, kind: str, values: list) -> dict:
    """One property table column: values (and string offsets) in their buffer views."""
    if kind == "STRING":
        texts = ["" if v is None else str(v) for v in values]
        encoded = [t.encode() for t in texts]
        offsets = np.concatenate([[0], np.cumsum([len(e) for e in encoded])]).astype(np.uint32)
        return {"values": blob.view(b"".join(encoded)), "stringOffsets": blob.view(offsets.tobytes()),
                "stringOffsetType": "UINT32"}
    dtype = np.int32 if kind == "INT32" else np.float64
    numbers = [_NO_DATA[kind] if not isinstance(v, (int, float)) else v for v in values]
    return {"values": blob.view(np.asarray(numbers, dtype=dtype).tobytes())}


def build_glb(footprints: Sequence[Footprint], origin: tuple[float, float],
              fields: Sequence[tuple[str, str, str]], id_field: str) -> bytes:
    """The GLB of ``footprints`` in the ENU frame at ``origin`` (lon, lat), one feature each, carrying
    the metadata ``fields`` (name, metadata type, title) and nothing else."""
    mesh = _Mesh(*origin)
    mesh.prisms(footprints)
    gltf = pygltflib.GLTF2(asset=pygltflib.Asset(version="2.0", generator="OneMap"), scene=0)
    blob = _Blob(gltf)
    positions = _y_up(np.concatenate([p[0] for p in mesh.parts])).astype(np.float32)
    normals = _y_up(np.concatenate([p[1] for p in mesh.parts])).astype(np.float32)
    ids = np.concatenate([p[2] for p in mesh.parts])
    triangles = np.concatenate([p[3] for p in mesh.parts]).astype(np.uint32).ravel()
    attributes = pygltflib.Attributes(
        POSITION=blob.accessor(positions, "VEC3", pygltflib.FLOAT, bounds=True),
        NORMAL=blob.accessor(normals, "VEC3", pygltflib.FLOAT),
    )
    attributes._FEATURE_ID_0 = blob.accessor(ids, "SCALAR", pygltflib.FLOAT)
    primitive = pygltflib.Primitive(
        attributes=attributes, indices=blob.accessor(triangles, "SCALAR", pygltflib.UNSIGNED_INT), material=0,
        extensions={"EXT_mesh_features": {"featureIds": [
            {"featureCount": len(footprints), "attribute": 0, "propertyTable": 0}]}},
    )
    gltf.meshes.append(pygltflib.Mesh(primitives=[primitive]))
    gltf.nodes.append(pygltflib.Node(mesh=0))
    gltf.scenes.append(pygltflib.Scene(nodes=[0]))
    gltf.materials.append(pygltflib.Material(pbrMetallicRoughness=pygltflib.PbrMetallicRoughness(
        baseColorFactor=[0.86, 0.84, 0.8, 1.0], metallicFactor=0.0, roughnessFactor=0.9)))
    columns = {name: _column(blob, kind, [f.properties.get(name) for f in footprints]) for name, kind, _ in fields}
    gltf.extensions["EXT_structural_metadata"] = {
        "schema": schema(fields, id_field),
        "propertyTables": [{"class": CLASS, "count": len(footprints), "properties": columns}],
    }
    gltf.extensionsUsed = ["EXT_mesh_features", "EXT_structural_metadata"]
    gltf.buffers.append(pygltflib.Buffer(byteLength=len(blob.data)))
    gltf.set_binary_blob(bytes(blob.data))
    return b"".join(gltf.save_to_bytes())
