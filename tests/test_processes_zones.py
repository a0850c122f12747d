"""A site across a Gauss-Kruger zone boundary (121.5E in the sample county, between EPSG:4549 and
EPSG:4550): each part is measured in its own zone and the areas summed, on both backends."""

from __future__ import annotations

import pytest
import shapely
from pyproj import Geod, Transformer

from server.policy.model import Restriction
from server.sources.areas import Site
from tests.conftest import keyed_client, settings_for
from tests.test_processes import box, run

WEST, EAST = 4549, 4550  # CGCS2000 3-degree GK zones, central meridians 120E and 123E
CROSSING = box(121.49, 29.84, 121.51, 29.85)  # about 2 km²: 1 km each side of the boundary


def zone_square(epsg: int, lon: float, lat: float, side: float) -> list[list[float]]:
    """A square of ``side`` metres laid out in zone ``epsg``, as a CRS84 ring."""
    to_zone = Transformer.from_crs(4490, epsg, always_xy=True)
    to_lonlat = Transformer.from_crs(epsg, 4490, always_xy=True)
    x, y = to_zone.transform(lon, lat)
    corners = [(x, y), (x + side, y), (x + side, y + side), (x, y + side), (x, y)]
    return [list(to_lonlat.transform(cx, cy)) for cx, cy in corners]


def test_each_part_is_measured_in_its_own_zone(client):
    """Two 100 m squares, each laid out in its own zone, 0.05 degrees either side of the boundary: 20,000 m².
    Measured both in one zone, the eastern one would be 0.7 m² too large (its scale 1.55 degrees off the
    western meridian instead of 1.45 degrees off its own)."""
    west = zone_square(WEST, 121.45, 29.845, 100.0)
    east = zone_square(EAST, 121.55, 29.845, 100.0)
    report = run(client, {"geometry": {"type": "MultiPolygon", "coordinates": [[west], [east]]}}).json()
    site = report["site"]
    assert site["area_zones"] == [f"http://www.opengis.net/def/crs/EPSG/0/{z}" for z in (WEST, EAST)]
    assert site["area_m2"] == pytest.approx(20_000.0, abs=0.01)
    survey = report["layers"]["land_survey"]  # the survey covers the county without gaps
    assert survey["overlap_m2"] == pytest.approx(20_000.0, abs=0.05)


def test_a_site_across_the_boundary_on_both_backends(request):
    reports = []
    for backend in ("geopackage", "postgis"):
        with keyed_client(settings_for(backend, request)) as c:
            reports.append(run(c, {"geometry": CROSSING}).json())
    gpkg, pg = reports
    assert gpkg["site"] == pg["site"] and len(gpkg["site"]["area_zones"]) == 2
    geodesic, _ = Geod(ellps="GRS80").polygon_area_perimeter(*zip(*CROSSING["coordinates"][0], strict=True))
    # metres, never degrees: at a zone edge the GK scale makes areas about 0.05% larger than on the ellipsoid
    assert gpkg["site"]["area_m2"] == pytest.approx(abs(geodesic), rel=1e-3)
    for layer in ("land_survey", "planning_zones"):
        a, b = gpkg["layers"][layer], pg["layers"][layer]
        assert a["overlap_m2"] == pytest.approx(gpkg["site"]["area_m2"], rel=2e-6)  # the layers have slivers of gaps
        key = next(k for k in a if k.startswith("by_"))
        left = {c["code"]: c["area_m2"] for c in a[key]}
        right = {c["code"]: c["area_m2"] for c in b[key]}
        assert left.keys() == right.keys()
        for code, area in left.items():
            assert area == pytest.approx(right[code], abs=0.01), (layer, code)


def test_layers_measured_at_once_equal_layer_by_layer(backend, request):
    """``overlaps_many`` (one statement on PostGIS) gives each layer what ``overlaps`` gives it alone."""
    with keyed_client(settings_for(backend, request)) as c:
        source, catalog = c.app.state.source, c.app.state.catalog
        site = Site.of(shapely.geometry.shape(CROSSING))
        layers = [(catalog.get(cid), fields, Restriction.unrestricted(catalog.get(cid)))
                  for cid, fields in (("land_survey", ("land_code",)), ("parcels", ("land_use", "area_m2")),
                                      ("control_lines", ("line_type",)))]

        async def both():
            alone = [await source.overlaps(col, site, fields, restriction=r) for col, fields, r in layers]
            return alone, await source.overlaps_many(layers, site)

        alone, together = c.portal.call(both)
    assert [len(a) for a in alone] == [len(t) for t in together] and min(map(len, alone)) > 0
    for a, t in zip(alone, together, strict=True):
        assert [o.id for o in a] == [o.id for o in t]
        assert [o.values for o in a] == [tuple(v) for v in (o.values for o in t)]
        assert [o.area_m2 for o in a] == pytest.approx([o.area_m2 for o in t], abs=1e-6)
