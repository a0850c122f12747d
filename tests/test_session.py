"""Browser sessions: a key exchanged once for the ``onemap_session`` cookie, then no key in any URL.

On both backends: the exchange and the cookie's flags, data with the cookie only, tampered, expired
and orphaned (revoked, re-issued) sessions answer 401, the key's address ranges still apply, the
CSRF rule for POST, pages served to a session carry no key, and the cookie never reaches the audit
or the access log (a real uvicorn).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from html.parser import HTMLParser

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.credentials import SESSION_COOKIE
from server.policy.keys import KeyRecord, new_key, parse_key
from server.policy.sessions import SessionSigner
from server.settings import Settings
from server.stores import open_store
from tests.conftest import settings_for
from tests.support.live import live_server
from tests.support.mislabelled import mislabelled_gpkg_dir

CLIENT = ("10.9.8.7", 5000)


@pytest.fixture(scope="module")
def settings(backend, request):
    return settings_for(backend, request, edition="classified", session_secret="test-session-secret")


def _key(settings, **fields) -> tuple[str, str]:
    """A fresh key stored for ``settings``: (key id, key)."""
    key_id, key, hashed = new_key()
    with open_store(settings).opened_admin() as store:
        store.add_key(KeyRecord(id=key_id, name="session tests", secret_hash=hashed, **fields))
    return key_id, key


@pytest.fixture(scope="module")
def client(settings):
    with TestClient(create_app(settings), client=CLIENT) as c:
        yield c


@pytest.fixture(scope="module")
def app(client):
    return client.app


def _cookie(response: httpx.Response) -> tuple[str, str]:
    """(token, whole Set-Cookie header) of a response that opens a session."""
    header = response.headers["set-cookie"]
    m = re.match(rf"{SESSION_COOKIE}=([^;]*);", header)
    assert m, header
    return m.group(1), header


def _session(client: TestClient, key: str) -> str:
    r = client.post("/session", json={"api_key": key})
    assert r.status_code == 200, r.text
    return _cookie(r)[0]


def _get(client: TestClient, path: str, token: str, **kw) -> httpx.Response:
    client.cookies.clear()
    return client.get(path, headers={"Cookie": f"{SESSION_COOKIE}={token}", **kw.pop("headers", {})}, **kw)


def test_exchange_sets_a_safe_cookie_and_the_cookie_alone_gets_data(client, settings):
    _, key = _key(settings)
    for r in (client.post("/session", json={"api_key": key}),
              client.post("/session", data={"api_key": key}),
              client.post("/session", headers={"X-API-Key": key})):
        assert r.status_code == 200, r.text
        token, header = _cookie(r)
        flags = [f.strip().lower() for f in header.split(";")[1:]]
        assert {"httponly", "samesite=lax", "path=/"} <= set(flags) and "secure" not in flags
        max_age = int(next(f for f in flags if f.startswith("max-age=")).split("=")[1])
        assert settings.session_ttl_s - 5 <= max_age <= settings.session_ttl_s
        assert key not in header and parse_key(key)[1] not in header
    client.cookies.clear()
    assert client.get("/collections/parcels/items?limit=3").status_code == 401
    items = _get(client, "/collections/parcels/items?limit=3", token)
    assert items.status_code == 200 and len(items.json()["features"]) == 3
    assert "public" not in items.headers.get("cache-control", "")


def test_bad_sessions_are_refused_like_a_bad_key(client, settings, app):
    key_id, key = _key(settings)
    token = _session(client, key)
    kid, expires, binding, sig = token.split(".")
    forged_sig = sig[:-2] + ("AA" if sig[-2:] != "AA" else "BB")
    later = str(int(expires) + 3600)
    for bad in (f"{kid}.{expires}.{binding}.{forged_sig}", f"{kid}.{later}.{binding}.{sig}", "garbage", "",
                "a" * 5000, token + "x"):
        r = _get(client, "/collections", bad)
        assert r.status_code == 401 and r.json()["code"] == "Unauthorized", bad
        assert "Traceback" not in r.text and SESSION_COOKIE not in r.text
    signer = SessionSigner(settings)  # the same secret: a genuine token, but it has expired
    record = app.state.policy.admin.get_key(key_id)
    old, _ = signer.issue(record, dt.datetime.now(dt.UTC) - dt.timedelta(seconds=settings.session_ttl_s + 1))
    assert _get(client, "/collections", old).status_code == 401
    assert _get(client, "/collections", token).status_code == 200


def test_a_stale_cookie_counts_as_no_credential_where_none_is_needed(client, sample_dir, tmp_path):
    assert _get(client, "/", "garbage").status_code == 200  # the landing page needs no key
    assert _get(client, "/collections", "garbage").status_code == 401
    internet = Settings(data_dir=mislabelled_gpkg_dir(tmp_path / "internet", sample_dir, rasters=False),
                        edition="internet", session_secret="test-session-secret")
    with TestClient(create_app(internet), client=CLIENT) as anon:
        expected = anon.get("/collections/land_survey/items?limit=2").json()["features"]
        stale = _get(anon, "/collections/land_survey/items?limit=2", "garbage")
        assert stale.status_code == 200 and stale.json()["features"] == expected  # served as anonymous


def test_a_session_ends_with_its_key_and_never_outlives_it(client, settings, app):
    key_id, key = _key(settings)
    token = _session(client, key)
    with open_store(settings).opened_admin() as store:
        assert store.revoke_key(key_id, dt.datetime.now(dt.UTC))
    app.state.policy.forget_keys()  # as when the key cache's few seconds have passed
    assert _get(client, "/collections", token).status_code == 401
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)
    _, ending = _key(settings, not_after=soon)
    _, header = _cookie(client.post("/session", json={"api_key": ending}))
    assert 500 <= int(re.search(r"Max-Age=(\d+)", header).group(1)) <= 600
    assert client.post("/session", json={"api_key": key}).status_code == 401


def test_a_session_of_a_replaced_key_is_dead(client, settings, app):
    """Same key id, new secret (rotation): the old session's binding no longer matches."""
    key_id, key = _key(settings)
    token = _session(client, key)
    signer, record = SessionSigner(settings), app.state.policy.admin.get_key(key_id)
    other = KeyRecord(id=key_id, name=record.name, secret_hash=new_key()[2])
    assert signer.bound_to(signer.verify(token, dt.datetime.now(dt.UTC)), record)
    assert not signer.bound_to(signer.verify(token, dt.datetime.now(dt.UTC)), other)


def test_key_ranges_still_apply_through_a_session(client, settings):
    """Also: a second replica with the same ONEMAP_SESSION_SECRET honours the session."""
    _, key = _key(settings, networks=("10.9.0.0/16",))
    token = _session(client, key)
    assert _get(client, "/collections", token).status_code == 200
    with TestClient(create_app(settings), client=("192.0.2.1", 5000)) as outside:
        r = _get(outside, "/collections", token)
        assert r.status_code == 403 and "192.0.2.1" in r.json()["description"]
        assert outside.post("/session", json={"api_key": key}).status_code == 403


def test_a_session_posts_only_from_this_site(client, settings):
    _, key = _key(settings)
    token = _session(client, key)
    cookie = {"Cookie": f"{SESSION_COOKIE}={token}", "Content-Type": "application/json"}
    body = orjson.dumps({"limit": 1})
    client.cookies.clear()
    cross = client.post("/stac/search", content=body, headers={**cookie, "Origin": "https://evil.example"})
    assert cross.status_code == 403 and "X-API-Key" in cross.json()["description"]
    assert client.post("/stac/search", content=body, headers=cookie).status_code == 403  # no origin at all
    same = client.post("/stac/search", content=body, headers={**cookie, "Origin": "http://testserver"})
    assert same.status_code == 200 and same.json()["type"] == "FeatureCollection"
    signin = client.post("/session", json={"api_key": key}, headers={"Origin": "https://evil.example"})
    assert signin.status_code == 403 and "set-cookie" not in signin.headers


def test_logout_clears_the_cookie(client):
    for r in (client.delete("/session"), client.post("/session/logout")):
        assert r.status_code == 204
        assert re.match(rf"{SESSION_COOKIE}=; Max-Age=0;", r.headers["set-cookie"])


def test_exchange_refuses_what_is_not_a_key(client):
    assert client.post("/session").status_code == 400
    assert client.post("/session", content=b"{", headers={"Content-Type": "application/json"}).status_code == 400
    r = client.post("/session", json={"api_key": "om_000000000000_" + "x" * 43})
    assert r.status_code == 401 and "set-cookie" not in r.headers


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.links += [v for k, v in attrs if k in ("href", "src", "action", "data-config") and v]


def test_pages_opened_with_a_key_set_the_session_and_link_without_it(client, settings):
    _, key = _key(settings)
    client.cookies.clear()
    first = client.get(f"/collections?f=html&api_key={key}")
    assert first.status_code == 200 and first.headers["content-type"].startswith("text/html")
    token, _ = _cookie(first)
    assert "set-cookie" not in client.get(f"/collections?f=json&api_key={key}").headers  # only pages
    item = _get(client, "/collections/parcels/items?limit=1", token).json()["features"][0]
    pages = ["/?f=html", "/map", "/collections?f=html", "/collections/parcels?f=html",
             "/collections/parcels/items?f=html&limit=5", f"/collections/parcels/items/{item['id']}?f=html"]
    for path in pages:
        r = _get(client, path, token)
        assert r.status_code == 200, path
        found = _Links()
        found.feed(r.text)
        assert found.links and not [link for link in found.links if "api_key" in link or key in link], path
        assert key not in r.text and token not in r.text
    viewer = _Links()
    viewer.feed(_get(client, "/map", token).text)
    config = next(orjson.loads(v) for v in viewer.links if v.startswith("{"))
    assert config["session"] is True and config["base"] == "http://testserver"


def test_https_base_url_makes_the_cookie_secure(backend, request):
    settings = settings_for(backend, request, edition="classified", base_url="https://maps.example.gov")
    _, key = _key(settings)
    with TestClient(create_app(settings)) as c:
        _, header = _cookie(c.post("/session", json={"api_key": key}))
        assert "; Secure" in header


def test_the_cookie_never_reaches_the_audit_or_the_access_log(settings):
    key_id, key = _key(settings)
    logger = logging.getLogger("uvicorn.access")
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    with live_server(settings) as root:
        level = logger.level
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        try:
            opened = httpx.post(f"{root}/session", json={"api_key": key})
            token, _ = _cookie(opened)
            r = httpx.get(f"{root}/collections/parcels/items?limit=2", cookies={SESSION_COOKIE: token})
            assert r.status_code == 200 and len(r.json()["features"]) == 2
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)
    assert any("/collections/parcels/items" in line for line in lines)
    assert not [line for line in lines if token in line or key in line]
    with open_store(settings).opened_admin() as store:
        audited = store.query_audit(None, key_id, None, 100)
    assert {r.path for r in audited} >= {"/session", "/collections/parcels/items"}
    for row in audited:
        assert row.key_id == key_id and token not in (row.params or "") and token not in row.path
