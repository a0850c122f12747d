"""Attacks on who the client is and on what is written about it, against a real ``onemap serve`` on each backend.

The server runs as ``onemap serve`` (uvicorn, with its access log) and trusts one proxy, 127.0.0.2;
requests come from 127.0.0.1 (a client connecting directly) or from 127.0.0.2 (the proxy). A key
bound to 10.8.0.0/16 must be refused from outside that range whatever forwarded header is added, work
when the trusted proxy forwards an address inside it, and the audit must record the address that
was believed. Keys never reach the access log; a ``%0A`` in a path writes no second log line; a
WebSocket upgrade is refused before the app and audited.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from server.policy.admin import AuditRecord
from server.policy.keys import KeyRecord, new_key, parse_key
from server.stores import open_store
from tests.conftest import settings_for

ROOT = Path(__file__).resolve().parent.parent
PROXY = "127.0.0.2"
INSIDE, OUTSIDE = "10.8.0.5", "203.0.113.9"
ITEMS = "/collections/land_survey/items"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _key(settings, networks: tuple[str, ...] = ()) -> str:
    key_id, key, hashed = new_key()
    with open_store(settings).opened_admin() as store:
        store.add_key(KeyRecord(id=key_id, name="forwarding test", secret_hash=hashed, networks=networks))
    return key


@pytest.fixture(scope="module")
def served(backend, request, tmp_path_factory):
    """``onemap serve`` trusting 127.0.0.2 on the module's backend: (url, settings, bound key, free key, log)."""
    settings = settings_for(backend, request)
    bound, free = _key(settings, ("10.8.0.0/16",)), _key(settings)
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONEMAP_")}
    env.update(ONEMAP_DATA_DIR=str(settings.data_dir), PYTHONPATH=str(ROOT))
    if settings.database_url:
        env["ONEMAP_DATABASE_URL"] = settings.database_url
    port = _free_port()
    cmd = [sys.executable, "-m", "server.cli", "serve", "--port", str(port), "--trusted-proxies", PROXY]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/conformance", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "onemap serve did not answer in 30 s"
                time.sleep(0.2)
        yield url, settings, bound, free, log
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _client(url: str, source: str = "127.0.0.1") -> httpx.Client:
    return httpx.Client(base_url=url, timeout=30, transport=httpx.HTTPTransport(local_address=source))


def _audited(settings, path: str, key_id: str | None = None, count: int = 1) -> list[AuditRecord]:
    """The audit rows of ``path`` (written by the server within its batch interval)."""
    deadline = time.monotonic() + 15
    while True:
        with open_store(settings).opened_admin() as store:
            found = [r for r in store.query_audit(None, key_id, None, 5000) if r.path == path]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


FORGED = [
    {"X-Forwarded-For": INSIDE},
    {"X-Forwarded-For": f"{INSIDE}, {INSIDE}"},
    {"X-Real-IP": INSIDE},
    {"Forwarded": f'for="{INSIDE}:4711"'},
    {"X-Forwarded-For": INSIDE, "X-Real-IP": INSIDE, "Forwarded": f"for={INSIDE}"},
]


@pytest.mark.parametrize("n", range(len(FORGED)))
def test_forged_forwarded_headers_do_not_move_a_direct_client(served, n):
    url, settings, bound, _, _ = served
    forged, path = FORGED[n], f"{ITEMS}/direct-{n}"
    with _client(url) as c:
        r = c.get(path, headers={"X-API-Key": bound, **forged})
    assert r.status_code == 403 and "127.0.0.1" in r.json()["description"] and INSIDE not in r.text
    rows = _audited(settings, path)
    assert [(r.client_ip, r.status, r.key_id) for r in rows] == [("127.0.0.1", 403, parse_key(bound)[0])]


def test_behind_the_trusted_proxy_the_forwarded_client_is_believed_and_audited(served):
    url, settings, bound, _, _ = served
    with _client(url, PROXY) as proxy:
        ok = proxy.get(ITEMS, params={"limit": 2, "bbox": "121.4,29.75,121.7,29.95"},
                       headers={"X-API-Key": bound, "X-Forwarded-For": INSIDE})
        assert ok.status_code == 200 and len(ok.json()["features"]) == 2
        # a client wrote an inside address itself; the proxy appended the address it really saw
        prepended = proxy.get(f"{ITEMS}/prepended", headers={"X-API-Key": bound,
                                                             "X-Forwarded-For": f"{INSIDE}, {OUTSIDE}"})
        # the proxies set X-Forwarded-For; a Forwarded header passed through from a client is not believed
        other = proxy.get(f"{ITEMS}/other-header", headers={"X-API-Key": bound, "Forwarded": f"for={INSIDE}"})
        garbage = proxy.get(f"{ITEMS}/garbage", headers={"X-API-Key": bound, "X-Forwarded-For": f"{INSIDE}, _hidden"})
    assert prepended.status_code == other.status_code == garbage.status_code == 403
    assert OUTSIDE in prepended.json()["description"] and PROXY in other.json()["description"]
    key_id = parse_key(bound)[0]
    assert [r.client_ip for r in _audited(settings, ITEMS, key_id) if r.status == 200] == [INSIDE]
    assert [r.client_ip for r in _audited(settings, f"{ITEMS}/prepended")] == [OUTSIDE]
    assert [r.client_ip for r in _audited(settings, f"{ITEMS}/other-header")] == [PROXY]
    assert [r.client_ip for r in _audited(settings, f"{ITEMS}/garbage")] == [None]


def test_keys_and_control_characters_stay_out_of_the_access_log(served):
    url, settings, _, free, log = served
    secret = parse_key(free)[1]
    with _client(url) as c:
        assert c.get("/collections", params={"api_key": free, "f": "json"}).status_code == 200
        assert c.get("/collections", params={"APIKEY": free, "access_token": free}).status_code == 401
        injected = c.get("/collections/land_survey%0A127.0.0.1:1%20-%20%22GET%20/forged%20HTTP/1.1%22%20200/items",
                         headers={"X-API-Key": free})
    assert injected.status_code == 404
    deadline = time.monotonic() + 10
    while "/forged" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    text = log.read_text()
    assert "GET /collections?f=json HTTP/1.1" in text and "/forged" in text
    assert secret not in text and free not in text and "api_key" not in text.lower()
    assert not any(line.lstrip().startswith("127.0.0.1:1 ") for line in text.splitlines())
    escaped = _audited(settings, '/collections/land_survey\\x0a127.0.0.1:1 - "GET /forged HTTP/1.1" 200/items')
    assert len(escaped) == 1 and escaped[0].status == 404  # one row, its line break written as an escape


def test_a_websocket_upgrade_is_refused_before_the_app_and_audited(served):
    url, settings, _, free, _ = served
    ws = url.replace("http://", "ws://") + "/collections/land_survey/ws-probe"
    with pytest.raises(InvalidStatus) as refused:
        connect(ws, additional_headers={"X-API-Key": free}, open_timeout=10).close()
    assert refused.value.response.status_code == 403
    rows = _audited(settings, "/collections/land_survey/ws-probe")
    assert [(r.method, r.status, r.client_ip, r.collection) for r in rows] == [("WEBSOCKET", 403, "127.0.0.1",
                                                                                "land_survey")]
