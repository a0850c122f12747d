"""The sheet index of an imagery mosaic: which COG sheets make each acquisition, and where they lie.

An acquisition of a mosaic collection (``raster.sheets`` in its catalog file) is a set of COG sheets
(map sheets or grid cells). The index is a small SQLite file in the data directory, beside the COGs
it lists, with an R-tree over each sheet's WGS84 bounds: the same file serves the embedded store and
PostGIS deployments (the COGs are files either way, and the index travels with them), and a tile
finds its sheets in microseconds without opening any COG. Every write (``add``) runs in one
transaction and moves the acquisition's version, which the cache keys hold.

A sheet is refused at add time when its CRS or band count differs from its acquisition's.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import rasterio
from rasterio.crs import CRS
from rasterio.errors import RasterioError
from rasterio.warp import transform_bounds

_SCHEMA = """
CREATE TABLE IF NOT EXISTS acquisitions (
    id TEXT PRIMARY KEY, datetime TEXT NOT NULL, crs TEXT NOT NULL, bands INTEGER NOT NULL,
    version INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS sheets (
    fid INTEGER PRIMARY KEY, acquisition TEXT NOT NULL REFERENCES acquisitions(id), name TEXT NOT NULL,
    path TEXT NOT NULL, minx REAL NOT NULL, miny REAL NOT NULL, maxx REAL NOT NULL, maxy REAL NOT NULL,
    UNIQUE (acquisition, name));
CREATE VIRTUAL TABLE IF NOT EXISTS sheets_rtree USING rtree(fid, minx, maxx, miny, maxy);
"""
_COVERING = """
SELECT s.acquisition, a.datetime, s.name, s.path, s.minx, s.miny, s.maxx, s.maxy
FROM sheets_rtree r JOIN sheets s ON s.fid = r.fid JOIN acquisitions a ON a.id = s.acquisition
WHERE r.minx < ? AND r.maxx > ? AND r.miny < ? AND r.maxy > ?
  AND (? IS NULL OR a.datetime >= ?) AND (? IS NULL OR a.datetime <= ?) AND (? IS NULL OR a.id = ?)
ORDER BY a.datetime DESC, s.name
"""


class SheetError(ValueError):
    """A sheet cannot join its acquisition (different CRS or band count, unreadable, outside the data dir)."""


@dataclass(frozen=True)
class Sheet:
    """One registered COG sheet: its acquisition, name, path (relative to the data dir) and WGS84 bounds."""

    acquisition: str
    datetime: str
    name: str
    path: str
    bounds: tuple[float, float, float, float]


@dataclass(frozen=True)
class Acquisition:
    """One acquisition of a mosaic: id, time (RFC 3339, UTC), CRS (WKT), band count and version."""

    id: str
    datetime: str
    crs: str
    bands: int
    version: int


_local = threading.local()


def _connect(path: Path) -> sqlite3.Connection:
    """The calling thread's read connection to the index (reopened when the file is replaced)."""
    conns: dict[Path, tuple[int, sqlite3.Connection]] = _local.__dict__.setdefault("conns", {})
    inode = path.stat().st_ino
    found = conns.get(path)
    if found is not None and found[0] == inode:
        return found[1]
    if found is not None:
        found[1].close()
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    conns[path] = (inode, conn)
    return conn


class SheetIndex:
    """The sheet index file of one mosaic collection."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def exists(self) -> bool:
        """Whether the index file is there (a mosaic with no sheet added yet has none)."""
        return self.path.is_file()

    def covering(self, bbox: tuple[float, ...], *, start: str | None = None, end: str | None = None,
                 acquisition: str | None = None) -> list[Sheet]:
        """Sheets touching ``bbox`` (WGS84) acquired in [start, end] (or of one acquisition), newest first."""
        if not self.exists():
            return []
        minx, miny, maxx, maxy = bbox
        rows = _connect(self.path).execute(
            _COVERING, (maxx, minx, maxy, miny, start, start, end, end, acquisition, acquisition)).fetchall()
        return [Sheet(a, d, n, p, (x0, y0, x1, y1)) for a, d, n, p, x0, y0, x1, y1 in rows]

    def sheets(self) -> list[Sheet]:
        """Every sheet, by acquisition time then name."""
        return sorted(self.covering((-180.0, -90.0, 180.0, 90.0)), key=lambda s: (s.datetime, s.name))

    def acquisitions(self) -> list[Acquisition]:
        """Every acquisition, oldest first."""
        if not self.exists():
            return []
        rows = _connect(self.path).execute(
            "SELECT id, datetime, crs, bands, version FROM acquisitions ORDER BY datetime, id").fetchall()
        return [Acquisition(*row) for row in rows]

    def check(self, acquisition: str, when: str, paths: Iterable[Path]) -> None:
        """Refuse (``SheetError``) any file that cannot join ``acquisition``: unreadable, or with another
        CRS or band count than the acquisition (or, for a new one, than the first file)."""
        described = [(Path(p), *_describe(Path(p))) for p in paths]
        if not described:
            raise SheetError("no sheet given")
        known = self._known(acquisition)
        if known is not None and known[2] != when:
            raise SheetError(f"acquisition '{acquisition}' was acquired {known[2]}, not {when}")
        crs, bands = (known[0], known[1]) if known else (described[0][1], described[0][2])
        for path, sheet_crs, count, _bounds in described:
            _check(path.name, sheet_crs, count, crs, bands, acquisition)

    def _known(self, acquisition: str) -> tuple[str, int, str] | None:
        if not self.exists():
            return None
        with sqlite3.connect(self.path) as conn:
            return conn.execute("SELECT crs, bands, datetime FROM acquisitions WHERE id = ?", (acquisition,)).fetchone()

    def add(self, data_dir: Path, acquisition: str, when: str, files: Iterable[tuple[str, str]]) -> int:
        """Register sheets ``(name, path relative to data_dir)`` in ``acquisition`` acquired ``when``
        (RFC 3339, UTC), replacing sheets of the same name; moves the acquisition's version.

        Every file is checked first (``check``); one bad sheet refuses the whole call (``SheetError``)
        and leaves the index unchanged. Returns the number of sheets registered."""
        files = list(files)
        paths = [_inside(data_dir, rel) for _, rel in files]
        self.check(acquisition, when, paths)
        described = [(name, rel, *_describe(path)) for (name, rel), path in zip(files, paths, strict=True)]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(self.path) as conn:
            conn.executescript(_SCHEMA)
            crs, bands = described[0][2], described[0][3]
            conn.execute("INSERT INTO acquisitions (id, datetime, crs, bands) VALUES (?, ?, ?, ?) "
                         "ON CONFLICT (id) DO UPDATE SET version = version + 1", (acquisition, when, crs, bands))
            for name, rel, _crs, _count, (x0, y0, x1, y1) in described:
                conn.execute("DELETE FROM sheets_rtree WHERE fid IN "
                             "(SELECT fid FROM sheets WHERE acquisition = ? AND name = ?)", (acquisition, name))
                conn.execute("DELETE FROM sheets WHERE acquisition = ? AND name = ?", (acquisition, name))
                fid = conn.execute(
                    "INSERT INTO sheets (acquisition, name, path, minx, miny, maxx, maxy) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (acquisition, name, rel, x0, y0, x1, y1)).lastrowid
                conn.execute("INSERT INTO sheets_rtree VALUES (?, ?, ?, ?, ?)", (fid, x0, x1, y0, y1))
        return len(described)

    def version(self) -> str:
        """A value that moves whenever a sheet is added or replaced."""
        return ";".join(f"{a.id}:{a.version}" for a in self.acquisitions())


def _inside(data_dir: Path, rel: str) -> Path:
    root = Path(data_dir).resolve()
    path = (root / rel).resolve()
    if root not in path.parents:
        raise SheetError(f"sheet '{rel}' is outside the data directory")
    return path


def _describe(path: Path) -> tuple[str, int, tuple[float, float, float, float]]:
    try:
        with rasterio.open(path) as src:
            if src.crs is None:
                raise SheetError(f"sheet '{path.name}' has no coordinate reference system")
            x0, y0, x1, y1 = transform_bounds(src.crs, "EPSG:4326", *src.bounds, densify_pts=21)
            return src.crs.to_wkt(), src.count, (x0, y0, x1, y1)
    except (RasterioError, OSError) as exc:
        raise SheetError(f"sheet '{path.name}' cannot be read as a raster: {exc}") from None


def _check(name: str, crs: str, bands: int, want_crs: str, want_bands: int, acquisition: str) -> None:
    if bands != want_bands:
        raise SheetError(f"sheet '{name}' has {bands} bands; acquisition '{acquisition}' has {want_bands}")
    have, want = CRS.from_wkt(crs), CRS.from_wkt(want_crs)
    if have != want:
        raise SheetError(f"sheet '{name}' is in {have.to_string()}; acquisition '{acquisition}' is in "
                         f"{want.to_string()}")
