"""OGC WMTS 1.0.0 in Tianditu's conventions (天地图): imagery, DEM shading and a rendered vector base map.

Layers are named ``{img|ter|vec}_{c|w}`` over the tile matrix sets ``c`` (CGCS2000 geographic,
EPSG:4490, levels from 1: ``CGCS2000Quad``) and ``w`` (Web Mercator, levels from 1:
``WebMercatorQuad``). KVP (``/wmts?SERVICE=WMTS&REQUEST=...``), RESTful
(``/wmts/1.0.0/...``) and Tianditu's own path form (``/img_c/wmts?...``) answer the same tiles as
the OGC API Tiles routes, under the same access policy and caches; ``tk`` carries the API key.
"""
