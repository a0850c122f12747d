"""Where the files of registered raster assets are: relative to the data directory, never outside it.

Clients name items (asset ids from the catalog), never paths; a path only ever comes from the catalog.
Raster reads, the STAC documents and the asset downloads all find files here.
"""

from __future__ import annotations

from pathlib import Path

from server.catalog import RasterAsset
from server.errors import OGCError


def asset_path(data_dir: Path, asset: RasterAsset) -> Path:
    """The file of an asset: relative to the data directory, and never outside it."""
    root = Path(data_dir).resolve()
    path = (root / asset.path).resolve()
    if root not in path.parents:
        raise OGCError("The raster data of this item is not available.")
    return path
