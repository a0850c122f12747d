"""Label glyphs: SDF glyph PBFs built from Debian's CJK font (server.viewer.glyphs) and served at
/fonts/{fontstack}/{range}.pbf, decoded here as MapLibre reads them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.viewer.glyphs import BUFFER, Glyphs, build, default_font, main, ranges_of
from tests.support.api_keys import issue_key
from tests.support.rasters import raster_settings

STACK = "Noto Sans CJK SC Regular,WenQuanYi Zen Hei Regular"


@pytest.fixture(scope="module")
def glyphs_dir(tmp_path_factory) -> Path:
    found = default_font()
    if found is None:
        pytest.fail("no CJK font: apt-get install fonts-wqy-zenhei (or run 'make test')")
    out = tmp_path_factory.mktemp("fonts")
    build(found[0], out, found[1], ranges_of("A镇"))
    return out


@pytest.fixture(scope="module")
def client(sample_dir, glyphs_dir):
    settings = raster_settings(sample_dir, glyphs_dir=glyphs_dir)
    with TestClient(create_app(settings), headers={"X-API-Key": issue_key(settings, "glyphs")}) as c:
        yield c


def _decode(body: bytes) -> dict[int, object]:
    doc = Glyphs()
    doc.ParseFromString(body)
    (stack,) = doc.stacks
    return {g.id: g for g in stack.glyphs}


def test_a_cjk_glyph_is_a_signed_distance_field(client):
    start = ord("镇") // 256 * 256
    r = client.get(f"/fonts/{STACK}/{start}-{start + 255}.pbf")
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-protobuf"
    glyphs = _decode(r.content)
    assert len(glyphs) > 200, "a CJK range of the font is nearly full"
    g = glyphs[ord("镇")]
    assert 18 <= g.width <= 26 and 18 <= g.height <= 26 and 20 <= g.advance <= 26
    sdf = np.frombuffer(g.bitmap, dtype=np.uint8).reshape(g.height + 2 * BUFFER, g.width + 2 * BUFFER)
    assert sdf[0, 0] < 100 and sdf[-1, -1] < 100, "the buffer is outside the glyph"
    assert (sdf >= 192).mean() > 0.15 and sdf.max() >= 200, "strokes are inside (above the 192 edge)"


def test_latin_metrics_and_the_stack_falls_back(client):
    glyphs = _decode(client.get(f"/fonts/{STACK}/0-255.pbf").content)
    a, space = glyphs[ord("A")], glyphs[ord(" ")]
    assert 10 <= a.width <= 18 and -12 <= a.top <= -2 and a.advance >= a.width - 2
    assert space.width == 0 and space.bitmap == b"" and space.advance > 0
    only_second = client.get("/fonts/Noto Sans CJK SC Regular/0-255.pbf")
    assert only_second.status_code == 404 or _decode(only_second.content)


@pytest.mark.parametrize("path", [
    "/fonts/WenQuanYi Zen Hei Regular/1-256.pbf",
    "/fonts/WenQuanYi Zen Hei Regular/0-511.pbf",
    "/fonts/No Such Font/0-255.pbf",
    "/fonts/..,WenQuanYi Zen Hei Regular/256-511.pbf",
    "/fonts/%2E%2E/0-255.pbf",
])
def test_unknown_or_malformed_is_a_404_saying_how(client, path):
    r = client.get(path)
    assert r.status_code == 404 and "make glyphs" in r.json()["description"]


def test_the_builder_command_writes_every_range(tmp_path):
    font = default_font()
    assert font is not None
    assert main(["--font", str(font[0]), "--family", font[1], "--out", str(tmp_path), "--ranges", "0,65280"]) == 0
    (folder,) = tmp_path.iterdir()
    assert sorted(p.name for p in folder.iterdir()) == ["0-255.pbf", "65280-65535.pbf"]
