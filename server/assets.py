"""Where the files of registered raster assets are: relative to the data directory, never outside it.

Clients name items (asset ids from the catalog), never paths; a path only ever comes from the catalog.
Raster reads, the STAC documents and the asset downloads all find files here. A mosaic collection's
files are its sheets (``server.stores.sheets``), each an asset ``<acquisition>_<sheet>``.
"""

from __future__ import annotations

from pathlib import Path

from server.catalog import RasterAsset, RasterCollection
from server.errors import OGCError
from server.stores.sheets import Sheet, SheetIndex


def asset_path(data_dir: Path, asset: RasterAsset) -> Path:
    """The file of an asset: relative to the data directory, and never outside it."""
    root = Path(data_dir).resolve()
    path = (root / asset.path).resolve()
    if root not in path.parents:
        raise OGCError("The raster data of this item is not available.")
    return path


def sheet_index(collection: RasterCollection, data_dir: Path) -> SheetIndex | None:
    """The sheet index of a mosaic collection (``raster.sheets``); None for one file per acquisition."""
    if collection.raster.sheets is None:
        return None
    return SheetIndex(asset_path(data_dir, RasterAsset(id=collection.id, path=collection.raster.sheets,
                                                       datetime="1970-01-01")))


def sheet_asset(sheet: Sheet) -> RasterAsset:
    """A mosaic sheet as an asset of its own: id ``<acquisition>_<sheet name>``, its file and time."""
    return RasterAsset(id=f"{sheet.acquisition}_{sheet.name}", path=sheet.path, datetime=sheet.datetime)


def file_assets(collection: RasterCollection, data_dir: Path) -> list[RasterAsset]:
    """The files of a raster collection as assets: its registered assets, or a mosaic's sheets."""
    index = sheet_index(collection, data_dir)
    if index is None:
        return list(collection.raster.assets)
    return [sheet_asset(s) for s in index.sheets()]
