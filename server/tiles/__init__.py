"""OGC API - Tiles: tile matrix sets, vector tilesets and MVT tiles.

Design notes
------------
Grids (in the floor, ``server/tiling/``, shared with raster tiles and seeding). ``matrix_sets.py``
offers WebMercatorQuad, WorldCRS84Quad and CGCS2000Quad (Tianditu ``c``: its level N is
WorldCRS84Quad matrix N-1). Collections declare ``tiles.minzoom``/``maxzoom`` as
WebMercatorQuad levels; other grids are matched by ground resolution (``zooms.py``), which makes
CGCS2000Quad level N equal to WebMercatorQuad level N, as Tianditu's ``c`` and ``w`` levels are.

Responses (``routes.py``). A tile with nothing to draw - outside the data, or at a level where no
requested layer is drawn - is **204 No Content** on every backend. An unknown tile matrix set or
collection is 404; a matrix, row or column outside the grid, or a non-integer, is 400. Tileset
metadata is OGC JSON; ``f=tilejson`` (or ``Accept: application/vnd.mapbox.tile+json``) gives
TileJSON 3.0.0 for WebMercatorQuad (406 for the other grids, which TileJSON cannot describe).
``/tiles/{tms}/{z}/{row}/{col}`` is the base map: one layer per vector collection drawn at that level.

Properties. A tile carries ``tiles.properties`` of its collection (all fields when unset), always
with the id field, and never a field the caller's policy hides. Parcels carry what a map draws and
shows on click; the full record, owners included, stays behind the Features API (one call by id).

Generalization (``sources/tile_overviews.py``). Per collection: ``simplify_px`` (GEOS topology-
preserving simplifier, in 256-px-tile pixels), ``min_area_px`` (smaller polygons, shorter lines are
dropped), ``max_features`` (biggest kept first) and the zoom range. It is computed once at load time
into per-level *overviews* (``build_overviews`` in ``sources/postgis_tiles.py`` and
``sources/geopackage_tiles.py``), EPSG:3857 copies snapped to their level's tile grid. A tile reads
the overview of its level with a bounding-box lookup; in PostGIS one statement builds every layer
(``sources/sql/tile_layer.sql``), features inside the tile need only an affine transform and only
edge features go through ``ST_AsMVTGeom``. Above level 14 tiles read the source table (envelope
transformed to the table's SRID, index-friendly ``&&``) with no simplification: the tile grid snap
is enough there. Both backends generalize with the same code, so their tiles agree to a tile unit
or so (``tests/test_tiles_backends.py``).

Staleness. Each build records the data version it read; a collection edited since (its version in
``onemap_versions`` moved) reads its table at every level, generalized on the fly with the same
settings, so a tile never shows pre-edit data. ``onemap overviews [--stale] [--collections ...]``
rebuilds them (also needed when a collection's ``tiles`` settings change).
"""
