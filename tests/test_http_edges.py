"""HTTP edges on both backends: HEAD, 405 with Allow, the body size limit, out-of-range ids and cursors,
repeated single-valued parameters."""

from __future__ import annotations

import base64

import orjson
import pytest

from tests.conftest import keyed_client, settings_for

MAX_BODY = 4096
GET_PATHS = [
    "/", "/conformance", "/api", "/collections", "/collections/land_survey", "/collections/land_survey/items?limit=3",
    "/collections/land_survey/tiles/WebMercatorQuad/14/6767/13723", "/tileMatrixSets/WebMercatorQuad",
    "/styles/land_survey", "/stac", "/stac/search?limit=2",
]


@pytest.fixture(scope="module")
def c(backend, request):
    with keyed_client(settings_for(backend, request, max_body_bytes=MAX_BODY)) as client:
        yield client


def _problem(r, status: int, *words: str) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert body["status"] == status and body["code"] and all(w in body["description"] for w in words), body
    assert "Traceback" not in r.text and "/work" not in r.text and "SELECT" not in r.text
    return body


@pytest.mark.parametrize("path", GET_PATHS)
@pytest.mark.parametrize("coding", ["identity", "gzip"])
def test_head_answers_like_get_without_a_body(c, path, coding):
    got = c.get(path, headers={"accept-encoding": coding})
    head = c.head(path, headers={"accept-encoding": coding})
    assert got.status_code in (200, 204) and head.status_code == got.status_code
    assert head.content == b""
    for name in ("content-type", "content-encoding", "content-length", "etag", "cache-control", "vary", "content-crs"):
        assert head.headers.get(name) == got.headers.get(name), name
    if got.status_code == 200 and coding == "identity":
        assert head.headers["content-length"] == str(len(got.content))


def test_head_of_a_missing_thing_is_the_same_404(c):
    assert c.head("/collections/zz_missing").status_code == c.get("/collections/zz_missing").status_code == 404


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("POST", "/collections", "GET, HEAD"),
    ("DELETE", "/collections/land_survey/items", "GET, HEAD"),
    ("PUT", "/stac/search", "GET, HEAD, POST"),
])
def test_method_not_allowed_names_the_allowed_ones(c, method, path, allow):
    r = c.request(method, path)
    _problem(r, 405, allow)
    assert r.headers["allow"] == allow


def test_a_body_over_the_limit_is_413_by_its_length(c):
    big = orjson.dumps({"limit": 1, "ids": ["x" * 100] * (MAX_BODY // 50)})
    assert len(big) > MAX_BODY
    _problem(c.post("/stac/search", content=big, headers={"content-type": "application/json"}), 413, str(MAX_BODY))
    small = c.post("/stac/search", json={"limit": 1})
    assert small.status_code == 200 and small.json()["type"] == "FeatureCollection"


def test_a_streamed_body_over_the_limit_is_413_while_it_is_read(c):
    chunk = b" " * 1024

    def body():  # no Content-Length: the size is only known by reading
        yield b'{"limit": 1, "ids": ["a"]'
        for _ in range(MAX_BODY // len(chunk) + 2):
            yield chunk
        yield b"}"

    r = c.post("/stac/search", content=body(), headers={"content-type": "application/json"})
    assert "content-length" not in r.request.headers
    _problem(r, 413, str(MAX_BODY))


@pytest.mark.parametrize("feature_id", ["99999999999999999999999", "9223372036854775808", "-9223372036854775809",
                                        "1" * 5000])
def test_an_out_of_range_integer_id_is_400(c, feature_id):
    _problem(c.get(f"/collections/land_survey/items/{feature_id}"), 400, "64-bit")


def test_the_largest_integer_id_is_just_missing(c):
    _problem(c.get(f"/collections/land_survey/items/{2**63 - 1}"), 404)


@pytest.mark.parametrize("key", [10**30, 2**63, -(2**63) - 1])
def test_an_out_of_range_cursor_is_400(c, key):
    cursor = base64.urlsafe_b64encode(f'["n", {key}, [], ""]'.encode()).decode()  # as Cursor.encode writes
    _problem(c.get("/collections/land_survey/items", params={"cursor": cursor}), 400, "cursor")
    huge = base64.urlsafe_b64encode(b"ni" + b"9" * 5000).decode()
    _problem(c.get("/collections/land_survey/items", params={"cursor": huge}), 400, "cursor")


@pytest.mark.parametrize(("path", "query", "name"), [
    ("/collections/land_survey/items", "bbox=121.4,29.75,121.5,29.8&bbox=121.4,29.75,121.7,29.95", "bbox"),
    ("/collections/land_survey/items", "limit=1&limit=10000", "limit"),
    ("/collections/land_survey/items", "f=json&f=html", "f"),
    ("/collections/land_survey/items", "datetime=2020-01-01/..&datetime=../2020-01-01", "datetime"),
    ("/collections/land_survey/items", "cursor=a&cursor=b", "cursor"),
    ("/stac/search", "bbox=121.4,29.75,121.5,29.8&bb%6Fx=121.4,29.75,121.7,29.95", "bbox"),
    ("/collections/dem/elevation", "lon=121.6&lat=29.8&lon=121.5", "lon"),
])
def test_a_repeated_single_valued_parameter_is_400(c, path, query, name):
    _problem(c.get(f"{path}?{query}"), 400, f"'{name}'", "more than once")
