"""Data sources behind one small protocol; ``open_source`` picks the backend from the settings."""

from __future__ import annotations

from server.catalog import Catalog
from server.settings import Settings
from server.sources.base import Cursor, Extent, ItemQuery, Page, Source, TileRequest, TimeInterval

__all__ = ["Cursor", "Extent", "ItemQuery", "Page", "Source", "TileRequest", "TimeInterval", "make_source"]


def make_source(settings: Settings, catalog: Catalog) -> Source:
    """PostGIS when a database URL is configured, the embedded GeoPackage store otherwise."""
    if settings.database_url:
        from server.sources.postgis import PostGISSource

        return PostGISSource(settings, catalog)
    from server.sources.geopackage import GeoPackageSource

    return GeoPackageSource(settings.gpkg_path, catalog)
