"""The release manifest (``manifest.json``): what a bundle holds and the checksums that prove it.

Every file of the bundle except the manifest is listed with its size and SHA-256; a bundle with a
missing, changed or unlisted file is refused as a whole.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import orjson

MANIFEST = "manifest.json"
FORMAT = "onemap-release/1"
CHUNK = 1 << 20


class BundleError(Exception):
    """The bundle cannot be built or imported; the message says what is wrong."""


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def bundle_files(root: Path) -> list[str]:
    """Every file under ``root`` except the manifest, as sorted POSIX relative paths."""
    root = Path(root)
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_file() and not (p.parent == root and p.name == MANIFEST))


def checksums(root: Path) -> dict[str, dict[str, Any]]:
    """``{relative path: {"sha256", "bytes"}}`` for every file of the bundle."""
    return {rel: {"sha256": sha256_file(root / rel), "bytes": (root / rel).stat().st_size}
            for rel in bundle_files(root)}


def write_manifest(root: Path, doc: dict[str, Any]) -> Path:
    """Add the checksums and the format to ``doc`` and write it as ``manifest.json``."""
    doc = {"format": FORMAT, **doc, "files": checksums(root)}
    path = root / MANIFEST
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    return path


def read_manifest(root: Path) -> dict[str, Any]:
    """The manifest of a bundle (``BundleError`` when absent or not one of ours)."""
    path = Path(root) / MANIFEST
    try:
        doc = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise BundleError(f"{root}: no {MANIFEST}; not a release bundle") from None
    except orjson.JSONDecodeError:
        raise BundleError(f"{path}: not valid JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise BundleError(f"{path}: format is not {FORMAT}")
    return doc


def verify(root: Path, doc: dict[str, Any]) -> None:
    """Every listed file present with its size and checksum, and no file that is not listed."""
    listed: dict[str, dict[str, Any]] = doc.get("files") or {}
    present = set(bundle_files(root))
    problems = [f"unlisted file {rel}" for rel in sorted(present - set(listed))]
    for rel, want in sorted(listed.items()):
        path = root / rel
        if rel not in present:
            problems.append(f"missing file {rel}")
        elif path.stat().st_size != want.get("bytes") or sha256_file(path) != want.get("sha256"):
            problems.append(f"checksum mismatch for {rel}")
    if problems:
        raise BundleError("the bundle does not match its manifest: " + "; ".join(problems))
