"""Where the label glyphs built by ``server.viewer.glyphs`` are found when a style asks for them."""

from __future__ import annotations

import re
from pathlib import Path

RANGE_SIZE = 256  # code points per glyph PBF
RANGE_NAME = re.compile(r"^(\d{1,5})-(\d{1,5})$")


def glyph_file(glyphs_dir: Path, fontstack: str, range_name: str) -> Path | None:
    """The stored PBF of a request ``/fonts/{fontstack}/{range}.pbf``: the first font of the
    comma-separated stack that was built; None when none was or the range is not one of 256."""
    match = RANGE_NAME.match(range_name)
    if not match or int(match[1]) % RANGE_SIZE or int(match[2]) != int(match[1]) + RANGE_SIZE - 1:
        return None
    for name in (n.strip() for n in fontstack.split(",")):
        if not name or "/" in name or name.startswith("."):
            continue
        path = glyphs_dir / name / f"{range_name}.pbf"
        if path.is_file():
            return path
    return None
