"""One store object per backend: everything the server and its commands do with the data store.

A ``Store`` gives the reads (the ``Source``), the writes (a writer that replaces tables), the admin
tables (API keys, audit), the store's label, the preparation for serving (data versioning, tile
overviews) and batch reads as an edition may see them (releases). Callers take a store and never ask
which backend it is; ``server.stores.open_store`` is the one place that decides.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from server.catalog import Catalog, VectorCollection
    from server.policy.admin import AdminStore
    from server.policy.labels import StoreLabel
    from server.policy.model import Restriction
    from server.sources.base import Source
    from server.stores.batches import Batch, Writer
    from server.stores.jobs import PostgresJobs, SqliteJobs

GPKG_NAME = "onemap.gpkg"  # the embedded store's file, in a data directory and in a release bundle
Progress = Callable[[str], None]


class Store(ABC):
    """The data store of one backend, and the parts made from it."""

    kind: str  # "geopackage" or "postgis", as a release manifest records its source

    @property
    @abstractmethod
    def where(self) -> str:
        """Where the data is, for messages: the file, or ``PostGIS``."""

    def missing(self) -> str | None:
        """Why there is nothing to serve, known without connecting (a missing file); None otherwise."""
        return None

    @abstractmethod
    def source(self, catalog: Catalog) -> Source:
        """The reads the routes use (open and close it in the app's lifespan)."""

    @abstractmethod
    def admin(self) -> AdminStore:
        """The admin tables: API keys and the audit log (the caller closes it)."""

    @abstractmethod
    def jobs(self) -> SqliteJobs | PostgresJobs:
        """The process jobs table, in the admin part of the store (see ``server.stores.jobs``)."""

    @contextmanager
    def opened_admin(self) -> Iterator[AdminStore]:
        """The admin tables set up, closed when the block ends (for one-off commands)."""
        admin = self.admin()
        try:
            admin.setup()
            yield admin
        finally:
            admin.close()

    @abstractmethod
    def writer(self, collections: list[VectorCollection]) -> Writer:
        """A writer that replaces the tables of ``collections`` when it finishes."""

    @abstractmethod
    def batches(self, view: VectorCollection, *, restriction: Restriction) -> Iterator[Batch]:
        """The rows of ``view`` (its fields only) in batches, desensitized by ``restriction``."""

    @abstractmethod
    def read_label(self) -> StoreLabel:
        """Which edition's data the store holds (an unlabelled store is a master store)."""

    @abstractmethod
    def write_label(self, label: StoreLabel) -> None:
        """Record the store's label, replacing any earlier one."""

    @abstractmethod
    def prepare(self, catalog: Catalog, *, overviews: bool = True) -> list[str]:
        """Data versioning and, unless ``overviews`` is false, the tile overviews of ``catalog``'s
        collections, with the data version they were built from (both idempotent). Returns the
        overview tables built. Run after a load and again after edits (``onemap overviews``)."""

    @abstractmethod
    def fresh_overviews(self) -> frozenset[str] | None:
        """Collections whose overviews were built from their current data version (None: not recorded)."""

    @abstractmethod
    def load_bundle(self, gpkg: Path, catalog: Catalog, views: list[VectorCollection], label: StoreLabel,
                    say: Progress) -> None:
        """Make the store hold a release bundle's vector data: the collections ``views`` of the bundle's
        GeoPackage ``gpkg``, nothing of the other collections of ``catalog``, and the bundle's label."""
