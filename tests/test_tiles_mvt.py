"""The embedded MVT encoder and the grid/zoom helpers, on hand-made geometries."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from shapely.geometry import shape

from server.catalog import load_catalog
from server.settings import Settings
from server.sources import mvt
from server.sources.base import TileRequest
from server.sources.tile_overviews import box_in, buffered, overview_min_size, overview_zooms, pixel_size, sizes_of
from server.tiling.matrix_sets import get_tms
from server.tiling.zooms import matrix_range, tile_request, wmq_level
from tests.test_tiles import decode

CATALOG = load_catalog(Settings().collections_dir)
PARCELS = CATALOG.get("parcels")


def layer(geoms, sizes=None, ids=None) -> mvt.LayerData:
    geoms = np.array(geoms, dtype=object)
    ids = ids or [f"{i:028d}" for i in range(len(geoms))]
    sizes = np.asarray(sizes if sizes is not None else sizes_of(geoms, "MultiPolygon"), dtype=float)
    props = [{"unit_code": i, "area_m2": 1, "registration_date": "2020-01-02"} for i in ids]
    return mvt.LayerData(geoms, sizes, ids, props)


def test_tile_space_clip_snap_and_encode():
    req = TileRequest(bounds=(0.0, 0.0, 100.0, 100.0), srid=3857, extent=4096, buffer=64)
    inside = shapely.box(10.0, 10.0, 20.0, 30.0)
    across = shapely.box(90.0, 90.0, 150.0, 150.0)  # sticks out of the top-right corner
    tiny = shapely.box(50.0, 50.0, 50.001, 50.001)  # below half a tile unit
    feats = mvt.layer_features(PARCELS, layer([inside, across, tiny]), req)
    assert len(feats) == 2
    body = mvt.encode([("parcels", feats, 4096)])
    out = decode(body)["parcels"]["features"]
    first = shape(out[0]["geometry"])  # biggest first: the clipped corner square
    assert first.bounds == (3686.0, -64.0, 4160.0, 410.0)
    second = shape(out[1]["geometry"])
    assert second.bounds == (410.0, 2867.0, 819.0, 3686.0)  # y down: 30 -> 4096 - 1229
    assert out[1]["properties"] == {"unit_code": f"{0:028d}", "area_m2": 1.0, "registration_date": "2020-01-02"}


def test_cap_keeps_biggest_then_id():
    boxes = [shapely.box(i, 0, i + 1 + (i % 3), 1) for i in range(10)]
    capped = mvt.order_and_cap(layer(boxes), 4)
    assert list(capped.sizes) == [3.0, 3.0, 3.0, 2.0]
    assert capped.ids[:3] == sorted(capped.ids[:3])


def test_generalize_drops_small_and_simplifies():
    wiggly = shapely.Polygon([(0, 0), (5, 0.01), (10, 0), (10, 10), (0, 10)])
    small = shapely.box(0, 0, 1, 1)
    data = mvt.generalize(layer([wiggly, small]), "MultiPolygon", simplify=0.1, min_size=2.0)
    assert len(data.ids) == 1 and shapely.get_num_coordinates(data.geoms[0]) == 5


def test_empty_layers_are_left_out():
    assert mvt.encode([("parcels", [], 4096)]) == b""
    point = {"geometry": shapely.Point(1, 1), "properties": {"a": 1}}
    assert list(decode(mvt.encode([("a", [], 4096), ("b", [point], 4096)]))) == ["b"]


@pytest.mark.parametrize("value,kind,expected", [
    (1, "number", 1.0), ("7", "integer", 7), (0, "boolean", False), (None, "string", None),
    ("2021-03-04T05:06:07+08:00", "datetime", "2021-03-03T21:06:07Z"),
])
def test_property_values(value, kind, expected):
    assert mvt.property_value(value, kind) == expected


def test_levels_across_grids():
    wmq, c84, cgcs = (get_tms(i) for i in ("WebMercatorQuad", "WorldCRS84Quad", "CGCS2000Quad"))
    assert [wmq_level(wmq, z) for z in (0, 14)] == [0, 14]
    assert [wmq_level(c84, z) for z in (0, 13)] == [1, 14]
    assert [wmq_level(cgcs, z) for z in (1, 14, 18)] == [1, 14, 18]
    assert matrix_range(PARCELS, cgcs) == (10, 18) and matrix_range(PARCELS, c84) == (9, 21)


def test_tile_request_generalization_units():
    wmq = get_tms("WebMercatorQuad")
    req = tile_request(PARCELS, wmq, wmq.tile(121.55, 29.85, 14), ("unit_code",))
    assert req.zoom == 14 and req.srid == 3857
    assert req.simplify == pytest.approx(PARCELS.tiles.simplify_px * pixel_size(14))
    assert req.min_area == pytest.approx(PARCELS.tiles.min_area_px * pixel_size(14) ** 2)
    cgcs = get_tms("CGCS2000Quad")
    req = tile_request(PARCELS, cgcs, cgcs.tile(121.55, 29.85, 14), ("unit_code",))
    assert req.srid == 4490 and req.zoom == 14 and req.bounds[0] < 121.55 < req.bounds[2]


def test_overview_plan_and_boxes():
    assert list(overview_zooms(PARCELS)) == [10, 11, 12, 13, 14]
    assert overview_min_size(PARCELS, 14) == pytest.approx(PARCELS.tiles.min_area_px * pixel_size(14) ** 2)
    lonlat = box_in((13531000.0, 3483000.0, 13533000.0, 3485000.0), 3857, 4490)
    assert 121.55 < lonlat[0] < lonlat[2] < 121.58 and 29.8 < lonlat[1] < lonlat[3] < 29.9
    clamped = box_in((-180.0, -90.0, 180.0, 90.0), 4326, 3857)
    assert clamped[3] == pytest.approx(20037508.34, rel=1e-6)
    assert buffered((0, 0, 4096, 4096), 4096, 64) == (-64, -64, 4160, 4160)
