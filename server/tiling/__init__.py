"""Tiling shared by every tile surface: the offered grids, zoom levels across grids, and the registry
of tile handlers by collection kind.

- ``matrix_sets.py``: the tile matrix sets (morecantile models) and tile address checks;
- ``zooms.py``: WebMercatorQuad-equivalent levels of any grid, per-collection visibility, tile requests;
- ``handlers.py``: who serves the tiles of a collection of each kind (vector: MVT, raster: images).
"""
