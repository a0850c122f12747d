"""GeoPackage binary geometry (GeoPackage 1.3, clause 2.1.3) and the SQL functions its R-tree needs.

A blob is: magic ``GP``, version 0, a flags byte, the srs_id (int32), an optional envelope, then
ISO WKB. Flags: bit 0 byte order of header (1 = little endian), bits 1-3 envelope kind
(0 none, 1 [minx, maxx, miny, maxy], 2 +[minz, maxz], 3 +[minm, maxm], 4 +z +m), bit 4 empty,
bit 5 extended (non-standard) geometry.

The standard R-tree triggers call ``ST_MinX``, ``ST_MaxX``, ``ST_MinY``, ``ST_MaxY`` and
``ST_IsEmpty``, which plain SQLite lacks: call ``register_functions(conn)`` on every sqlite3
connection that inserts, updates or deletes rows of a feature table.
"""

from __future__ import annotations

import sqlite3
import struct
from collections.abc import Sequence

import numpy as np
import shapely

_ENVELOPE_DOUBLES = {0: 0, 1: 4, 2: 6, 3: 6, 4: 8}
_HEADER_LE_XY = struct.Struct("<2sBBi4d")
_EMPTY_FLAG = 0x10


class GeometryBlobError(ValueError):
    """The bytes are not a GeoPackage geometry blob."""


def encode_gpkg_geometry(
    wkb: bytes, srs_id: int, envelope: Sequence[float] | None = None, empty: bool = False
) -> bytes:
    """Wrap ISO WKB in a little-endian GeoPackage header.

    ``envelope`` is ``(minx, maxx, miny, maxy)`` - note the GeoPackage order, not shapely's bounds
    order. Without one the header carries no envelope.
    """
    if envelope is None:
        flags = 0x01 | (_EMPTY_FLAG if empty else 0)
        return struct.pack("<2sBBi", b"GP", 0, flags, srs_id) + wkb
    minx, maxx, miny, maxy = envelope
    return _HEADER_LE_XY.pack(b"GP", 0, 0x03, srs_id, minx, maxx, miny, maxy) + wkb


def encode_gpkg_geometries(geoms: np.ndarray, srs_id: int) -> list[bytes]:
    """Encode an array of non-empty shapely geometries, each with its xy envelope."""
    wkbs = shapely.to_wkb(geoms, byte_order=1, flavor="iso")
    bounds = shapely.bounds(geoms)
    header = np.zeros(
        len(wkbs),
        dtype=[("magic", "S2"), ("version", "u1"), ("flags", "u1"), ("srs", "<i4"), ("env", "<f8", 4)],
    )
    header["magic"] = b"GP"
    header["flags"] = 0x03
    header["srs"] = srs_id
    header["env"] = bounds[:, [0, 2, 1, 3]]
    raw = header.tobytes()
    size = header.dtype.itemsize
    return [raw[i * size : (i + 1) * size] + w for i, w in enumerate(wkbs)]


def _header(blob: bytes) -> tuple[str, int, int]:
    """Byte order char, flags and header length of a blob; raises on anything else."""
    if not isinstance(blob, (bytes, bytearray, memoryview)) or len(blob) < 8 or blob[:2] != b"GP":
        raise GeometryBlobError("not a GeoPackage geometry blob")
    if blob[2] != 0:
        raise GeometryBlobError(f"unsupported GeoPackage geometry version {blob[2]}")
    flags = blob[3]
    kind = (flags >> 1) & 0x07
    if kind not in _ENVELOPE_DOUBLES:
        raise GeometryBlobError(f"invalid envelope indicator {kind}")
    if flags & 0x20:
        raise GeometryBlobError("extended GeoPackage geometries are not supported")
    size = 8 + 8 * _ENVELOPE_DOUBLES[kind]
    if len(blob) < size:
        raise GeometryBlobError("truncated GeoPackage geometry header")
    return ("<" if flags & 0x01 else ">"), flags, size


def decode_gpkg_geometry(blob: bytes) -> bytes:
    """The WKB inside a GeoPackage geometry blob."""
    _, _, size = _header(blob)
    return bytes(blob[size:])


def gpkg_srs_id(blob: bytes) -> int:
    """The srs_id recorded in a blob's header."""
    order, _, _ = _header(blob)
    return struct.unpack_from(order + "i", blob, 4)[0]


def gpkg_envelope(blob: bytes) -> tuple[float, float, float, float] | None:
    """``(minx, maxx, miny, maxy)`` of a blob: from its header, else computed; ``None`` if empty."""
    order, flags, size = _header(blob)
    if flags & _EMPTY_FLAG:
        return None
    if size >= 40:
        return struct.unpack_from(order + "4d", blob, 8)
    geom = shapely.from_wkb(bytes(blob[size:]))
    if geom.is_empty:
        return None
    minx, miny, maxx, maxy = geom.bounds
    return minx, maxx, miny, maxy


def _envelope_part(i: int):
    def fn(blob):
        if blob is None:
            return None
        env = gpkg_envelope(blob)
        return None if env is None else env[i]

    return fn


def _is_empty(blob) -> int | None:
    if blob is None:
        return None
    return 1 if gpkg_envelope(blob) is None else 0


def register_functions(conn: sqlite3.Connection) -> None:
    """Install ST_MinX/MaxX/MinY/MaxY and ST_IsEmpty so the R-tree triggers can run."""
    for i, name in enumerate(("ST_MinX", "ST_MaxX", "ST_MinY", "ST_MaxY")):
        conn.create_function(name, 1, _envelope_part(i), deterministic=True)
    conn.create_function("ST_IsEmpty", 1, _is_empty, deterministic=True)
