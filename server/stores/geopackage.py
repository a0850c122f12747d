"""The embedded store: one GeoPackage file, its admin tables in a SQLite file beside it.

Any GeoPackage store is one of these: a data directory's ``onemap.gpkg``, a release bundle's, or the
copy an import prepares before putting it in place.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

from server.catalog import Catalog, VectorCollection
from server.policy.admin import ADMIN_FILE, SqliteAdmin
from server.policy.labels import StoreLabel, read_gpkg_label, write_gpkg_label
from server.policy.model import Restriction
from server.sources.geopackage import GeoPackageSource
from server.sources.geopackage_tiles import build_overviews, overview_state
from server.sources.gpkg_versions import install_versioning
from server.stores.base import Progress, Store
from server.stores.batches import Batch
from server.stores.files import replace_file
from server.stores.gpkg_writer import GeoPackageWriter, open_for_edits
from server.stores.jobs import SqliteJobs
from server.stores.reader import gpkg_batches


class GeoPackageStore(Store):
    """A GeoPackage file (``path``); the admin tables live in ``onemap_admin.sqlite`` in its directory,
    so that writing the audit log never touches the data file."""

    kind = "geopackage"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @property
    def where(self) -> str:
        """The file."""
        return str(self.path)

    def missing(self) -> str | None:
        """A store that was never written."""
        if self.path.exists():
            return None
        return f"no embedded store at {self.path}; run 'onemap sample' first"

    def source(self, catalog: Catalog) -> GeoPackageSource:
        """Reads in worker threads, one read-only connection each."""
        return GeoPackageSource(self.path, catalog)

    def admin(self) -> SqliteAdmin:
        """The admin tables beside the data file."""
        return SqliteAdmin(self.path.parent / ADMIN_FILE)

    def jobs(self) -> SqliteJobs:
        """The jobs table in the admin file."""
        return SqliteJobs(self.path.parent / ADMIN_FILE)

    def writer(self, collections: list[VectorCollection]) -> GeoPackageWriter:
        """A new file, moved over this one when it finishes."""
        return GeoPackageWriter(self.path, collections)

    def batches(self, view: VectorCollection, *, restriction: Restriction) -> Iterator[Batch]:
        """The rows of ``view`` as ``restriction`` lets them out."""
        return gpkg_batches(self.path, view, restriction=restriction)

    def read_label(self) -> StoreLabel:
        """The label (a file that does not exist holds nothing)."""
        return read_gpkg_label(self.path)

    def write_label(self, label: StoreLabel) -> None:
        """Record the label in the file."""
        conn = open_for_edits(self.path)
        try:
            write_gpkg_label(conn, label)
            conn.commit()
        finally:
            conn.close()

    def prepare(self, catalog: Catalog, *, overviews: bool = True) -> list[str]:
        """Version triggers on every collection table, then the overviews, built in a copy of the file
        that then replaces it (a rename): a server reading the file meanwhile never waits on a write lock
        and moves to the new file at its next read (``GeoPackageSource`` reopens on a new inode). The
        file's write lock is held throughout, so no edit made meanwhile is lost."""
        built: list[str] = []
        with closing(sqlite3.connect(self.path, timeout=30)) as lock:
            lock.execute("BEGIN IMMEDIATE")
            replace_file(self.path, self.path, lambda tmp: built.extend(prepare_file(tmp, catalog, overviews)))
            lock.rollback()
        return built

    def fresh_overviews(self) -> frozenset[str] | None:
        """Read from the file, read-only."""
        with closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)) as conn:
            return overview_state(conn)[1]

    def load_bundle(self, gpkg: Path, catalog: Catalog, views: list[VectorCollection], label: StoreLabel,
                    say: Progress) -> None:
        """The bundle's file replaces this one atomically, with data versioning installed first (a no-op
        for bundles that carry it); the bundle's overviews and label are kept."""
        say("embedded store")
        replace_file(gpkg, self.path, lambda tmp: prepare_file(tmp, Catalog(views), overviews=False))


def prepare_file(path: Path, catalog: Catalog, overviews: bool) -> list[str]:
    """Version triggers and (unless ``overviews`` is false) the overviews, in place in the file ``path``."""
    with closing(sqlite3.connect(path)) as conn:
        install_versioning(conn, catalog)
        conn.commit()
        return build_overviews(conn, catalog) if overviews else []
