"""STAC documents of the raster holdings (pystac), shared by the STAC API, the static catalog and releases.

- ``build.py``: one STAC Collection per raster collection, one Item per registered asset;
- ``describe.py``: what an item says about its COG, read from the file;
- ``validate.py``: validation that needs no network (core schemas and the extensions used).
"""
