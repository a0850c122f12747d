"""Write the static STAC catalog (the ``stac/`` folder): built with pystac, validated, self-contained.

Links between catalog, collections and items are relative; asset and tile links point at the
server (``--base-url``, default ``http://localhost:8000``). Run after ``onemap sample``::

    python -m server.stac_api.static [--data-dir data] [--out stac] [--base-url URL]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pystac

from server.catalog import load_catalog
from server.settings import Settings
from server.stac_catalog.build import build_catalog
from server.stac_catalog.validate import validate_tree

DEFAULT_BASE = "http://localhost:8000"


class InvalidCatalog(Exception):
    """The built catalog did not validate; the message lists every problem."""


def write_static_catalog(settings: Settings, out_dir: Path, base_url: str = DEFAULT_BASE) -> Path:
    """Build, validate and save the catalog under ``out_dir``; returns the root ``catalog.json``."""
    root = build_catalog(load_catalog(settings.collections_dir), settings.data_dir, base_url.rstrip("/"))
    out_dir = Path(out_dir)
    root.normalize_hrefs(str(out_dir))
    problems = validate_tree(root)
    if problems:
        raise InvalidCatalog("\n".join(problems))
    for old in [p for p in out_dir.glob("*") if p.is_dir()]:
        shutil.rmtree(old)  # collections written by an earlier run
    root.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return out_dir / "catalog.json"


def main(argv: list[str] | None = None) -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description="Write the static STAC catalog of the raster holdings.")
    parser.add_argument("--data-dir", type=Path, default=None, help="data directory holding rasters/")
    parser.add_argument("--out", type=Path, default=Path("stac"), help="output folder (default ./stac)")
    parser.add_argument("--base-url", default=DEFAULT_BASE, help="public root URL of the server")
    args = parser.parse_args(argv)
    settings = Settings(data_dir=args.data_dir) if args.data_dir else Settings()
    path = write_static_catalog(settings, args.out, args.base_url)
    print(f"wrote {path} (validated)")


if __name__ == "__main__":
    main()
