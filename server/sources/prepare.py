"""Preparing a store to serve: per-collection data versioning and tile overviews.

Run after a load (``onemap sample``, ``onemap import``, a release bundle) and again after edits
(``onemap overviews``): both steps are idempotent and the overviews are swapped in atomically with
the data version they were read at.
"""

from __future__ import annotations

from pathlib import Path

from server.catalog import Catalog, VectorCollection, load_catalog
from server.settings import Settings
from server.sources.tile_overviews import overview_zooms


def prepare_for_serving(
    catalog: Catalog, gpkg_path: Path, database_url: str | None, *, overviews: bool = True
) -> list[str]:
    """What a freshly loaded store needs before it serves: data versioning and tile overviews.

    Per-collection data versioning (PostGIS ``server.sources.postgis.install_versioning``, GeoPackage
    ``server.sources.gpkg_versions.install_versioning``; both idempotent) and, unless ``overviews``
    is false, the tile overviews of ``catalog``'s collections with the data version they were built
    from. Returns the overview tables built. ``onemap overviews`` runs it again after edits.
    """
    if database_url:
        import psycopg

        from server.sources.postgis import install_versioning
        from server.sources.postgis_overviews import build_overviews

        with psycopg.connect(database_url, autocommit=True) as conn:
            install_versioning(conn, catalog)
            return build_overviews(conn, catalog) if overviews else []
    import sqlite3
    from contextlib import closing

    from server.sources.geopackage_tiles import build_overviews as build_gpkg_overviews
    from server.sources.gpkg_versions import (
        install_versioning as install_gpkg_versioning,
    )

    with closing(sqlite3.connect(gpkg_path)) as conn:
        install_gpkg_versioning(conn, catalog)
        conn.commit()
        return build_gpkg_overviews(conn, catalog) if overviews else []


def rebuild_overviews(settings: Settings, collection_ids: list[str] | None = None, stale_only: bool = False) -> list[str]:
    """Rebuild the tile overviews of these vector collections (all when None) in the configured store.

    What ``onemap overviews`` runs, e.g. from cron after bulk edits: data versioning is installed if
    missing (idempotent), then each collection's overviews are replaced atomically with the data
    version they were read at, so a running server keeps serving and its edited collections return
    from on-the-fly generalization to their overviews. ``stale_only`` skips collections whose
    overviews are current. Unknown or non-vector ids raise ``ValueError``. Returns the tables built.
    """
    catalog = load_catalog(settings.collections_dir)
    vectors = catalog.of_kind(VectorCollection)
    wrong = [cid for cid in collection_ids or [] if cid not in {c.id for c in vectors}]
    if wrong:
        raise ValueError(f"not vector collections of the catalog: {', '.join(wrong)}")
    chosen = [c for c in vectors if not collection_ids or c.id in collection_ids]
    if stale_only:
        stale = set(stale_collections(settings))
        chosen = [c for c in chosen if c.id in stale]
    if not chosen:
        return []
    return prepare_for_serving(Catalog(chosen), settings.gpkg_path, settings.database_url)


def stale_collections(settings: Settings) -> list[str]:
    """Vector collections with overviews whose recorded data version is not the current one.

    Every such collection when the store records no versions. ``onemap overviews --stale`` rebuilds these.
    """
    ids = [c.id for c in load_catalog(settings.collections_dir).of_kind(VectorCollection) if overview_zooms(c)]
    if settings.database_url:
        import psycopg

        from server.sources.postgis_overviews import fresh_collections

        with psycopg.connect(settings.database_url) as conn:
            fresh = fresh_collections(conn)
    else:
        import sqlite3
        from contextlib import closing

        from server.sources.geopackage_tiles import overview_state

        with closing(sqlite3.connect(f"file:{settings.gpkg_path}?mode=ro", uri=True)) as conn:
            fresh = overview_state(conn)[1]
    return [cid for cid in ids if fresh is None or cid not in fresh]
