"""The PostGIS store: collections in tables, the admin tables and the label in the same database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg import sql

from server.catalog import Catalog, VectorCollection
from server.policy.admin import PostgresAdmin
from server.policy.labels import StoreLabel, read_pg_label, write_pg_label
from server.policy.model import Restriction
from server.settings import Settings
from server.sources.postgis import PostGISSource
from server.sources.postgis_overviews import build_overviews, fresh_collections
from server.sources.postgis_schema import install_versioning
from server.sources.tile_overviews import PG_SCHEMA
from server.stores.base import Progress, Store
from server.stores.batches import Batch, write_all
from server.stores.geopackage import GeoPackageStore
from server.stores.jobs import PostgresJobs
from server.stores.pg_writer import PostGISWriter
from server.stores.reader import pg_batches


class PostGISStore(Store):
    """The database at ``settings.database_url`` (pool size and statement timeout from ``settings``)."""

    kind = "postgis"

    def __init__(self, settings: Settings) -> None:
        if not settings.database_url:
            raise ValueError("a PostGIS store needs a database URL")
        self.settings = settings
        self.url = settings.database_url

    @property
    def where(self) -> str:
        """The database (its URL may carry a password: not shown)."""
        return "PostGIS"

    def source(self, catalog: Catalog) -> PostGISSource:
        """Reads on the pool of this worker."""
        return PostGISSource(self.settings, catalog)

    def admin(self) -> PostgresAdmin:
        """The admin tables, on a connection of their own."""
        return PostgresAdmin(self.url)

    def jobs(self) -> PostgresJobs:
        """The jobs table in the database."""
        return PostgresJobs(self.url)

    def writer(self, collections: list[VectorCollection]) -> PostGISWriter:
        """Tables replaced in one transaction when it finishes."""
        return PostGISWriter(self.url, collections)

    def batches(self, view: VectorCollection, *, restriction: Restriction) -> Iterator[Batch]:
        """The rows of ``view`` (a server-side cursor) as ``restriction`` lets them out."""
        return pg_batches(self.url, view, restriction=restriction)

    def read_label(self) -> StoreLabel:
        """The label table's rows (none: a master store)."""
        return read_pg_label(self.url)

    def write_label(self, label: StoreLabel) -> None:
        """Record the label in one transaction."""
        with psycopg.connect(self.url) as conn, conn.transaction():
            write_pg_label(conn, label)

    def prepare(self, catalog: Catalog, *, overviews: bool = True) -> list[str]:
        """Version triggers on every collection table, then the overviews in schema ``onemap_tiles``."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            install_versioning(conn, catalog)
            return build_overviews(conn, catalog) if overviews else []

    def fresh_overviews(self) -> frozenset[str] | None:
        """From the recorded overview and data versions."""
        with psycopg.connect(self.url) as conn:
            return fresh_collections(conn)

    def load_bundle(self, gpkg: Path, catalog: Catalog, views: list[VectorCollection], label: StoreLabel,
                    say: Progress) -> None:
        """The tables are reloaded through the writer (typed tables, COPY, keys, GiST indexes), tables of
        collections not in the bundle are dropped, then data versioning, overviews and the label."""
        bundle = GeoPackageStore(gpkg)

        def batches() -> Iterator[Batch]:
            for v in views:
                say(f"vector {v.id}")
                # the bundle holds what its edition may
                yield from bundle.batches(v, restriction=Restriction.unrestricted(v))

        write_all(self.writer(views), batches())
        self._drop_others(catalog, {v.id for v in views})
        self.prepare(Catalog(views))
        self.write_label(label)

    def _drop_others(self, catalog: Catalog, kept: set[str]) -> None:
        """Drop the tables (and overview tables) of the catalog's vector collections not in ``kept``."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            for c in catalog.of_kind(VectorCollection):
                if c.id not in kept:
                    conn.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(c.source.table)))
                    stale = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename LIKE %s",
                                         [PG_SCHEMA, f"{c.source.table}\\_z%"]).fetchall()
                    for (name,) in stale:
                        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(PG_SCHEMA, name)))
