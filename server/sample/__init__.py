"""The deterministic synthetic sample county (``onemap sample``).

``build_sample(scale, store)`` writes it into a store (``server.stores``): the embedded GeoPackage
or PostGIS. ``scale`` is the number of parcels; every other layer grows with it. The same scale
always gives the same rows (and, for the GeoPackage, the same bytes).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from server.catalog import Catalog, VectorCollection, load_catalog
from server.settings import packaged
from server.stores import Store
from server.stores.batches import Batch, write_all

COLLECTIONS = ("admin_boundaries", "land_survey", "planning_zones", "control_lines", "parcels", "buildings",
               "parcel_events")


def sample_collections(collections_dir: Path | None = None) -> list[VectorCollection]:
    """The catalog entries the sample fills, in writing order."""
    vectors = {c.id: c for c in load_catalog(collections_dir or packaged("collections")).of_kind(VectorCollection)}
    missing = [cid for cid in COLLECTIONS if cid not in vectors]
    if missing:
        raise ValueError(f"the catalog lacks the vector collections {', '.join(missing)}")
    return [vectors[cid] for cid in COLLECTIONS]


def _check_fields(batch: Batch, collection: VectorCollection) -> Batch:
    """``batch``, once its columns are checked to be exactly the collection's fields."""
    got, want = set(batch.columns), set(collection.field_names)
    if got != want:
        raise ValueError(
            f"{collection.id}: generated fields {sorted(got - want)} not in the catalog, "
            f"catalog fields {sorted(want - got)} not generated"
        )
    return batch


def build_sample(
    scale: int,
    store: Store,
    progress: Callable[[str], None] | None = None,
    *,
    collections_dir: Path | None = None,
) -> dict[str, int]:
    """Generate the sample county, write it into ``store`` and prepare it to serve; returns the row
    count of each collection."""
    from server.sample.generate import generate

    collections = sample_collections(collections_dir)
    by_id = {c.id: c for c in collections}
    checked = (_check_fields(b, by_id[b.collection]) for b in generate(scale, progress))
    counts = {cid: 0 for cid in COLLECTIONS} | write_all(store.writer(collections), checked)
    if progress:
        progress("written: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
        progress("building tile overviews ...")
    store.prepare(Catalog(collections))
    return counts
