"""``onemap imagery add <collection> <datetime> <files...>``: register COG sheets of an acquisition.

The files join the mosaic collection's sheet index (``server.sheets``) as the sheets of the
acquisition acquired at ``datetime`` (the catalog's acquisition of that time, or ``--id``, or a new
one ``<collection>_<yyyymmdd>``). Files outside the data directory are copied into the acquisition's
folder first (written aside and renamed); a sheet of the same name is replaced. Every file is checked
before anything is copied or registered: one with another CRS or band count than the acquisition
refuses the whole command. Registering moves the acquisition's data version, so cached tiles over
it are produced afresh.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from server.assets import sheet_index
from server.catalog import CatalogError, RasterCollection, load_catalog
from server.errors import OGCError
from server.params import parse_instant
from server.settings import Settings
from server.sheets import SheetError


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """The ``imagery`` command group (``imagery add``)."""
    p = sub.add_parser("imagery", help="manage imagery mosaics (acquisitions of COG sheets)")
    group = p.add_subparsers(dest="imagery_command", required=True)
    a = group.add_parser("add", help="register COG sheets of an acquisition")
    a.add_argument("collection", help="the mosaic collection id (e.g. imagery)")
    a.add_argument("datetime", help="acquisition time, RFC 3339 (2024-05-18T02:35:00Z) or a date")
    a.add_argument("files", nargs="+", type=Path, help="COG sheets (the file name without .tif names the sheet)")
    a.add_argument("--id", dest="acquisition", help="acquisition id (default: the catalog's, or <collection>_<date>)")
    a.add_argument("--data-dir", help="the data directory (default: ONEMAP_DATA_DIR)")
    return p


def _folder(c: RasterCollection, acquisition: str) -> str:
    declared = next((a.path for a in c.raster.assets if a.id == acquisition), None)
    return declared or f"{Path(c.raster.sheets or 'rasters').parent}/{acquisition}"


def _place(data_dir: Path, folder: str, path: Path) -> tuple[str, str]:
    """(sheet name, path relative to the data dir) of a file, copied into ``folder`` if outside."""
    root = data_dir.resolve()
    src = path.resolve()
    if root in src.parents:
        return src.stem, str(src.relative_to(root))
    dst = root / folder / f"{src.stem}.tif"
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return src.stem, str(dst.relative_to(root))


def add(settings: Settings, collection_id: str, when: str, files: list[Path], acquisition: str | None) -> str:
    """Register ``files`` as sheets; returns a one-line summary. ``SheetError``/``ValueError`` on refusal."""
    catalog = load_catalog(settings.collections_dir)
    c = next((c for c in catalog.of_kind(RasterCollection) if c.id == collection_id), None)
    if c is None:
        raise ValueError(f"no raster collection '{collection_id}' in {settings.collections_dir}")
    index = sheet_index(c, settings.data_dir)
    if index is None:
        raise ValueError(f"collection '{collection_id}' is not a mosaic (its catalog file declares no raster.sheets)")
    instant = parse_instant(when).strftime("%Y-%m-%dT%H:%M:%SZ")
    declared = next((a.id for a in c.raster.assets if parse_instant(a.datetime) == parse_instant(when)), None)
    acq = acquisition or declared or f"{c.id}_{instant[:10].replace('-', '')}"
    index.check(acq, instant, files)
    placed = [_place(settings.data_dir, _folder(c, acq), f) for f in files]
    count = index.add(settings.data_dir, acq, instant, placed)
    note = "" if acq in {a.id for a in c.raster.assets} else " (not declared in the catalog file: add it there " \
        "to list it as an acquisition in the viewer)"
    return f"{count} sheet(s) registered in acquisition {acq} ({instant}) of {c.id}{note}"


def run(args: argparse.Namespace, settings: Settings) -> int:
    """``onemap imagery add``: print the summary, or one clear error line and exit 2."""
    try:
        print(add(settings, args.collection, args.datetime, args.files, args.acquisition))
    except (SheetError, ValueError, CatalogError, OGCError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
