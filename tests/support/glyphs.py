"""Label glyphs for tests that draw the styles: only the characters the sample's labels use, built with
the same builder as ``make glyphs`` from Debian's CJK font (the whole font takes minutes)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from server.viewer.glyphs import build, default_font, ranges_of

LABEL_TEXT = {"admin_boundaries": "name", "control_lines": "line_name"}


def sample_glyphs(gpkg: Path, out: Path) -> Path:
    """Build into ``out`` the glyph ranges of every label of the store at ``gpkg`` (names, and ASCII
    for codes); returns ``out`` (for ``glyphs_dir``)."""
    found = default_font()
    if found is None:
        pytest.fail("no CJK font for the map labels: apt-get install fonts-wqy-zenhei (or run 'make test')")
    with sqlite3.connect(gpkg) as db:
        text = "".join(v for table, field in LABEL_TEXT.items()
                       for (v,) in db.execute(f"SELECT {field} FROM {table}") if v)  # noqa: S608 - constants
    text += "".join(map(chr, range(32, 127)))
    build(found[0], out, found[1], ranges_of(text), only={ord(ch) for ch in text})
    return out
