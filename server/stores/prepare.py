"""``onemap overviews``: preparing the configured store again after edits (``Store.prepare``).

A load (``onemap sample``, ``onemap import``, a release bundle) prepares its store; after edits these
rebuild the overviews, which are swapped in atomically with the data version they were read at.
"""

from __future__ import annotations

from server.catalog import Catalog, VectorCollection, load_catalog
from server.settings import Settings
from server.sources.tile_overviews import overview_zooms
from server.stores import open_store


def rebuild_overviews(
    settings: Settings, collection_ids: list[str] | None = None, stale_only: bool = False,
) -> list[str]:
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
    return open_store(settings).prepare(Catalog(chosen))


def stale_collections(settings: Settings) -> list[str]:
    """Vector collections with overviews whose recorded data version is not the current one.

    Every such collection when the store records no versions. ``onemap overviews --stale`` rebuilds these.
    """
    ids = [c.id for c in load_catalog(settings.collections_dir).of_kind(VectorCollection) if overview_zooms(c)]
    fresh = open_store(settings).fresh_overviews()
    return [cid for cid in ids if fresh is None or cid not in fresh]
