"""The deterministic synthetic sample county (``onemap sample``).

``build_sample(scale, data_dir)`` writes ``data_dir/onemap.gpkg``; with a ``database_url`` it loads
PostGIS instead. ``scale`` is the number of parcels; every other layer grows with it. The same
scale always gives the same rows (and, for the GeoPackage, the same bytes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from server.catalog import Catalog, VectorCollection, load_catalog
from server.settings import ROOT
from server.sources.prepare import prepare_for_serving

if TYPE_CHECKING:
    from server.sample.generate import Batch

DEFAULT_SCALE = 20_000
COLLECTIONS = ("admin_boundaries", "land_survey", "planning_zones", "control_lines", "parcels", "buildings")
GPKG_NAME = "onemap.gpkg"


def sample_collections(collections_dir: Path | None = None) -> list[VectorCollection]:
    """The catalog entries the sample fills, in writing order."""
    vectors = {c.id: c for c in load_catalog(collections_dir or ROOT / "collections").of_kind(VectorCollection)}
    missing = [cid for cid in COLLECTIONS if cid not in vectors]
    if missing:
        raise ValueError(f"the catalog lacks the vector collections {', '.join(missing)}")
    return [vectors[cid] for cid in COLLECTIONS]


def write_all(writer, batches: Iterable[Batch]) -> dict[str, int]:
    """Write every batch, then finish; on any failure abort, so nothing half-written stays.

    ``writer`` is a ``GeoPackageWriter`` or ``PostGISWriter``. Returns the rows written per collection.
    """
    counts: dict[str, int] = {}
    try:
        for batch in batches:
            writer.write(batch)
            counts[batch.collection] = counts.get(batch.collection, 0) + len(batch)
        writer.finish()
    except BaseException:
        writer.abort()
        raise
    return counts


def _check_fields(batch, collection: VectorCollection) -> None:
    got, want = set(batch.columns), set(collection.field_names)
    if got != want:
        raise ValueError(
            f"{collection.id}: generated fields {sorted(got - want)} not in the catalog, "
            f"catalog fields {sorted(want - got)} not generated"
        )


def build_sample(
    scale: int,
    data_dir: Path,
    database_url: str | None = None,
    progress: Callable[[str], None] | None = None,
    *,
    schema: str = "public",
    collections_dir: Path | None = None,
) -> dict[str, int]:
    """Generate the sample county and write it; returns the row count of each collection."""
    from server.sample.generate import generate

    collections = sample_collections(collections_dir)
    by_id = {c.id: c for c in collections}
    if database_url:
        from server.sample.postgis import PostGISWriter

        writer = PostGISWriter(database_url, collections, schema=schema)
    else:
        from server.sample.geopackage import GeoPackageWriter

        writer = GeoPackageWriter(Path(data_dir) / GPKG_NAME, collections)
    checked = (_check_fields(b, by_id[b.collection]) or b for b in generate(scale, progress))
    counts = {cid: 0 for cid in COLLECTIONS} | write_all(writer, checked)
    if progress:
        progress("written: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
        progress("building tile overviews ...")
    prepare_for_serving(Catalog(collections), Path(data_dir) / GPKG_NAME, database_url)
    return counts
