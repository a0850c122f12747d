"""Write an embedded store (the sample, a release bundle) as a GeoPackage 1.3 file with nothing but
the standard library's sqlite3.

One feature table per collection (``fid`` + one column per catalog field + ``geom``), a UNIQUE index
on the id field, and the R-tree spatial index extension with its standard triggers. The file is
built under a temporary name and renamed into place, so readers never see a half-written store.
Nothing time-dependent is written: the same rows give the same bytes.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import shapely
from pyproj import CRS
from pyproj.enums import WktVersion

from server.catalog import VectorCollection
from server.sources.gpkg_geometry import encode_gpkg_geometries, register_functions
from server.stores.batches import Batch

APPLICATION_ID = 0x47504B47  # "GPKG"
USER_VERSION = 10300
SRS_ID = 4490
LAST_CHANGE = "2024-12-31T00:00:00.000Z"
RTREE_DEFINITION = "http://www.geopackage.org/spec120/#extension_rtree"
SQL_TYPES = {"string": "TEXT", "integer": "INTEGER", "number": "DOUBLE", "date": "DATE",
             "datetime": "DATETIME", "boolean": "BOOLEAN"}

CORE_DDL = """
CREATE TABLE gpkg_spatial_ref_sys (
  srs_name TEXT NOT NULL, srs_id INTEGER PRIMARY KEY, organization TEXT NOT NULL,
  organization_coordsys_id INTEGER NOT NULL, definition TEXT NOT NULL, description TEXT);
CREATE TABLE gpkg_contents (
  table_name TEXT NOT NULL PRIMARY KEY, data_type TEXT NOT NULL, identifier TEXT UNIQUE,
  description TEXT DEFAULT '', last_change DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE, srs_id INTEGER,
  CONSTRAINT fk_gc_r_srs_id FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys(srs_id));
CREATE TABLE gpkg_geometry_columns (
  table_name TEXT NOT NULL, column_name TEXT NOT NULL, geometry_type_name TEXT NOT NULL,
  srs_id INTEGER NOT NULL, z TINYINT NOT NULL, m TINYINT NOT NULL,
  CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name),
  CONSTRAINT uk_gc_table_name UNIQUE (table_name),
  CONSTRAINT fk_gc_tn FOREIGN KEY (table_name) REFERENCES gpkg_contents(table_name),
  CONSTRAINT fk_gc_srs FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys(srs_id));
CREATE TABLE gpkg_extensions (
  table_name TEXT, column_name TEXT, extension_name TEXT NOT NULL, definition TEXT NOT NULL,
  scope TEXT NOT NULL, CONSTRAINT ge_tce UNIQUE (table_name, column_name, extension_name));
"""

# GeoPackage Annex F.3 trigger set; {t} table, {c} geometry column, {i} primary key
RTREE_TRIGGERS = """
CREATE TRIGGER "rtree_{t}_{c}_insert" AFTER INSERT ON "{t}"
WHEN (new."{c}" NOT NULL AND NOT ST_IsEmpty(NEW."{c}"))
BEGIN
  INSERT OR REPLACE INTO "rtree_{t}_{c}" VALUES (NEW."{i}",
    ST_MinX(NEW."{c}"), ST_MaxX(NEW."{c}"), ST_MinY(NEW."{c}"), ST_MaxY(NEW."{c}"));
END;
CREATE TRIGGER "rtree_{t}_{c}_update6" AFTER UPDATE OF "{c}" ON "{t}"
WHEN OLD."{i}" = NEW."{i}" AND (NEW."{c}" NOTNULL AND NOT ST_IsEmpty(NEW."{c}"))
  AND (OLD."{c}" NOTNULL AND NOT ST_IsEmpty(OLD."{c}"))
BEGIN
  UPDATE "rtree_{t}_{c}" SET minx = ST_MinX(NEW."{c}"), maxx = ST_MaxX(NEW."{c}"),
    miny = ST_MinY(NEW."{c}"), maxy = ST_MaxY(NEW."{c}") WHERE id = NEW."{i}";
END;
CREATE TRIGGER "rtree_{t}_{c}_update7" AFTER UPDATE OF "{c}" ON "{t}"
WHEN OLD."{i}" = NEW."{i}" AND (NEW."{c}" NOTNULL AND NOT ST_IsEmpty(NEW."{c}"))
  AND (OLD."{c}" ISNULL OR ST_IsEmpty(OLD."{c}"))
BEGIN
  INSERT INTO "rtree_{t}_{c}" VALUES (NEW."{i}",
    ST_MinX(NEW."{c}"), ST_MaxX(NEW."{c}"), ST_MinY(NEW."{c}"), ST_MaxY(NEW."{c}"));
END;
CREATE TRIGGER "rtree_{t}_{c}_update2" AFTER UPDATE OF "{c}" ON "{t}"
WHEN OLD."{i}" = NEW."{i}" AND (NEW."{c}" ISNULL OR ST_IsEmpty(NEW."{c}"))
BEGIN
  DELETE FROM "rtree_{t}_{c}" WHERE id = OLD."{i}";
END;
CREATE TRIGGER "rtree_{t}_{c}_update5" AFTER UPDATE ON "{t}"
WHEN OLD."{i}" != NEW."{i}" AND (NEW."{c}" NOTNULL AND NOT ST_IsEmpty(NEW."{c}"))
BEGIN
  DELETE FROM "rtree_{t}_{c}" WHERE id = OLD."{i}";
  INSERT OR REPLACE INTO "rtree_{t}_{c}" VALUES (NEW."{i}",
    ST_MinX(NEW."{c}"), ST_MaxX(NEW."{c}"), ST_MinY(NEW."{c}"), ST_MaxY(NEW."{c}"));
END;
CREATE TRIGGER "rtree_{t}_{c}_update4" AFTER UPDATE ON "{t}"
WHEN OLD."{i}" != NEW."{i}" AND (NEW."{c}" ISNULL OR ST_IsEmpty(NEW."{c}"))
BEGIN
  DELETE FROM "rtree_{t}_{c}" WHERE id IN (OLD."{i}", NEW."{i}");
END;
CREATE TRIGGER "rtree_{t}_{c}_delete" AFTER DELETE ON "{t}"
WHEN old."{c}" NOT NULL
BEGIN
  DELETE FROM "rtree_{t}_{c}" WHERE id = OLD."{i}";
END;
"""


def _srs_rows() -> list[tuple]:
    def wkt(code: int) -> str:
        return CRS.from_epsg(code).to_wkt(WktVersion.WKT1_GDAL)

    return [
        ("Undefined cartesian SRS", -1, "NONE", -1, "undefined", "undefined cartesian coordinate reference system"),
        ("Undefined geographic SRS", 0, "NONE", 0, "undefined", "undefined geographic coordinate reference system"),
        ("WGS 84 geodetic", 4326, "EPSG", 4326, wkt(4326),
         "longitude/latitude coordinates in decimal degrees on the WGS 84 spheroid"),
        ("China Geodetic Coordinate System 2000", SRS_ID, "EPSG", SRS_ID, wkt(SRS_ID),
         "CGCS2000 longitude/latitude coordinates in decimal degrees"),
    ]


class GeoPackageWriter:
    """Streams batches into a new GeoPackage; ``finish`` indexes it and moves it into place."""

    def __init__(self, path: Path, collections: list[VectorCollection]) -> None:
        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self.collections = {c.id: c for c in collections}
        self.bounds: dict[str, list[float]] = {}
        self.next_fid: dict[str, int] = {}
        self.tmp.unlink(missing_ok=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.tmp, isolation_level=None)
        self._create()

    def _create(self) -> None:
        db = self.conn
        db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        db.execute(f"PRAGMA user_version = {USER_VERSION}")
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
        db.execute("PRAGMA cache_size = -65536")
        db.execute("BEGIN")
        for stmt in CORE_DDL.split(";"):
            if stmt.strip():
                db.execute(stmt)
        db.executemany("INSERT INTO gpkg_spatial_ref_sys VALUES (?, ?, ?, ?, ?, ?)", _srs_rows())
        for c in self.collections.values():
            self._create_table(c)

    def _create_table(self, c: VectorCollection) -> None:
        src = c.source
        cols = ", ".join(f'"{f.name}" {SQL_TYPES[f.type]}' + (" NOT NULL" if f.name == src.id_field else "")
                         for f in c.fields)
        t, g = src.table, src.geometry_field
        self.conn.execute(
            f'CREATE TABLE "{t}" (fid INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, {cols}, "{g}" MULTIPOLYGON)'
        )
        self.conn.execute(f'CREATE VIRTUAL TABLE "rtree_{t}_{g}" USING rtree(id, minx, maxx, miny, maxy)')
        self.conn.execute(
            "INSERT INTO gpkg_contents (table_name, data_type, identifier, description, last_change, srs_id)"
            " VALUES (?, 'features', ?, ?, ?, ?)",
            (t, c.title.zh, c.description.zh, LAST_CHANGE, SRS_ID),
        )
        self.conn.execute("INSERT INTO gpkg_geometry_columns VALUES (?, ?, 'MULTIPOLYGON', ?, 0, 0)", (t, g, SRS_ID))
        self.conn.execute(
            "INSERT INTO gpkg_extensions VALUES (?, ?, 'gpkg_rtree_index', ?, 'write-only')", (t, g, RTREE_DEFINITION)
        )
        self.next_fid[c.id] = 1

    def write(self, batch: Batch) -> None:
        """Append a batch of rows (and their R-tree entries) to its table."""
        if len(batch) == 0:
            return
        c = self.collections[batch.collection]
        t, g = c.source.table, c.source.geometry_field
        names = list(c.field_names)
        blobs = encode_gpkg_geometries(batch.geoms, SRS_ID)
        first = self.next_fid[c.id]
        fids = range(first, first + len(batch))
        self.next_fid[c.id] = first + len(batch)
        placeholders = ", ".join("?" * (len(names) + 2))
        quoted = ", ".join(f'"{n}"' for n in names)
        rows = zip(fids, *(batch.columns[n] for n in names), blobs, strict=True)
        self.conn.executemany(f'INSERT INTO "{t}" (fid, {quoted}, "{g}") VALUES ({placeholders})', rows)
        b = shapely.bounds(batch.geoms)
        self.conn.executemany(
            f'INSERT INTO "rtree_{t}_{g}" VALUES (?, ?, ?, ?, ?)',
            zip(fids, b[:, 0].tolist(), b[:, 2].tolist(), b[:, 1].tolist(), b[:, 3].tolist(), strict=True),
        )
        box = [float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()), float(b[:, 3].max())]
        old = self.bounds.get(c.id)
        self.bounds[c.id] = box if old is None else [min(old[0], box[0]), min(old[1], box[1]),
                                                     max(old[2], box[2]), max(old[3], box[3])]

    def finish(self) -> None:
        """Index, add the R-tree triggers, record extents, and rename the file into place."""
        db = self.conn
        for cid, c in self.collections.items():
            t, g, idf = c.source.table, c.source.geometry_field, c.source.id_field
            db.execute(f'CREATE UNIQUE INDEX "{t}_{idf}_uq" ON "{t}" ("{idf}")')
            self._triggers(t, g)
            box = self.bounds.get(cid)
            if box:
                db.execute("UPDATE gpkg_contents SET min_x = ?, min_y = ?, max_x = ?, max_y = ? WHERE table_name = ?",
                           (*box, t))
        db.execute("COMMIT")
        db.execute("PRAGMA journal_mode = DELETE")
        db.close()
        os.replace(self.tmp, self.path)

    def _triggers(self, table: str, column: str) -> None:
        for stmt in RTREE_TRIGGERS.format(t=table, c=column, i="fid").split("END;"):
            if stmt.strip():
                self.conn.execute(stmt + "END;")

    def abort(self) -> None:
        """Drop the half-built file."""
        try:
            self.conn.close()
        finally:
            self.tmp.unlink(missing_ok=True)


def open_for_edits(path: Path) -> sqlite3.Connection:
    """A connection to a GeoPackage store whose R-tree triggers work (their SQL functions registered)."""
    conn = sqlite3.connect(path)
    register_functions(conn)
    return conn
