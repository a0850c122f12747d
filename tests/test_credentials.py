"""Credentials (``server.credentials``) never reach what the server writes: links, the access log."""

from __future__ import annotations

import logging

import pytest

from server.credentials import redacted_query

ACCESS_LOGGER = "uvicorn.access"

ITEMS = "/collections/parcels/items"
SEARCH = "/stac/search"


def test_credentials_never_reach_links(raster_client):
    secret = "om_000000000000_not-a-real-key"
    page = raster_client.get(ITEMS, params={"limit": 1, "api_key": secret})
    found = raster_client.get(SEARCH, params={"limit": 1, "api_key": secret})
    for r in (page, found):
        assert r.status_code == 200 and secret not in r.text and "api_key" not in r.text
        assert {link["rel"] for link in r.json()["links"]} >= {"self", "next"}


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_credentials_never_reach_the_access_log(raster_client):
    logger, lines = logging.getLogger(ACCESS_LOGGER), _Lines()
    level = logger.level
    logger.addHandler(lines)
    logger.setLevel(logging.INFO)
    try:  # the line uvicorn writes for each request
        logger.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET",
                    "/collections/parcels/items?limit=1&api_key=s3cret&ACCESS_TOKEN=t0ken", "1.1", 200)
    finally:
        logger.removeHandler(lines)
        logger.setLevel(level)
    assert lines.lines == ['127.0.0.1:5000 - "GET /collections/parcels/items?limit=1 HTTP/1.1" 200']


@pytest.mark.parametrize(("query", "expected"), [
    ("limit=5&api_key=SECRET&f=json", "limit=5&f=json"),
    ("API_KEY=SECRET&Tk=SECRET&apikey=SECRET&access_token=SECRET", ""),
    ("api%5Fkey=SECRET&limit=5", "limit=5"),  # an encoded name is still the credential
    ("filter=S_INTERSECTS(geom,POINT(1%202))&limit=5", "filter=S_INTERSECTS(geom,POINT(1%202))&limit=5"),
    ("filter=name%20%3D%20%27a%26b%27&&cursor=X", "filter=name%20%3D%20%27a%26b%27"),
    ("q=<script>&name=\"x\"", "q=%3Cscript%3E&name=%22x%22"),  # not URL query text: encoded again
])
def test_a_query_keeps_its_encoding_without_credentials_or_left_out_names(query, expected):
    assert redacted_query(query, ("cursor",)) == expected


def test_a_malformed_escape_is_encoded_again():
    assert redacted_query("q=100%&limit=5") == "q=100%25&limit=5"
