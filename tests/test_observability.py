"""/healthz, /readyz, /metrics (Prometheus text, several workers added up), request ids in the response,
the audit row and JSON log lines."""

from __future__ import annotations

import logging
import signal
import uuid

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from server.app import create_app
from server.observability.logs import JsonFormatter, request_id
from server.policy.keys import parse_key
from server.settings import Settings
from server.stores import open_store
from server.stores.jobs import Job, now_text
from tests.conftest import settings_for
from tests.support.api_keys import issue_key
from tests.support.live import serve_process, wait_answering
from tests.test_processes import SITE

ITEMS = "/collections/parcels/items"


@pytest.fixture(scope="module")
def settings(backend, request):
    return settings_for(backend, request, metrics="token", metrics_token="s3cret",
                        trusted_proxies="10.1.0.0/16")


@pytest.fixture(scope="module")
def key(settings):
    return issue_key(settings, "observability")


def samples(text: str, name: str) -> dict[tuple, float]:
    """The samples of one metric family, by their labels."""
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                found[tuple(sorted(s.labels.items()))] = s.value
    return found


def audited(settings, key: str) -> list:
    with open_store(settings).opened_admin() as store:
        return store.query_audit(None, parse_key(key)[0], None, 100)


def test_health_and_readiness_need_no_key_and_are_not_audited(settings, key):
    with TestClient(create_app(settings)) as c:
        health = c.get("/healthz")
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        ready = c.get("/readyz", headers={"X-API-Key": key})
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready", "checks": {"store": "ok", "replica": "off", "redis": "off"}}
        assert "no-store" in ready.headers["cache-control"]
    c.app.state.policy.audit.flush()
    assert not [r for r in audited(settings, key) if r.path in ("/healthz", "/readyz")]


def test_readiness_fails_while_the_database_is_unreachable(sample_dir, request):
    settings_for("geopackage", request)  # clears the environment
    settings = Settings(data_dir=sample_dir, database_url="postgresql://postgres@127.0.0.1:9/onemap")
    with TestClient(create_app(settings)) as c:
        ready = c.get("/readyz")
        assert ready.status_code == 503
        checks = {"store": "unavailable", "replica": "off", "redis": "off"}
        assert ready.json() == {"status": "not ready", "checks": checks}
        assert c.get("/healthz").status_code == 200  # alive all the same


def test_metrics_need_the_token_and_otherwise_look_like_a_missing_route(settings, key):
    token = {"Authorization": "Bearer s3cret"}
    with TestClient(create_app(settings), headers={"X-API-Key": key}) as c:
        before = c.get("/metrics", headers=token).text  # the counters are the process's: compare with this
        missing = c.get("/no-such-route")
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            refused = c.get("/metrics", headers=headers)
            assert (refused.status_code, refused.json()["description"].replace("/metrics", "/no-such-route")) == \
                (missing.status_code, missing.json()["description"])
        for _ in range(3):
            assert c.get(ITEMS, params={"limit": 2}).status_code == 200
        assert c.head(ITEMS, params={"limit": 2}).status_code == 200
        scraped = c.get("/metrics", headers=token)
    assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
    text = scraped.text

    def grown(name: str) -> dict[tuple, float]:
        old = samples(before, name)
        return {k: v - old.get(k, 0.0) for k, v in samples(text, name).items()}

    route = "/collections/{collectionId}/items"
    counts = grown("onemap_http_requests_total")
    assert counts[(("method", "GET"), ("route", route), ("status", "200"))] == 3
    assert counts[(("method", "HEAD"), ("route", route), ("status", "200"))] == 1
    assert counts[(("method", "GET"), ("route", "unmatched"), ("status", str(missing.status_code)))] >= 1
    assert grown("onemap_http_request_duration_seconds_count")[(("route", route),)] == 4
    levels = {dict(k)["level"]: v for k, v in grown("onemap_cache_lookups_total").items()}
    assert levels["miss"] >= 1 and levels["hit"] >= 2  # the same page three times (and once as HEAD)
    assert "onemap_audit_queue_depth" in text and "onemap_db_pool_connections" in text
    assert key not in text and "s3cret" not in text


def test_request_id_is_returned_and_audited_and_only_a_trusted_proxy_sets_it(settings, key):
    with TestClient(create_app(settings), headers={"X-API-Key": key}, client=("10.1.2.3", 4000)) as proxied:
        given = proxied.get("/collections", headers={"X-Request-ID": "lb-7f3a:01"})
        bad = proxied.get("/collections/parcels", headers={"X-Request-ID": "has space\x01"})
    with TestClient(create_app(settings), headers={"X-API-Key": key}, client=("192.0.2.7", 4000)) as direct:
        forged = direct.get("/conformance", headers={"X-Request-ID": "forged-by-client"})
    assert given.headers["x-request-id"] == "lb-7f3a:01"
    assert forged.headers["x-request-id"] not in ("forged-by-client", "")
    assert bad.headers["x-request-id"] not in ("has space\x01", "")
    by_path = {r.path: r.request_id for r in audited(settings, key)}
    assert by_path["/collections"] == "lb-7f3a:01"
    assert by_path["/conformance"] == forged.headers["x-request-id"]
    assert by_path["/collections/parcels"] == bad.headers["x-request-id"]


def test_json_log_lines_carry_the_request_id():
    record = logging.LogRecord("onemap.cache", logging.WARNING, __file__, 1, "redis down: %s", ("refused",), None)
    token = request_id.set("abc123")
    try:
        line = orjson.loads(JsonFormatter().format(record))
    finally:
        request_id.reset(token)
    assert line["message"] == "redis down: refused" and line["request_id"] == "abc123"
    assert line["level"] == "warning" and line["logger"] == "onemap.cache" and line["ts"].endswith("+00:00")


def test_served_with_two_workers_metrics_add_up_and_logs_are_json(sample_dir, tmp_path, request):
    settings = settings_for("geopackage", request)
    key = issue_key(settings, "two workers")
    log = tmp_path / "serve.log"
    proc, url = serve_process({"ONEMAP_DATA_DIR": str(sample_dir), "ONEMAP_METRICS": "open"}, log,
                              "--log-format", "json")
    try:
        wait_answering(url + "/readyz", proc, log)
        ids = set()
        for _ in range(20):  # a new connection each: both workers take some
            answer = httpx.get(url + "/collections", headers={"X-API-Key": key}, timeout=30)
            assert answer.status_code == 200
            ids.add(answer.headers["x-request-id"])
        assert len(ids) == 20
        jobs = open_store(settings).jobs()
        jobs.setup()
        before = jobs.open_counts(now_text()[:4])  # open jobs of this year, stale ones too: an upper bound
        for _ in range(2):  # jobs another replica accepted: one queue, not one per worker
            jobs.add(Job(id=uuid.uuid4().hex, owner="elsewhere", edition="public", process="site-compliance",
                         status="accepted", created=now_text(), updated=now_text()))
        ran = httpx.post(url + "/processes/site-compliance/execution", headers={"X-API-Key": key}, timeout=60,
                         json={"inputs": {"geometry": SITE}})
        assert ran.status_code == 200
        for _ in range(4):  # whichever worker answers, the sum is over both
            text = httpx.get(url + "/metrics", timeout=10).text
            counts = samples(text, "onemap_http_requests_total")
            assert counts[(("method", "GET"), ("route", "/collections"), ("status", "200"))] == 20
            assert samples(text, "onemap_process_executions_total") == {
                (("mode", "sync"), ("outcome", "successful"), ("process", "site-compliance")): 1}
            assert samples(text, "onemap_jobs")[(("status", "accepted"),)] <= before["accepted"] + 2
            assert samples(text, "onemap_jobs")[(("status", "accepted"),)] >= 2
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    lines = [orjson.loads(line) for line in log.read_bytes().splitlines() if line.strip()]
    access = [line for line in lines if line["logger"] == "uvicorn.access" and '/collections HTTP' in line["message"]]
    assert len(access) == 20 and {line["request_id"] for line in access} == ids
    assert key not in log.read_text()
