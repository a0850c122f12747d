"""Per-collection data versions inside the embedded GeoPackage, like ``onemap_versions`` in PostGIS.

``install_versioning`` creates the table ``onemap_versions (collection TEXT PRIMARY KEY, version
INTEGER)`` and, on every collection table, ``AFTER INSERT``/``UPDATE``/``DELETE`` triggers that move
that collection's row. So an edit to one parcel moves the version of ``parcels`` only, and cached
responses of the other collections stay valid. A collection's first version is a 62-bit digest of
its rows: a rebuilt or replaced store with other data does not reuse old cache keys, and the same
data gives the same version (so the sample stays byte-for-byte reproducible).

The table is not registered in ``gpkg_contents``, so GeoPackage readers ignore it. Edits must go
through a connection that has the GeoPackage SQL functions registered (the standard R-tree triggers
call them): ``server.sources.gpkg_geometry.register_functions(conn)``, as
``server.stores.gpkg_writer.open_for_edits`` does, or any GIS that implements the GeoPackage R-tree
extension. The version triggers themselves need nothing but SQLite.
"""

from __future__ import annotations

import hashlib
import sqlite3

from server.catalog import Catalog, VectorCollection
from server.sources.tile_overviews import DATA_VERSIONS

EVENTS = ("insert", "update", "delete")
BATCH = 10_000


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _trigger_name(table: str, event: str) -> str:
    return f"onemap_version_{table}_{event}"


def _exists(conn: sqlite3.Connection, kind: str, name: str) -> bool:
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = ? AND name = ?", (kind, name)).fetchone()
    return row is not None


def content_seed(conn: sqlite3.Connection, table: str) -> int:
    """A table's first version: a 62-bit digest of its rows in rowid order (room left for bumps)."""
    digest = hashlib.blake2b(digest_size=8, person=b"onemap-ver")
    cursor = conn.execute(f"SELECT * FROM {_q(table)} ORDER BY rowid")
    while rows := cursor.fetchmany(BATCH):
        digest.update(repr(rows).encode())
    return int.from_bytes(digest.digest(), "big") >> 2


def install_versioning(conn: sqlite3.Connection, catalog: Catalog) -> list[str]:
    """Create ``onemap_versions`` and the version triggers on every existing collection table.

    A table that had no triggers yet (new, or loaded without them) gets the digest of its rows as
    its version; tables already versioned keep theirs (their edits moved it). Idempotent. ``conn``
    must be writable; the caller commits. Returns the collection ids now versioned.
    """
    conn.execute(f"CREATE TABLE IF NOT EXISTS {DATA_VERSIONS} (collection TEXT PRIMARY KEY, version INTEGER NOT NULL)")
    done: list[str] = []
    for c in catalog.of_kind(VectorCollection):
        if not _exists(conn, "table", c.source.table):
            continue
        table = c.source.table
        had = all(_exists(conn, "trigger", _trigger_name(table, e)) for e in EVENTS)
        found = conn.execute(f"SELECT 1 FROM {DATA_VERSIONS} WHERE collection = ?", (c.id,)).fetchone()
        if not had or found is None:
            conn.execute(
                f"INSERT OR REPLACE INTO {DATA_VERSIONS} (collection, version) VALUES (?, ?)",
                (c.id, content_seed(conn, table)),
            )
        bump = f"UPDATE {DATA_VERSIONS} SET version = version + 1 WHERE collection = {_literal(c.id)};"
        for event in EVENTS:
            name = _q(_trigger_name(table, event))
            conn.execute(f"DROP TRIGGER IF EXISTS {name}")
            conn.execute(f"CREATE TRIGGER {name} AFTER {event.upper()} ON {_q(table)} BEGIN {bump} END")
        done.append(c.id)
    return done


def data_version(conn: sqlite3.Connection, collection_id: str) -> int | None:
    """The collection's version, or None when the store has no versioning (or no row for it)."""
    try:
        row = conn.execute(f"SELECT version FROM {DATA_VERSIONS} WHERE collection = ?", (collection_id,)).fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):  # a store written before versioning existed
            return None
        raise
    return None if row is None else int(row[0])
