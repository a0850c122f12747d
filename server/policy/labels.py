"""The store's label: which edition's data a store holds, recorded in an ``onemap_metadata`` table.

A release bundle (and a store loaded from one) is labelled with its edition and the levels it may
contain, and the rules its data was prepared under (``EditionsFile.fingerprint``). A store with no
label is a master store: it may hold everything (secret included). A server refuses to start on a
store whose label names a level its edition may not hold (and, ``fingerprint.py``, on one prepared
under other rules than the running ones).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import orjson
import psycopg

from server.policy.editions import LEVELS, EditionSpec

METADATA_TABLE = "onemap_metadata"
CREATE_SQL = f"CREATE TABLE IF NOT EXISTS {METADATA_TABLE} (key TEXT PRIMARY KEY, value TEXT NOT NULL)"


@dataclass(frozen=True)
class StoreLabel:
    """What a store says about itself; ``edition`` None means an unlabelled master store."""

    edition: str | None
    levels: tuple[str, ...]
    rules_version: str | None = None
    rules_digest: str | None = None
    released: str | None = None
    rules: str | None = None  # JSON of ``EditionsFile.fingerprint(edition)`` at release

    @classmethod
    def from_rows(cls, rows: list[tuple[str, str]]) -> StoreLabel:
        """From (key, value) rows; no rows gives the master label."""
        d = dict(rows)
        if "edition" not in d:
            return MASTER
        return cls(d["edition"], tuple(orjson.loads(d.get("levels", "[]"))), d.get("rules_version"),
                   d.get("rules_digest"), d.get("released"), d.get("rules"))

    def rows(self) -> list[tuple[str, str]]:
        """(key, value) rows to store."""
        out = {"edition": self.edition or "", "levels": orjson.dumps(list(self.levels)).decode()}
        for k in ("rules_version", "rules_digest", "released", "rules"):
            if getattr(self, k):
                out[k] = getattr(self, k)
        return list(out.items())


MASTER = StoreLabel(edition=None, levels=LEVELS)
EMPTY = StoreLabel(edition=None, levels=())


def read_gpkg_label(path: Path) -> StoreLabel:
    """The label of a GeoPackage store (read-only); a store that does not exist holds nothing."""
    if not Path(path).exists():
        return EMPTY
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                              (METADATA_TABLE,)).fetchone()
        rows = conn.execute(f"SELECT key, value FROM {METADATA_TABLE}").fetchall() if exists else []
    finally:
        conn.close()
    return StoreLabel.from_rows(rows)


def write_gpkg_label(conn: sqlite3.Connection, label: StoreLabel) -> None:
    """Record a label in an open GeoPackage (replacing any earlier one)."""
    conn.execute(CREATE_SQL)
    conn.execute(f"DELETE FROM {METADATA_TABLE}")
    conn.executemany(f"INSERT INTO {METADATA_TABLE} (key, value) VALUES (?, ?)", label.rows())


def read_pg_label(url: str) -> StoreLabel:
    """The label of a PostGIS store."""
    with psycopg.connect(url, connect_timeout=10) as conn:
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", [METADATA_TABLE]).fetchone()
        rows = conn.execute(f"SELECT key, value FROM {METADATA_TABLE}").fetchall() if exists and exists[0] else []
    return StoreLabel.from_rows(rows)


def write_pg_label(conn: psycopg.Connection, label: StoreLabel) -> None:
    """Record a label in a PostGIS store (inside the caller's transaction)."""
    conn.execute(CREATE_SQL)
    conn.execute(f"DELETE FROM {METADATA_TABLE}")
    with conn.cursor() as cur:
        cur.executemany(f"INSERT INTO {METADATA_TABLE} (key, value) VALUES (%s, %s)", label.rows())


def label_problem(label: StoreLabel, edition: str, spec: EditionSpec) -> str | None:
    """Why a server of ``edition`` must not serve a store with this label, or ``None``."""
    above = [lv for lv in label.levels if not spec.allows(lv)]
    if not above:
        return None
    held = "an unlabelled master store (it may hold every level)" if label.edition is None else (
        f"a store labelled for the '{label.edition}' edition")
    return (
        f"this server runs the '{edition}' edition, which may hold only {', '.join(spec.levels)} data, "
        f"but it was given {held} that may contain {', '.join(above)} data. Serve it with an edition that "
        f"may hold it, or import a release built for '{edition}' (onemap release --edition {edition})."
    )
