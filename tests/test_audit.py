"""The audit log: every access recorded (batched, off the request path), queryable, append-only."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3

import psycopg
import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.cli import main as cli_main
from server.policy.admin import AuditRecord
from server.policy.keys import parse_key
from server.stores import open_store
from tests.conftest import settings_for
from tests.support.api_keys import issue_key


@pytest.fixture(scope="module")
def settings(backend, request):
    return settings_for(backend, request)


@pytest.fixture(scope="module")
def recorded(settings):
    """Make a few requests with a fresh key, stop the app (which writes the queue); (key id, key)."""
    key = issue_key(settings, "audit test")
    key_id = parse_key(key)[0]
    app = create_app(settings)
    with TestClient(app, client=("10.9.8.7", 5000), headers={"X-API-Key": key}) as c:
        assert c.get("/collections/land_survey/items", params={"limit": 7, "bbox": "121.4,29.75,121.7,29.95",
                                                               "api_key": key}).status_code == 200
        assert c.get("/collections/land_survey/tiles/WebMercatorQuad/8/107/213").status_code in (200, 204)
        assert c.get("/collections/no_such/items").status_code == 404
        assert c.get("/collections", headers={"X-API-Key": key[:-3] + "zzz"}).status_code == 401
    return key_id, key


def rows(settings, key_id: str) -> list[AuditRecord]:
    with open_store(settings).opened_admin() as store:
        return store.query_audit(None, key_id, None, 100)


def test_every_access_is_recorded(settings, recorded):
    key_id, key = recorded
    found = {r.path: r for r in rows(settings, key_id)}
    items = found["/collections/land_survey/items"]
    assert items.edition == "classified" and items.client_ip == "10.9.8.7" and items.status == 200
    assert items.collection == "land_survey" and items.returned == 7 and items.method == "GET"
    assert items.route == "/collections/{collectionId}/items"
    assert "bbox=121.4%2C29.75%2C121.7%2C29.95" in items.params and "limit=7" in items.params
    assert key not in (items.params or "") and "api_key" not in (items.params or "")
    assert items.ts > dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5) and items.duration_ms > 0
    tile = found["/collections/land_survey/tiles/WebMercatorQuad/8/107/213"]
    assert tile.returned == (1 if tile.status == 200 else 0)
    assert found["/collections/no_such/items"].status == 404
    assert "/collections" not in found  # a wrong secret for a real key id is never put on that key


def test_a_key_that_failed_to_authenticate_is_blamed_on_no_one(settings, recorded):
    key_id, key = recorded
    with open_store(settings).opened_admin() as store:
        refused = [r for r in store.query_audit(None, None, None, 1000)
                   if r.path == "/collections" and r.status == 401 and r.client_ip == "10.9.8.7"]  # this module's
    assert refused and all(r.key_id is None for r in refused)


def test_audit_command_filters(capsys, settings, recorded):
    key_id, _ = recorded
    args = (["--database-url", settings.database_url] if settings.database_url
            else ["--data-dir", str(settings.data_dir)])
    assert cli_main(["audit", *args, "--key", key_id, "--collection", "land_survey", "--since", "1h", "--json"]) == 0
    docs = json.loads(capsys.readouterr().out)
    assert {d["path"] for d in docs} == {"/collections/land_survey/items",
                                         "/collections/land_survey/tiles/WebMercatorQuad/8/107/213"}
    assert all(d["key_id"] == key_id and d["edition"] == "classified" for d in docs)
    assert cli_main(["audit", *args, "--key", key_id, "--limit", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and all(f"key={key_id}" in line for line in lines)
    assert cli_main(["audit", *args, "--since", "yesterday-ish"]) == 2
    assert "--since" in capsys.readouterr().err


def test_audit_log_is_append_only(settings, recorded):
    key_id, _ = recorded
    if settings.database_url:
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            for stmt in ("UPDATE onemap_audit SET status = 200 WHERE key_id = %s",
                         "DELETE FROM onemap_audit WHERE key_id = %s"):
                with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                    conn.execute(stmt, [key_id])
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute("TRUNCATE onemap_audit")
    else:
        with sqlite3.connect(settings.data_dir / "onemap_admin.sqlite") as conn:
            for stmt in ("UPDATE onemap_audit SET status = 200 WHERE key_id = ?",
                         "DELETE FROM onemap_audit WHERE key_id = ?"):
                with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                    conn.execute(stmt, [key_id])
    assert len(rows(settings, key_id)) == 3  # the refused request with a wrong secret is on no key


def test_writes_are_batched_off_the_request_path(settings):
    """Requests only queue records; the writer thread appends them in batches."""
    key = issue_key(settings, "batch test")
    app = create_app(settings)
    writer = app.state.policy.audit
    writer.interval = 60.0  # the background thread writes nothing during the burst
    with TestClient(app, headers={"X-API-Key": key}) as c:
        for _ in range(5):
            c.get("/conformance")
        queued = writer.pending
        assert queued >= 5
        assert writer.flush() >= 5 and writer.pending == 0
    assert len(rows(settings, parse_key(key)[0])) == 5


def test_a_stored_batch_keeps_every_field_and_each_record_once(settings):
    """A batch goes into the store as one statement: every field comes back as written (times to the
    microsecond, a whole second too, text with quotes, backslashes, non-ASCII and JSON-like content,
    NULLs), and a record stored again (a journal replayed) stays one row."""
    key_id = "batchcheck"
    when = dt.datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=dt.UTC)
    records = [
        AuditRecord(ts=when, edition="government", key_id=key_id, client_ip="2001:db8::7", method="GET",
                    route="/collections/{collectionId}/items", path="/collections/parcels/items", collection="parcels",
                    params='filter=name%20%3D%20%27x%27&f="json"\\n 地块', returned=100, status=200,
                    duration_ms=12.345, id="batch-1", request_id="req-1"),
        AuditRecord(ts=when.replace(microsecond=0), edition="government", key_id=key_id, client_ip=None,
                    method="POST", route=None, path="/processes/site-compliance/execution", collection=None,
                    params=None, returned=None, status=413, duration_ms=None, id="batch-2", request_id=None),
    ]
    with open_store(settings).opened_admin() as store:
        store.append_audit(records)
        store.append_audit(records[:1])  # replayed: ignored
        store.append_audit([])
        stored = sorted(store.query_audit(None, key_id, None, 10), key=lambda r: r.id or "")
    assert stored == records


def test_a_batch_larger_than_one_sqlite_statement_takes_is_written_whole(tmp_path, monkeypatch):
    """SQLite binds at most so many values a statement: a bigger batch goes in several, all of it stored."""
    from server.policy.admin import AUDIT_COLUMNS, SqliteAdmin

    store = SqliteAdmin(tmp_path / "admin.sqlite")
    store.setup()
    connect = store._connect

    def few_values():  # three rows a statement
        conn = connect()
        conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 3 * len(AUDIT_COLUMNS) + 2)
        return conn

    monkeypatch.setattr(store, "_connect", few_values)
    when = dt.datetime(2026, 5, 6, 7, 8, 9, tzinfo=dt.UTC)
    records = [AuditRecord(ts=when + dt.timedelta(seconds=i), edition="internet", key_id="chunks", client_ip=None,
                           method="GET", route=None, path=f"/p/{i}", collection=None, params=None, returned=None,
                           status=200, duration_ms=1.0, id=f"chunk-{i}") for i in range(10)]
    store.append_audit(records)
    assert sorted(store.query_audit(None, "chunks", None, 100), key=lambda r: r.ts) == records
