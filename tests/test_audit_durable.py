"""No audit row of an answered request is lost: ``kill -9`` of the workers right after a burst, and
SIGTERM while PostgreSQL is down (real ``onemap serve`` processes, a real PostgreSQL cluster).

The flush interval is set to 10 minutes, so that at the moment of the fault nothing has reached the database
through the normal path: every row counted afterwards came through the journal."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest

from server.policy import journal as journal_module
from server.policy.admin import AuditRecord, SqliteAdmin
from server.policy.audit import AuditWriter
from server.policy.journal import Journal
from server.policy.keys import parse_key
from server.settings import Settings
from tests.support.api_keys import issue_key
from tests.support.live import serve_process, wait_answering
from tests.support.pg import PgCluster, sample_cluster

BURST = 120


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[PgCluster]:
    with sample_cluster(tmp_path_factory.mktemp("pg-audit")) as pg:
        yield pg


@pytest.fixture
def settings(cluster, tmp_path) -> Settings:
    for key in [k for k in os.environ if k.startswith("ONEMAP_")]:
        os.environ.pop(key)
    return Settings(database_url=cluster.url, data_dir=tmp_path)


@contextmanager
def serve(settings: Settings, log: Path) -> Iterator[tuple[subprocess.Popen, str]]:
    """``onemap serve --workers 2`` with a 10 min audit flush interval; yields (process, root URL)."""
    env = {"ONEMAP_DATABASE_URL": str(settings.database_url), "ONEMAP_DATA_DIR": str(settings.data_dir),
           "ONEMAP_AUDIT_FLUSH_S": "600"}
    proc, url = serve_process(env, log, "--no-access-log", "--log-level", "warning")
    try:
        wait_answering(url + "/conformance", proc, log)
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def burst(url: str, key: str) -> int:
    """``BURST`` answered requests (items and tiles) from 8 clients; how many answered 200 or 204."""
    paths = ["/collections/parcels/items?limit=2", "/collections/land_survey/tiles/WebMercatorQuad/10/858/428"]

    def one(i: int) -> int:
        return httpx.get(url + paths[i % 2], headers={"X-API-Key": key}, timeout=30).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(one, range(BURST)))
    assert set(statuses) <= {200, 204}, statuses
    return len(statuses)


def rows(settings: Settings, key: str) -> tuple[int, int]:
    """(audit rows of the key, distinct record ids among them)."""
    with psycopg.connect(str(settings.database_url)) as conn:
        found = conn.execute("SELECT count(*), count(DISTINCT id) FROM onemap_audit WHERE key_id = %s",
                             (parse_key(key)[0],)).fetchone()
    assert found is not None
    return int(found[0]), int(found[1])


def wait_rows(settings: Settings, key: str, expected: int, timeout: float = 45) -> tuple[int, int]:
    deadline = time.monotonic() + timeout
    while (found := rows(settings, key))[0] < expected and time.monotonic() < deadline:
        time.sleep(0.3)
    return found


def workers(proc: subprocess.Popen) -> list[int]:
    """The worker processes of a ``onemap serve --workers N`` supervisor."""
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    return [int(c) for c in children]


def test_kill_9_of_the_workers_after_a_burst_loses_no_row(settings, tmp_path):
    key = issue_key(settings, "kill -9")
    with serve(settings, tmp_path / "serve.log") as (proc, url):
        answered = burst(url, key)
        killed = workers(proc)
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        assert rows(settings, key)[0] < answered  # nothing was flushed the normal way yet
        # the supervisor starts new workers; they replay the journals the killed ones left
        assert wait_rows(settings, key, answered) == (answered, answered)
        assert not set(killed) & set(workers(proc))
    time.sleep(1)
    assert rows(settings, key) == (answered, answered)  # replayed once, never duplicated
    assert not list((tmp_path / "audit-journal").rglob("*.jsonl"))  # clean stop: journals removed


def test_sigterm_while_postgresql_is_down_loses_no_row(settings, cluster, tmp_path):
    key = issue_key(settings, "sigterm")
    with serve(settings, tmp_path / "serve.log") as (proc, url):
        answered = burst(url, key)
        cluster.halt()
        try:
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
            assert time.monotonic() - started < 20  # no hang on the unreachable store
        finally:
            cluster.resume()
    assert rows(settings, key)[0] == 0
    assert list((tmp_path / "audit-journal").rglob("*.jsonl"))  # the queued rows were kept on disk
    log = (tmp_path / "serve.log").read_text()
    assert "kept in" in log and "records lost" not in log
    with serve(settings, tmp_path / "serve.log"):
        assert wait_rows(settings, key, answered) == (answered, answered)


def _record(writer: AuditWriter, n: int) -> AuditRecord:
    return AuditRecord(ts=dt.datetime.now(dt.UTC), edition="classified", key_id="k", client_ip="10.0.0.1",
                       method="GET", route=None, path=f"/p/{n}", collection=None, params=None, returned=None,
                       status=200, duration_ms=1.0, id=writer.new_id(), request_id=f"req-{n}")


def test_a_journal_is_replayed_once_and_a_cut_line_is_skipped(tmp_path):
    admin = SqliteAdmin(tmp_path / "admin.sqlite")
    admin.setup()
    ended = AuditWriter(admin, journal_dir=tmp_path / "journal")
    ended.journal = Journal(tmp_path / "journal")
    for n in range(5):
        ended.submit(_record(ended, n))
    ended.journal.append(b'{"ts": "2026-')  # the process died in the middle of a line
    left = ended.journal.path
    content = left.read_bytes()
    ended.journal.close(written=False)  # as the end of the process does: the lock is released, the file kept
    live = AuditWriter(admin, journal_dir=tmp_path / "journal")
    live.journal = Journal(tmp_path / "journal")
    live.submit(_record(live, 99))  # the live process's own journal is never replayed
    assert live.replay() == 5 and not left.exists()
    left.write_bytes(content)  # the same file again (as if removed only after another process replayed it)
    assert live.replay() == 5
    stored = admin.query_audit(None, "k", None, 100)
    assert sorted(r.path for r in stored) == [f"/p/{n}" for n in range(5)]
    assert {r.request_id for r in stored} == {f"req-{n}" for n in range(5)}
    assert live.journal.path.exists()


def test_a_full_journal_file_is_kept_and_replayed_with_the_next(tmp_path, monkeypatch):
    """Records past a file's preallocated size go into a new file; both are replayed, then removed
    by a rotation once everything is stored."""
    monkeypatch.setattr(journal_module, "SEGMENT_BYTES", 4096)
    admin = SqliteAdmin(tmp_path / "admin.sqlite")
    admin.setup()
    ended = AuditWriter(admin, journal_dir=tmp_path / "journal")
    ended.journal = Journal(tmp_path / "journal")
    for n in range(60):  # ~300 bytes each: about five files
        ended.submit(_record(ended, n))
    files = sorted((tmp_path / "journal").glob("audit-*.jsonl"))
    assert len(files) >= 4 and all(f.stat().st_size == 4096 for f in files)
    ended.journal.close(written=False)
    live = AuditWriter(admin, journal_dir=tmp_path / "journal")
    live.journal = Journal(tmp_path / "journal")
    assert live.replay() == 60
    assert sorted(r.path for r in admin.query_audit(None, "k", None, 100)) == sorted(f"/p/{n}" for n in range(60))
    for n in range(60):
        live.submit(_record(live, 100 + n))
    assert live.flush() == 60
    live.journal.rotate(lambda: True)  # all stored: the filled files and the current one go
    assert [f.name for f in (tmp_path / "journal").glob("audit-*.jsonl")] == [live.journal.path.name]
