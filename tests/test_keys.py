"""API keys end to end: created with the CLI, stored hashed, checked on every request (both backends).

401 without a usable key, 403 outside the key's IP ranges or validity window, 429 with Retry-After
over its rate or daily quota; the key works in the ``X-API-Key`` header and the ``api_key`` parameter.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import sqlite3

import psycopg
import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.cli import main as cli_main
from server.policy.limits import quota_day
from server.settings import Settings
from tests.conftest import settings_for

KEY = re.compile(r"api key \(shown once, store it now\): (om_[0-9a-f]{12}_[A-Za-z0-9_-]{43})")


def store_args(settings) -> list[str]:
    if settings.database_url:
        return ["--database-url", settings.database_url]
    return ["--data-dir", str(settings.data_dir)]


def create(capsys, settings, *options: str) -> str:
    """Create a key with ``onemap keys create``; returns the key printed once."""
    assert cli_main(["keys", *store_args(settings), "create", *options]) == 0
    return KEY.search(capsys.readouterr().out).group(1)


@pytest.fixture(scope="module")
def settings(backend, request):
    return settings_for(backend, request)


@pytest.fixture(scope="module")
def app(settings):
    """One started app per module; ``client`` makes further clients on it (from any address)."""
    app = create_app(settings)
    with TestClient(app):
        yield app


def client(app, ip: str = "127.0.0.1", **headers) -> TestClient:
    """A client on the started ``app`` (not entered: the app's lifespan is already running)."""
    return TestClient(app, client=(ip, 40000), headers=headers)


def test_keys_are_stored_as_hashes_only(capsys, settings):
    key = create(capsys, settings, "--name", "hash check", "--collections", "parcels,land_survey")
    key_id, secret = key.split("_", 2)[1:]
    if settings.database_url:
        with psycopg.connect(settings.database_url) as conn:
            rows = conn.execute("SELECT * FROM onemap_api_keys WHERE id = %s", [key_id]).fetchall()
    else:
        with sqlite3.connect(settings.data_dir / "onemap_admin.sqlite") as conn:
            rows = conn.execute("SELECT * FROM onemap_api_keys WHERE id = ?", [key_id]).fetchall()
    stored = repr(rows)
    assert secret not in stored and hashlib.sha256(secret.encode()).hexdigest() in stored
    assert cli_main(["keys", *store_args(settings), "list"]) == 0
    listing = capsys.readouterr().out
    assert key_id in listing and "collections=land_survey,parcels" in listing and secret not in listing


def test_missing_invalid_and_revoked_keys_are_401(capsys, settings, app):
    c = client(app)
    r = c.get("/collections")
    assert r.status_code == 401 and r.json()["code"] == "Unauthorized" and "X-API-Key" in r.json()["description"]
    assert "api_key" in r.headers["www-authenticate"]
    assert c.get("/collections", headers={"X-API-Key": "not-a-key"}).status_code == 401
    key = create(capsys, settings, "--name", "to revoke")
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    assert c.get("/collections", headers={"X-API-Key": forged}).status_code == 401
    assert c.get("/collections", headers={"X-API-Key": key}).status_code == 200
    assert cli_main(["keys", *store_args(settings), "revoke", key.split("_")[1]]) == 0
    app.state.policy.forget_keys()  # otherwise the revocation applies within the key cache TTL (5 s)
    r = c.get("/collections", headers={"X-API-Key": key})
    assert r.status_code == 401 and r.json()["description"].startswith("The API key is not valid")
    assert cli_main(["keys", *store_args(settings), "revoke", key.split("_")[1]]) == 1
    assert c.get("/conformance").status_code == 200  # no data: no key needed


def test_key_in_header_or_query_parameter(capsys, settings, app):
    key = create(capsys, settings, "--name", "query param")
    c = client(app)
    assert c.get("/collections/land_survey/items", params={"limit": 2, "api_key": key}).status_code == 200
    r = c.get("/collections/land_survey/items", params={"limit": 2, "api_key": key})
    assert key not in r.text  # paging and self links never carry the credential
    assert c.get("/collections/land_survey/items/1", params={"api_key": key}).status_code in (200, 404)
    assert c.get("/collections/land_survey/items?limit=1", headers={"X-API-Key": key}).status_code == 200


def test_ip_ranges_bind_a_key(capsys, settings, app):
    key = create(capsys, settings, "--name", "office", "--cidr", "10.20.0.0/16", "192.168.7.0/24")
    inside, out = client(app, "10.20.3.4", **{"X-API-Key": key}), client(app, "10.21.0.1", **{"X-API-Key": key})
    assert inside.get("/collections").status_code == 200
    r = out.get("/collections")
    assert r.status_code == 403 and r.json()["code"] == "Forbidden" and "10.21.0.1" in r.json()["description"]


def test_validity_window(capsys, settings, app):
    now = dt.datetime.now(dt.UTC)
    later = create(capsys, settings, "--name", "later", "--not-before", (now + dt.timedelta(days=1)).isoformat())
    gone = create(capsys, settings, "--name", "gone", "--not-after", (now - dt.timedelta(minutes=1)).isoformat())
    ok = create(capsys, settings, "--name", "now", "--not-before", (now - dt.timedelta(hours=1)).isoformat(),
                "--not-after", (now + dt.timedelta(hours=1)).isoformat())
    c = client(app)
    r = c.get("/collections", headers={"X-API-Key": later})
    assert r.status_code == 403 and "not valid before" in r.json()["description"]
    r = c.get("/collections", headers={"X-API-Key": gone})
    assert r.status_code == 403 and "expired" in r.json()["description"]
    assert c.get("/collections", headers={"X-API-Key": ok}).status_code == 200


def test_rate_limit_answers_429_with_retry_after(capsys, settings, app):
    key = create(capsys, settings, "--name", "slow", "--rate", "0.2/s")
    c = client(app, **{"X-API-Key": key})
    codes = [c.get("/conformance?f=json").status_code for _ in range(3)]
    assert codes[0] == 200 and 429 in codes
    r = c.get("/collections")
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1 and "Rate limit" in r.json()["description"]


def test_daily_quota_survives_a_restart(capsys, settings):
    key = create(capsys, settings, "--name", "quota", "--daily-quota", "3")
    with TestClient(create_app(settings), headers={"X-API-Key": key}) as c:
        assert [c.get("/collections").status_code for _ in range(2)] == [200, 200]
    # a new app: the count is read back from the audit log
    with TestClient(create_app(settings), headers={"X-API-Key": key}) as c:
        assert c.get("/collections").status_code == 200
        r = c.get("/collections")
        assert r.status_code == 429 and "quota" in r.json()["description"]
        until_midnight = quota_day(dt.datetime.now(dt.UTC))[2]
        assert abs(int(r.headers["retry-after"]) - until_midnight) <= 5


def test_scopes_limit_collections_and_hidden_is_missing(capsys, settings, app):
    key = create(capsys, settings, "--name", "survey only", "--collections", "land_survey")
    c = client(app, **{"X-API-Key": key})
    assert [x["id"] for x in c.get("/collections").json()["collections"]] == ["land_survey"]
    hidden, missing = c.get("/collections/parcels/items"), c.get("/collections/no_such/items")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["description"].replace("parcels", "X") == missing.json()["description"].replace("no_such", "X")


def test_bad_cli_values_name_the_option(capsys, settings):
    args = ["keys", *store_args(settings), "create", "--name", "bad"]
    assert cli_main([*args, "--collections", "parcels,nope"]) == 2
    assert "unknown collection nope" in capsys.readouterr().err
    assert cli_main([*args, "--cidr", "10.0.0.300/8"]) == 2
    assert "CIDR" in capsys.readouterr().err
    assert cli_main([*args, "--rate", "fast"]) == 2
    assert "rate 'fast'" in capsys.readouterr().err
    assert cli_main([*args, "--not-before", "2030-01-02", "--not-after", "2030-01-01"]) == 2
    assert "--not-before must be earlier" in capsys.readouterr().err


def test_unreachable_store_answers_503_not_500(tmp_path):
    for key in [k for k in os.environ if k.startswith("ONEMAP_")]:
        os.environ.pop(key)
    dead = Settings(data_dir=tmp_path, database_url="postgresql://postgres@127.0.0.1:1/onemap")
    with TestClient(create_app(dead)) as c:
        r = c.get("/collections", headers={"X-API-Key": "om_0123456789ab_" + "A" * 43})
        assert r.status_code == 503 and r.json()["code"] == "ServiceUnavailable" and int(r.headers["retry-after"]) > 0
        assert "postgres" not in r.text and "127.0.0.1" not in r.text
