"""``onemap release`` and ``onemap import`` (``server/cli.py`` only wires them in)."""

from __future__ import annotations

import sys
from pathlib import Path

from server.policy.editions import EditionError
from server.release.bundle import DEFAULT_BASE, build_release
from server.release.importer import import_release
from server.release.manifest import BundleError
from server.settings import Settings
from server.stores import open_store


def add_parsers(sub, release, import_) -> None:
    """The ``release`` and ``import`` subcommands; ``release``/``import_`` are the cli's command functions."""
    r = sub.add_parser("release", help="build a desensitized release bundle for a lower edition")
    r.add_argument("--edition", required=True, help="the edition the bundle is for (internet, government...)")
    r.add_argument("--out", required=True, help="a new or empty directory for the bundle")
    r.add_argument("--base-url", default=DEFAULT_BASE, help="server URL the bundle's STAC links point at")
    r.add_argument("--no-overviews", dest="overviews", action="store_false",
                   help="leave out the tile overviews (smaller, faster; tiles generalize on the fly)")
    r.add_argument("--database-url", help="read from this PostGIS instead of the embedded store")
    r.add_argument("--data-dir", help="directory of the embedded store and rasters")
    r.set_defaults(func=release)

    i = sub.add_parser("import", help="verify a release bundle and load it into this store")
    i.add_argument("bundle", help="the bundle directory")
    i.add_argument("--edition", help="this server's edition (default: ONEMAP_EDITION)")
    i.add_argument("--database-url", help="load into this PostGIS instead of the embedded store")
    i.add_argument("--data-dir", help="directory of the embedded store and rasters")
    i.set_defaults(func=import_)


def _say(message: str) -> None:
    print(message, flush=True)


def run_release(args, settings: Settings) -> int:
    """Build the bundle and print its per-collection counts."""
    try:
        doc = build_release(settings, args.edition, Path(args.out), args.base_url, progress=_say,
                            overviews=args.overviews)
    except (BundleError, EditionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for cid, entry in doc["collections"].items():
        what = f"{entry['features']:,} features" if entry["kind"] == "vector" else f"{len(entry['assets'])} COG(s)"
        print(f"{cid:>18}: {what}")
    print(f"release for '{doc['edition']}' (rules {doc['rules_version']}) written to {args.out}")
    return 0


def run_import(args, settings: Settings) -> int:
    """Verify and load the bundle."""
    if args.edition:
        settings = settings.model_copy(update={"edition": args.edition})
    try:
        doc = import_release(settings, Path(args.bundle), progress=_say)
    except (BundleError, EditionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"imported the '{doc['edition']}' release of {doc['created']} into {open_store(settings).where}")
    return 0
