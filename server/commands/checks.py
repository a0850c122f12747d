"""Configuration checks run before serving (``onemap serve``) and by ``onemap check-config``.

``onemap serve`` runs ``startup_problems`` in the parent process, before any worker is forked: a
malformed URL, a bad collection file, an unknown edition or a store the edition may not serve stops
the whole server with one message and a non-zero exit, whatever ``--workers`` says (a worker that
fails its start-up would otherwise be restarted forever, or leave the parent serving nothing).
``onemap check-config`` also opens every raster asset and reads the embedded store's pages.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import ValidationError

from server.assets import asset_location, file_assets
from server.catalog import Catalog, CatalogError, RasterCollection, load_catalog
from server.policy.editions import EditionError, check_against_catalog, load_editions
from server.policy.fingerprint import rules_problem
from server.policy.labels import label_problem
from server.policy.resolve import PolicyResolver
from server.settings import Settings
from server.stores import open_store


class ConfigError(Exception):
    """The configuration cannot be served; the message names the variable or file at fault."""


def build_settings(make: Callable[[], Settings]) -> Settings:
    """``make()``, with a validation error turned into ``ConfigError`` naming each environment variable."""
    try:
        return make()
    except ValidationError as exc:
        lines = []
        for e in exc.errors():
            name = str(e["loc"][0]) if e["loc"] else "?"
            lines.append(f"ONEMAP_{name.upper()}: {e['msg']} (got {str(e.get('input'))[:80]!r})")
        raise ConfigError("invalid settings:\n  " + "\n  ".join(lines)) from None


def url_problems(settings: Settings) -> list[str]:
    """Malformed URLs among the settings, each naming its variable (the URL itself is not echoed:
    it may hold a password)."""
    from psycopg.conninfo import conninfo_to_dict
    from redis.connection import parse_url

    problems = []
    if settings.redis_url:
        try:
            parse_url(settings.redis_url)
        except (ValueError, TypeError) as exc:
            problems.append(f"ONEMAP_REDIS_URL: not a Redis URL ({exc})")
    if settings.database_url:
        try:
            ports = str(conninfo_to_dict(settings.database_url).get("port") or "5432").split(",")
            if not all(p.isdigit() and 0 < int(p) < 65536 for p in ports):
                raise ValueError(f"port {','.join(ports)!r} is not a port number")
        except Exception as exc:  # psycopg.ProgrammingError: the message tells what is wrong
            problems.append(f"ONEMAP_DATABASE_URL: not a PostgreSQL connection URL ({_first_line(exc)})")
    if settings.base_url:
        parts = urlsplit(settings.base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            problems.append(f"ONEMAP_BASE_URL: '{settings.base_url}' is not an http(s) URL")
    return problems


def _policy_problems(settings: Settings, catalog: Catalog) -> list[str]:
    try:
        editions = load_editions(settings.config_dir)
        problems = check_against_catalog(editions, catalog)
        if problems:
            return problems
        resolver = PolicyResolver(catalog, editions, settings.edition)
    except EditionError as exc:
        text = str(exc)
        if text.startswith(f"edition '{settings.edition}' is not defined"):
            text = f"ONEMAP_EDITION: {text}"
        return [f"{settings.config_dir}: {line}" if not line.startswith("ONEMAP_") else line
                for line in text.splitlines()]
    store = open_store(settings)
    try:
        label = store.read_label()
    except Exception:  # an unreachable database: the server starts and answers 503 until it is back
        return []
    problem = label_problem(label, settings.edition, resolver.spec) or rules_problem(
        label, catalog, editions, settings.edition, resolver.base)
    return [f"{store.where}: {problem}"] if problem else []


def startup_problems(settings: Settings) -> list[str]:
    """Everything that would stop a worker's start-up, found without starting one."""
    problems = url_problems(settings)
    try:
        catalog = load_catalog(settings.collections_dir)
    except CatalogError as exc:
        return [*problems, *(f"{settings.collections_dir}/{line}" for line in str(exc).splitlines())]
    missing = open_store(settings).missing()
    if missing:
        return [*problems, missing]
    return problems + _policy_problems(settings, catalog)


def raster_problems(settings: Settings, catalog: Catalog) -> list[str]:
    """Every registered raster file (an asset, or a mosaic's sheet) that is missing or cannot be read
    (header and a block of data)."""
    problems = []
    for c in catalog.of_kind(RasterCollection):
        try:
            assets = file_assets(c, settings.data_dir)  # a mosaic's files are its sheets
        except Exception as exc:
            problems.append(f"collection '{c.id}': sheet index {c.raster.sheets} not readable: {_first_line(exc)}")
            continue
        for asset in assets:
            try:
                read_probe(asset_location(settings.data_dir, asset))
            except Exception as exc:
                problems.append(f"collection '{c.id}', asset '{asset.id}' ({asset.path}): {_first_line(exc)}")
    return problems


def read_probe(location: str) -> None:
    """Open a raster and read its first and last blocks (a truncated or damaged file fails here)."""
    import rasterio
    from rasterio.windows import Window

    with rasterio.open(location) as src:
        size = 256
        src.read(1, window=Window(0, 0, min(size, src.width), min(size, src.height)))
        col, row = max(0, src.width - size), max(0, src.height - size)
        src.read(1, window=Window(col, row, src.width - col, src.height - row))


def gpkg_problems(path: Path) -> list[str]:
    """Pages of the embedded store SQLite cannot read (``PRAGMA quick_check``), or a file that is not one."""
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            rows = [r[0] for r in conn.execute("PRAGMA quick_check(20)")]
    except sqlite3.DatabaseError as exc:
        return [f"{path}: not readable as a GeoPackage ({exc})"]
    return [] if rows == ["ok"] else [f"{path}: damaged: {r}" for r in rows]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _store_problems(settings: Settings, catalog: Catalog) -> list[str]:
    store = open_store(settings)
    missing = store.missing()
    if missing:
        return [missing]
    problems = gpkg_problems(settings.gpkg_path) if store.kind == "geopackage" else []
    if problems:
        return problems

    async def check() -> list[str]:
        source = store.source(catalog)
        await source.open()
        try:
            return await source.check()
        finally:
            await source.close()

    try:
        return asyncio.run(check())
    except Exception as exc:  # the store itself cannot be opened
        return [f"{store.where}: not readable ({_first_line(exc)})"]


def config_report(settings: Settings) -> list[tuple[str, list[str]]]:
    """``onemap check-config``: the problems of each part of the configuration, by section."""
    sections: list[tuple[str, list[str]]] = [("settings", url_problems(settings))]
    try:
        catalog = load_catalog(settings.collections_dir)
    except CatalogError as exc:
        return [*sections, ("catalog", [f"{settings.collections_dir}/{line}" for line in str(exc).splitlines()])]
    sections.append(("catalog", []))
    store = _store_problems(settings, catalog)
    sections.append(("store", store))
    if not store:
        sections.append(("editions", _policy_problems(settings, catalog)))
    sections.append(("rasters", raster_problems(settings, catalog)))
    return sections
