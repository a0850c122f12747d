"""One store object per backend (``Store``), made by ``open_store`` from the settings.

- ``base.py``: the ``Store`` every caller takes: reads, writes, admin, label, preparation, batch reads;
- ``geopackage.py`` / ``postgis.py``: the two backends, composed of the parts below and of
  ``server.sources`` (reads) and ``server.policy`` (admin tables, labels);
- ``batches.py``, ``gpkg_writer.py``, ``pg_writer.py``: writing batches of rows (the sample, releases);
- ``reader.py``: reading them back as an edition may see them (releases);
- ``prepare.py``: ``onemap overviews`` over the configured store.
"""

from __future__ import annotations

from server.settings import Settings
from server.stores.base import GPKG_NAME, Store

__all__ = ["GPKG_NAME", "Store", "open_store"]


def open_store(settings: Settings) -> Store:
    """PostGIS when a database URL is configured, the embedded GeoPackage store otherwise."""
    if settings.database_url:
        from server.stores.postgis import PostGISStore

        return PostGISStore(settings)
    from server.stores.geopackage import GeoPackageStore

    return GeoPackageStore(settings.gpkg_path)
