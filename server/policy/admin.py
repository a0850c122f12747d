"""The admin tables: API keys and the append-only audit log, in the store the server runs on
(``Store.admin()`` of ``server.stores`` picks the implementation).

Embedded store: a SQLite file beside the GeoPackage (``onemap_admin.sqlite``), so that writing the
audit log never touches the data file (whose modification stamp is the data version). PostGIS: tables
in the database. The audit tables refuse UPDATE and DELETE (triggers in both backends); there is
no code path that changes or removes an audit row.

All methods are synchronous (the CLI calls them directly; the server calls them in worker threads).
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Protocol

import orjson
import psycopg

from server.pgconn import OwnConnection
from server.policy.keys import KeyRecord

SQL_DIR = Path(__file__).parent / "sql"
ADMIN_FILE = "onemap_admin.sqlite"
KEY_COLUMNS = ("id", "name", "secret_hash", "scopes", "networks", "not_before", "not_after",
               "daily_quota", "rate", "created", "revoked")


# Neither frozen nor slotted: one is made and encoded on every request; orjson writes an instance dict
# three times faster than slots, and a frozen init costs several microseconds.
@dataclass
class AuditRecord:
    """One access: who, from where, what, how much came back, and the status."""

    ts: dt.datetime
    edition: str
    key_id: str | None
    client_ip: str | None
    method: str
    route: str | None
    path: str
    collection: str | None
    params: str | None
    returned: int | None
    status: int
    duration_ms: float | None
    id: str | None = None  # unique per record: replaying the journal never duplicates a row
    request_id: str | None = None  # the X-Request-ID the response carried


AUDIT_COLUMNS = tuple(f.name for f in fields(AuditRecord))
SKIP_KNOWN = "ON CONFLICT (id) DO NOTHING"  # a record replayed from the journal is stored once
AUDIT_CHUNK = 64  # rows an embedded-store INSERT takes: the statement of a full chunk is compiled once
ADDED_AUDIT_COLUMNS = ("id", "request_id")  # absent from audit tables created before them


def _audit_row(r: AuditRecord) -> tuple:
    """The record's values in ``AUDIT_COLUMNS`` order, its time as ``_iso`` text (read field by field:
    ``astuple`` deep-copies)."""
    return (_iso(r.ts), r.edition, r.key_id, r.client_ip, r.method, r.route, r.path, r.collection, r.params,
            r.returned, r.status, r.duration_ms, r.id, r.request_id)


def _audit_batch(records: Iterable[AuditRecord]) -> str | None:
    """A batch of records as one JSON array (times as ``_iso`` text), which PostgreSQL reads in the INSERT.

    Each store writes a batch in one statement (SQLite: rows of bound values, as many as a statement
    takes), so the writer's thread gives up the interpreter lock once a statement rather than once a
    row, as ``executemany`` does: each hand-over stalls the requests of its process."""
    batch = list(records)
    return orjson.dumps(batch, default=_iso, option=orjson.OPT_PASSTHROUGH_DATETIME).decode() if batch else None


class AdminStore(Protocol):
    """What the policy needs from the store; two implementations below."""

    def setup(self) -> None: ...
    def add_key(self, record: KeyRecord) -> None: ...
    def get_key(self, key_id: str) -> KeyRecord | None: ...
    def list_keys(self) -> list[KeyRecord]: ...
    def revoke_key(self, key_id: str, when: dt.datetime) -> bool: ...
    def append_audit(self, records: Iterable[AuditRecord]) -> None: ...
    def count_admitted(self, key_id: str, since: dt.datetime) -> int: ...
    def query_audit(self, since: dt.datetime | None, key_id: str | None, collection: str | None,
                    limit: int) -> list[AuditRecord]: ...
    def close(self) -> None: ...


def _iso(value: dt.datetime | None) -> str | None:
    """UTC, fixed width, so that text comparison is time comparison."""
    if value is None:
        return None
    if value.tzinfo is not dt.UTC:  # audit times are UTC already: no conversion on the writer's path
        value = value.astimezone(dt.UTC)
    return value.isoformat(timespec="microseconds")[:26] + "Z"


def _time(value: Any) -> dt.datetime | None:
    return None if value is None else _instant(value)


def _instant(value: Any) -> dt.datetime:
    """A stored timestamp (a datetime, or ISO 8601 text in the embedded store)."""
    if isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _key_values(r: KeyRecord, text_times: bool) -> tuple:
    t = _iso if text_times else (lambda v: v)
    scopes = None if r.scopes is None else orjson.dumps(sorted(r.scopes)).decode()
    return (r.id, r.name, r.secret_hash, scopes, orjson.dumps(list(r.networks)).decode(),
            t(r.not_before), t(r.not_after), r.daily_quota, r.rate, t(r.created), t(r.revoked))


def _key_record(row: tuple) -> KeyRecord:
    d = dict(zip(KEY_COLUMNS, row, strict=True))
    scopes = d["scopes"]
    if isinstance(scopes, str):
        scopes = orjson.loads(scopes)
    networks = d["networks"]
    if isinstance(networks, str):
        networks = orjson.loads(networks)
    return KeyRecord(
        id=d["id"], name=d["name"], secret_hash=d["secret_hash"],
        scopes=None if scopes is None else frozenset(scopes), networks=tuple(networks or ()),
        not_before=_time(d["not_before"]), not_after=_time(d["not_after"]),
        daily_quota=d["daily_quota"], rate=d["rate"], created=_instant(d["created"]), revoked=_time(d["revoked"]),
    )


def _audit_record(row: tuple) -> AuditRecord:
    d = dict(zip(AUDIT_COLUMNS, row, strict=True))
    d["ts"] = _time(d["ts"])
    return AuditRecord(**d)


def _audit_filter(since, key_id, collection, mark: str, text_times: bool) -> tuple[str, list]:
    where, params = [], []
    for cond, value in (("ts >= {}", since), ("key_id = {}", key_id), ("collection = {}", collection)):
        if value is not None:
            where.append(cond.format(mark))
            params.append(_iso(value) if text_times and isinstance(value, dt.datetime) else value)
    return (" WHERE " + " AND ".join(where)) if where else "", params


@functools.lru_cache(maxsize=8)
def _sqlite_insert(rows: int) -> str:
    """The embedded store's INSERT of ``rows`` audit rows."""
    marks = "(" + ", ".join("?" * len(AUDIT_COLUMNS)) + ")"
    return f"INSERT INTO onemap_audit ({', '.join(AUDIT_COLUMNS)}) VALUES {', '.join([marks] * rows)} {SKIP_KNOWN}"


class SqliteAdmin:
    """Admin tables in a SQLite file (WAL mode: the audit writer never blocks readers)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._audit_conn: sqlite3.Connection | None = None  # the audit writer's, kept between batches
        self._audit_lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        """A connection; any thread may use it (the audit writer's is kept and used by whichever flushes)."""
        conn = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    def _run(self, sql: str, params: Any = (), fetch: bool = False) -> list[tuple]:
        conn = self._connect()
        try:
            cur = conn.execute(sql, params)
            return cur.fetchall() if fetch else []
        finally:
            conn.close()

    def setup(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._connect()
        try:
            conn.executescript((SQL_DIR / "admin_sqlite.sql").read_text(encoding="utf-8"))
            present = {row[1] for row in conn.execute("PRAGMA table_info(onemap_audit)")}
            for column in ADDED_AUDIT_COLUMNS:
                if column not in present:  # a file made before the column: names from the constant above
                    conn.execute(f"ALTER TABLE onemap_audit ADD COLUMN {column} TEXT")
            conn.execute("CREATE UNIQUE INDEX IF NOT EXISTS onemap_audit_id ON onemap_audit (id)")
        finally:
            conn.close()

    def add_key(self, record: KeyRecord) -> None:
        marks = ", ".join("?" * len(KEY_COLUMNS))
        self._run(f"INSERT INTO onemap_api_keys ({', '.join(KEY_COLUMNS)}) VALUES ({marks})", _key_values(record, True))

    def get_key(self, key_id: str) -> KeyRecord | None:
        rows = self._run(f"SELECT {', '.join(KEY_COLUMNS)} FROM onemap_api_keys WHERE id = ?", (key_id,), fetch=True)
        return _key_record(rows[0]) if rows else None

    def list_keys(self) -> list[KeyRecord]:
        rows = self._run(f"SELECT {', '.join(KEY_COLUMNS)} FROM onemap_api_keys ORDER BY created", fetch=True)
        return [_key_record(r) for r in rows]

    def revoke_key(self, key_id: str, when: dt.datetime) -> bool:
        conn = self._connect()
        try:
            cur = conn.execute("UPDATE onemap_api_keys SET revoked = ? WHERE id = ? AND revoked IS NULL",
                               (_iso(when), key_id))
            return cur.rowcount > 0
        finally:
            conn.close()

    def append_audit(self, records: Iterable[AuditRecord]) -> None:
        """One transaction a batch, on a connection kept for it (dropped after a failure), in statements of
        ``AUDIT_CHUNK`` rows (fewer if the connection binds fewer values), which it compiles once."""
        rows = [_audit_row(r) for r in records]
        if not rows:
            return
        with self._audit_lock:
            conn = self._audit_conn = self._audit_conn or self._connect()
            per = min(AUDIT_CHUNK, conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(AUDIT_COLUMNS))
            try:
                with conn:
                    conn.execute("BEGIN")
                    for start in range(0, len(rows), per):
                        part = rows[start:start + per]
                        conn.execute(_sqlite_insert(len(part)), list(itertools.chain.from_iterable(part)))
            except BaseException:
                self._audit_conn = None
                conn.close()
                raise

    def count_admitted(self, key_id: str, since: dt.datetime) -> int:
        rows = self._run(
            "SELECT count(*) FROM onemap_audit WHERE key_id = ? AND ts >= ? AND status NOT IN (401, 403, 429)",
            (key_id, _iso(since)), fetch=True,
        )
        return int(rows[0][0])

    def query_audit(self, since, key_id, collection, limit) -> list[AuditRecord]:
        where, params = _audit_filter(since, key_id, collection, "?", True)
        sql = f"SELECT {', '.join(AUDIT_COLUMNS)} FROM onemap_audit{where} ORDER BY seq DESC LIMIT ?"
        return [_audit_record(r) for r in self._run(sql, [*params, limit], fetch=True)]

    def close(self) -> None:
        """Close the audit writer's connection (the others are per call)."""
        with self._audit_lock:
            conn, self._audit_conn = self._audit_conn, None
        if conn is not None:
            conn.close()


class PostgresAdmin:
    """Admin tables in the PostGIS database, on one connection of their own (reconnected when lost)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._db = OwnConnection(url, "onemap-admin")

    def _run(self, sql: str, params: Any = None, fetch: bool = False) -> list[tuple]:
        return self._db.run(sql, params, fetch=fetch)

    def setup(self) -> None:
        ddl = (SQL_DIR / "admin_pg.sql").read_text(encoding="utf-8")
        with psycopg.connect(self.url, connect_timeout=10) as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('onemap_admin_setup'))")
            conn.execute(ddl)  # trusted file shipped with the package

    def add_key(self, record: KeyRecord) -> None:
        marks = ", ".join(["%s"] * len(KEY_COLUMNS))
        self._run(f"INSERT INTO onemap_api_keys ({', '.join(KEY_COLUMNS)}) VALUES ({marks})",
                  _key_values(record, False))

    def get_key(self, key_id: str) -> KeyRecord | None:
        rows = self._run(f"SELECT {', '.join(KEY_COLUMNS)} FROM onemap_api_keys WHERE id = %s", (key_id,), fetch=True)
        return _key_record(rows[0]) if rows else None

    def list_keys(self) -> list[KeyRecord]:
        rows = self._run(f"SELECT {', '.join(KEY_COLUMNS)} FROM onemap_api_keys ORDER BY created", fetch=True)
        return [_key_record(r) for r in rows]

    def revoke_key(self, key_id: str, when: dt.datetime) -> bool:
        rows = self._run("UPDATE onemap_api_keys SET revoked = %s WHERE id = %s AND revoked IS NULL RETURNING id",
                         (when, key_id), fetch=True)
        return bool(rows)

    def append_audit(self, records: Iterable[AuditRecord]) -> None:
        batch = _audit_batch(records)
        if batch is not None:
            columns = ", ".join(AUDIT_COLUMNS)
            self._run(f"INSERT INTO onemap_audit ({columns}) SELECT {columns} "  # typed by the table's own row
                      f"FROM json_populate_recordset(NULL::onemap_audit, %s::json) {SKIP_KNOWN}", (batch,))

    def count_admitted(self, key_id: str, since: dt.datetime) -> int:
        rows = self._run(
            "SELECT count(*) FROM onemap_audit WHERE key_id = %s AND ts >= %s AND status NOT IN (401, 403, 429)",
            (key_id, since), fetch=True,
        )
        return int(rows[0][0])

    def query_audit(self, since, key_id, collection, limit) -> list[AuditRecord]:
        where, params = _audit_filter(since, key_id, collection, "%s", False)
        sql = f"SELECT {', '.join(AUDIT_COLUMNS)} FROM onemap_audit{where} ORDER BY seq DESC LIMIT %s"
        return [_audit_record(r) for r in self._run(sql, [*params, limit], fetch=True)]

    def close(self) -> None:
        self._db.close()
