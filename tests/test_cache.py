"""The cache's building blocks: stored entries, negotiation, validators, the byte bound, the breaker."""

from __future__ import annotations

import gzip
import logging
from types import SimpleNamespace

import brotli
import pytest

from server.cache import http
from server.cache.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from server.cache.entry import CorruptEntry, Entry
from server.cache.memory import MemoryCache
from server.cache.scope import cache_scope, has_credentials, is_anonymous, is_public

BODY = b'{"type":"FeatureCollection","features":[' + b'{"type":"Feature","id":1},' * 200 + b"{}]}"


def entry(body: bytes = BODY, media: str = "application/geo+json") -> Entry:
    return Entry.build(200, media, 'W/"abc"', body, (("content-crs", "<x>"), ("vary", http.VARY)))


def test_entry_is_compressed_once_and_round_trips():
    e = entry()
    assert gzip.decompress(e.gzip) == BODY and brotli.decompress(e.br) == BODY
    assert len(e.br) < len(BODY) / 5
    back = Entry.unpack(e.pack())
    assert (back.identity, back.gzip, back.br) == (BODY, e.gzip, e.br)
    assert back.headers == e.headers and back.etag == e.etag and back.media_type == e.media_type
    assert len(e.pack()) < len(BODY)  # the identity body is not stored beside compressed copies


def test_small_or_binary_bodies_are_kept_as_they_are():
    small = entry(b'{"a":1}')
    png = entry(bytes(range(256)) * 8, "image/png")
    for e in (small, png):
        assert e.gzip is None and e.br is None
        assert Entry.unpack(e.pack()).identity == e.identity
    empty = Entry.build(204, None, 'W/"e"', b"")
    assert Entry.unpack(empty.pack()).status == 204


def test_unreadable_shared_bytes_are_rejected():
    for junk in (b"", b"nonsense", b"OMC1\x00\x00\x00\x05{bad}"):
        with pytest.raises(CorruptEntry):
            Entry.unpack(junk)


@pytest.mark.parametrize(
    "accept, chosen",
    [("gzip, deflate, br", "br"), ("gzip", "gzip"), ("br;q=0, gzip", "gzip"), ("*", "gzip"),
     ("*;q=0", None), ("identity", None), ("", None), ("gzip;q=0, br;q=0", None), ("x-gzip", "gzip")],
)
def test_content_coding_negotiation(accept, chosen):
    assert http.choose_encoding(accept, entry()) == chosen


def test_uncompressed_entry_is_always_identity():
    assert http.choose_encoding("br, gzip", entry(b"{}")) is None


@pytest.mark.parametrize(
    "header, match",
    [('W/"abc"', True), ('"abc"', True), ('"x", W/"abc"', True), ("*", True), ('"abd"', False), ("", False)],
)
def test_if_none_match_uses_weak_comparison(header, match):
    assert http.etag_matches(header, 'W/"abc"') is match


def test_304_and_bodies_per_coding():
    e = entry()
    assert http.status_and_body(e, 'W/"abc"', "br") == (304, b"")
    assert http.status_and_body(e, '"other"', "br") == (200, e.br)
    assert http.status_and_body(e, None, None) == (200, BODY)
    headers = dict(http.raw_headers(e, "gzip", http.cache_control(True, 60), 200, "hit"))
    assert headers[b"content-encoding"] == b"gzip" and headers[b"content-length"] == str(len(e.gzip)).encode()
    assert headers[b"cache-control"] == b"public, max-age=60" and headers[b"vary"] == http.VARY.encode()
    not_modified = dict(http.raw_headers(e, "gzip", "private, max-age=60", 304, "hit"))
    assert b"content-length" not in not_modified and not_modified[b"etag"] == b'W/"abc"'


def test_memory_cache_is_bounded_in_bytes():
    cache = MemoryCache(max_bytes=200_000, max_entry_bytes=100_000)
    sizes = []
    for i in range(100):
        e = Entry.build(200, "image/png", f'W/"{i}"', bytes([i % 251]) * 20_000)
        sizes.append(e.size)
        cache.put(str(i), e)
        assert cache.bytes_used <= 200_000
    assert cache.get("0") is None and cache.get("99") is not None  # least recently used went first
    assert len(cache) == 200_000 // sizes[0]
    assert not cache.put("big", Entry.build(200, "image/png", 'W/"b"', b"x" * 150_000))
    assert MemoryCache(0, 1000).get("x") is None


def test_breaker_opens_skips_and_heals(caplog):
    now = [0.0]
    breaker = CircuitBreaker("redis", failures=3, cooldown_s=5, clock=lambda: now[0])
    caplog.set_level(logging.INFO, "onemap.cache")
    for _ in range(2):
        breaker.failure("ConnectionError")
        assert breaker.state == CLOSED and breaker.allow()
    breaker.failure("ConnectionError")
    assert breaker.state == OPEN and not breaker.allow()
    now[0] = 5.0
    assert breaker.allow() and breaker.state == HALF_OPEN
    assert not breaker.allow()  # one trial at a time
    breaker.failure("TimeoutError")
    assert breaker.state == OPEN and not breaker.allow()
    now[0] = 10.5
    assert breaker.allow()
    breaker.success()
    assert breaker.state == CLOSED and breaker.allow()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("circuit open" in m for m in messages) == 2
    assert sum("circuit closed" in m for m in messages) == 1


def _request(policy=None, headers=(), query=b"", edition="classified"):
    state = SimpleNamespace(policy=policy) if policy is not None else SimpleNamespace()
    app = SimpleNamespace(state=SimpleNamespace(settings=SimpleNamespace(edition=edition)))
    return SimpleNamespace(state=state, app=app, scope={"headers": list(headers), "query_string": query})


def test_scope_and_publicness_follow_the_policy():
    assert cache_scope(_request()) == "edition:classified"
    keyed = SimpleNamespace(cache_scope="internet-1234", anonymous=False, edition="internet")
    anon = SimpleNamespace(cache_scope="internet-abcd", anonymous=True, edition="internet")
    assert cache_scope(_request(keyed)) == "internet-1234"
    assert not is_public(_request(keyed)) and is_public(_request(anon))
    assert is_public(_request(edition="internet"))
    assert not is_public(_request(edition="government"))
    assert not is_public(_request(headers=[(b"x-api-key", b"k")], edition="internet"))
    assert not is_anonymous(_request(query=b"f=json&api_key=k"))
    assert has_credentials([(b"authorization", b"Bearer x")], b"") and not has_credentials([], b"f=json")


def test_seed_plan_enumerates_tiles_within_extent_and_bbox():
    from server.catalog import load_catalog
    from server.commands.seed import SeedError, SeedPlan, parse_bbox, parse_zooms, tile_paths
    from tests.support import ROOT

    catalog = load_catalog(ROOT / "collections")
    assert parse_zooms("10-12") == (10, 11, 12) and parse_zooms("7") == (7,)
    for bad in ("12-10", "x", "-1"):
        with pytest.raises(SeedError):
            parse_zooms(bad)
    with pytest.raises(SeedError):
        parse_bbox("1,2,3")
    plan = SeedPlan(("land_survey", "basemap"), ("WebMercatorQuad", "CGCS2000Quad"), (10, 11),
                    (121.5, 29.8, 121.6, 29.9))
    paths = list(tile_paths(plan, catalog))
    assert len(paths) == len(set(paths)) and paths[0].startswith("/collections/land_survey/tiles/WebMercatorQuad/10/")
    assert any(p.startswith("/tiles/CGCS2000Quad/11/") for p in paths)
    outside = SeedPlan(("land_survey",), ("WebMercatorQuad",), (12,), (100.0, 10.0, 100.1, 10.1))
    assert list(tile_paths(outside, catalog)) == []
    with pytest.raises(SeedError):
        list(tile_paths(SeedPlan(("nowhere",), ("WebMercatorQuad",), (12,)), catalog))


def test_fast_path_fingerprint_names_who_asks():
    from server.cache.response_cache import scan

    base = {"type": "http", "scheme": "http", "path": "/tiles/WebMercatorQuad/1/0/0", "root_path": "",
            "query_string": b"", "headers": [(b"host", b"h"), (b"accept-encoding", b"br")]}
    anonymous = scan(base)
    keyed = scan({**base, "headers": base["headers"] + [(b"x-api-key", b"k")]})
    in_query = scan({**base, "query_string": b"api_key=k"})
    assert anonymous.eligible and not keyed.eligible and not in_query.eligible  # no policy: keys go routed
    scoped = SimpleNamespace(cache_scope="government-1", anonymous=False)
    with_policy = scan({**base, "headers": base["headers"] + [(b"x-api-key", b"k")], "state": {"policy": scoped}})
    assert with_policy.eligible and with_policy.fingerprint[0] == ("government-1", False)
    assert with_policy.fingerprint != anonymous.fingerprint and anonymous.accept_encoding == "br"
