"""Process jobs (OGC API Processes) in the store's admin part, so that every replica answers for them.

Embedded store: a table in the admin SQLite file (``onemap_admin.sqlite``); PostGIS: a table in the
database. Every execution is recorded - synchronous ones too - with who ran it, the edition, the
process, the input geometry's hash, area and vertex count, the verdict and the layers that were not
available to the caller: this table is the audit of executions. A job that was accepted or running
when its server stopped is reported failed once it is older than the process timeout (``stale``),
never left running forever. A dismissed job (``DELETE /jobs/{id}``) keeps its row - the audit - without
its results, and nothing changes it any more.

All methods are synchronous (the server calls them in worker threads).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from abc import ABC, abstractmethod
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from server.pgconn import OwnConnection

FINAL = ("successful", "failed", "dismissed")
SCHEMA = """
CREATE TABLE IF NOT EXISTS onemap_jobs (
    id text PRIMARY KEY,
    owner text NOT NULL,
    edition text NOT NULL,
    process text NOT NULL,
    status text NOT NULL,
    message text,
    created text NOT NULL,
    updated text NOT NULL,
    finished text,
    geometry_hash text,
    area_m2 double precision,
    vertices integer,
    planned_use text,
    verdict text,
    unavailable text,
    result text
)"""
INDEX = "CREATE INDEX IF NOT EXISTS onemap_jobs_owner ON onemap_jobs (owner, edition, created)"
OPEN = ("accepted", "running")
# the jobs not yet ended, for the job-queue gauges: small whatever the table's size (partial index)
OPEN_INDEX = ("CREATE INDEX IF NOT EXISTS onemap_jobs_open ON onemap_jobs (status, updated) "
              "WHERE status IN ('accepted', 'running')")
STALE_GRACE_S = 30.0  # past the process timeout, an unfinished job's server is taken to have stopped


@dataclass
class Job:
    """One execution. Times are RFC 3339 UTC strings; ``result`` is the JSON text of the results."""

    id: str
    owner: str
    edition: str
    process: str
    status: str
    created: str
    updated: str
    message: str | None = None
    finished: str | None = None
    geometry_hash: str | None = None
    area_m2: float | None = None
    vertices: int | None = None
    planned_use: str | None = None
    verdict: str | None = None
    unavailable: str | None = None
    result: str | None = None

    def stale(self, now: dt.datetime, timeout_s: float) -> bool:
        """Still accepted or running well past the timeout: its server stopped before it finished."""
        if self.status in FINAL:
            return False
        updated = dt.datetime.fromisoformat(self.updated)
        return (now - updated).total_seconds() > timeout_s + STALE_GRACE_S


COLUMNS = tuple(f.name for f in fields(Job))


def now_text() -> str:
    """The current time as stored."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


class _Jobs(ABC):
    """The statements, shared by both backends (``%s`` placeholders); a backend runs them."""

    @abstractmethod
    def _run(self, sql: str, params: tuple = (), fetch: bool = False) -> list[tuple]:
        """Execute one statement; its rows with ``fetch``."""

    def setup(self) -> None:
        """Create the table (idempotent)."""
        self._run(SCHEMA)
        self._run(INDEX)
        self._run(OPEN_INDEX)

    def add(self, job: Job) -> None:
        """Record a new job."""
        marks = ", ".join(["%s"] * len(COLUMNS))
        self._run(f"INSERT INTO onemap_jobs ({', '.join(COLUMNS)}) VALUES ({marks})",
                  tuple(getattr(job, c) for c in COLUMNS))

    def update(self, job_id: str, **values: Any) -> None:
        """Change a job's status, message, verdict or result (``updated`` moves); a dismissed job stays
        as it is (a run that ends on another replica after its dismissal writes nothing)."""
        values["updated"] = now_text()
        unknown = set(values) - set(COLUMNS)
        if unknown:
            raise ValueError(f"not job columns: {sorted(unknown)}")
        assignments = ", ".join(f"{name} = %s" for name in values)
        self._run(f"UPDATE onemap_jobs SET {assignments} WHERE id = %s AND status <> 'dismissed'",
                  (*values.values(), job_id))

    def dismiss(self, job_id: str, message: str) -> None:
        """Mark a job dismissed and remove its results (the row stays: it is the audit of the execution)."""
        now = now_text()
        self._run("UPDATE onemap_jobs SET status = 'dismissed', message = %s, result = NULL, updated = %s, "
                  "finished = COALESCE(finished, %s) WHERE id = %s AND status <> 'dismissed'",
                  (message, now, now, job_id))

    def get(self, job_id: str, owner: str, edition: str) -> Job | None:
        """The job if this owner ran it on this edition; None otherwise (another's job is not found)."""
        rows = self._run(f"SELECT {', '.join(COLUMNS)} FROM onemap_jobs WHERE id = %s AND owner = %s "
                         "AND edition = %s", (job_id, owner, edition), fetch=True)
        return Job(*rows[0]) if rows else None

    def open_counts(self, updated_since: str) -> dict[str, int]:
        """How many jobs are accepted and running, of those updated after ``updated_since`` (older ones are
        stale: their server stopped). One aggregate over the partial index ``onemap_jobs_open``."""
        rows = self._run("SELECT status, count(*) FROM onemap_jobs WHERE status IN ('accepted', 'running') "
                         "AND updated > %s GROUP BY status", (updated_since,), fetch=True)
        return {status: 0 for status in OPEN} | {str(status): int(n) for status, n in rows}

    def list(self, owner: str, edition: str, limit: int) -> list[Job]:
        """The owner's latest jobs on this edition, newest first (without results)."""
        columns = ", ".join(c if c != "result" else "NULL" for c in COLUMNS)
        rows = self._run(f"SELECT {columns} FROM onemap_jobs WHERE owner = %s AND edition = %s "
                         "ORDER BY created DESC LIMIT %s", (owner, edition, limit), fetch=True)
        return [Job(*r) for r in rows]


class SqliteJobs(_Jobs):
    """Jobs in the admin SQLite file (WAL, as the audit)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def _run(self, sql: str, params: tuple = (), fetch: bool = False) -> list[tuple]:
        conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            cur = conn.execute(sql.replace("%s", "?"), params)
            return cur.fetchall() if fetch else []
        finally:
            conn.close()


class PostgresJobs(_Jobs):
    """Jobs in the database, on one connection of their own (reconnected when lost)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._db = OwnConnection(url, "onemap-jobs")

    def _run(self, sql: str, params: tuple = (), fetch: bool = False) -> list[tuple]:
        return self._db.run(sql, params, fetch=fetch)

    def close(self) -> None:
        """Close the connection."""
        self._db.close()
