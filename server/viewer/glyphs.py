"""Map label glyphs: signed-distance-field glyph PBFs (the format MapLibre's ``glyphs`` URL serves),
built once from a font file and served as stored files from ``settings.glyphs_dir``.

``python -m server.viewer.glyphs`` (``make glyphs``, part of ``make install``) renders every glyph of
a CJK font from Debian (``fonts-noto-cjk`` or ``fonts-wqy-zenhei``) with FreeType (freetype-py),
turns each into a signed distance field (scipy's Euclidean distance transform) and writes
``<glyphs_dir>/<font name>/<start>-<end>.pbf`` for all 256 ranges of the Basic Multilingual Plane,
in the protobuf schema MapLibre reads (written with the protobuf library). Why not npm's fontnik:
it needs a native build against Boost and FreeType; MapLibre's font-maker is a web page, not a tool.

The SDF follows MapLibre's conventions: glyphs drawn at 24 px with a 3 px buffer; a byte of 192
(of 255) is the glyph's edge, higher inside, falling by 255/8 per pixel (``cutoff`` 0.25, ``radius`` 8).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import freetype  # type: ignore[import-untyped]
import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory  # type: ignore[import-untyped]
from scipy.ndimage import distance_transform_edt  # type: ignore[import-untyped]

from server.viewer.fonts import RANGE_SIZE

FONT_SIZE = 24
BUFFER = 3
RADIUS = 8.0
CUTOFF = 0.25
BMP_RANGES = 256  # ranges 0-255 ... 65280-65535
# Debian's CJK fonts, preferred first: (file, face family); either package gives Chinese labels
DEBIAN_FONTS = (
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", "Noto Sans CJK SC"),
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", "WenQuanYi Zen Hei"),
)


def _glyph_classes() -> tuple[Any, Any]:
    """The message classes of MapLibre's glyphs.proto (``glyphs`` > ``fontstack`` > ``glyph``)."""
    proto = descriptor_pb2.FileDescriptorProto(name="onemap_glyphs.proto", package="llmr.glyphs", syntax="proto2")
    T = descriptor_pb2.FieldDescriptorProto
    glyph = proto.message_type.add(name="glyph")
    for number, (name, kind) in enumerate((("id", T.TYPE_UINT32), ("bitmap", T.TYPE_BYTES),
                                           ("width", T.TYPE_UINT32), ("height", T.TYPE_UINT32),
                                           ("left", T.TYPE_SINT32), ("top", T.TYPE_SINT32),
                                           ("advance", T.TYPE_UINT32)), start=1):
        glyph.field.add(name=name, number=number, type=kind, label=T.LABEL_OPTIONAL)
    stack = proto.message_type.add(name="fontstack")
    stack.field.add(name="name", number=1, type=T.TYPE_STRING, label=T.LABEL_OPTIONAL)
    stack.field.add(name="range", number=2, type=T.TYPE_STRING, label=T.LABEL_OPTIONAL)
    stack.field.add(name="glyphs", number=3, type=T.TYPE_MESSAGE, label=T.LABEL_REPEATED,
                    type_name=".llmr.glyphs.glyph")
    glyphs = proto.message_type.add(name="glyphs")
    glyphs.field.add(name="stacks", number=1, type=T.TYPE_MESSAGE, label=T.LABEL_REPEATED,
                     type_name=".llmr.glyphs.fontstack")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return (message_factory.GetMessageClass(pool.FindMessageTypeByName("llmr.glyphs.glyphs")),
            message_factory.GetMessageClass(pool.FindMessageTypeByName("llmr.glyphs.glyph")))


Glyphs, Glyph = _glyph_classes()


def sdf(coverage: np.ndarray) -> np.ndarray:
    """The SDF bytes of a glyph's coverage (0-255, rows x cols), with the buffer added around it."""
    inside = np.zeros((coverage.shape[0] + 2 * BUFFER, coverage.shape[1] + 2 * BUFFER), dtype=bool)
    inside[BUFFER:-BUFFER, BUFFER:-BUFFER] = coverage >= 128
    outside_dist = distance_transform_edt(~inside)  # pixels outside: distance to the glyph
    inside_dist = distance_transform_edt(inside)  # pixels inside: distance to the outside
    signed = np.where(inside, 0.5 - inside_dist, outside_dist - 0.5)
    return np.clip(np.round(255 - 255 * (signed / RADIUS + CUTOFF)), 0, 255).astype(np.uint8)


def open_face(path: Path, family: str | None = None) -> freetype.Face:
    """The face of a font file (a collection: the face whose family is ``family``), set to 24 px."""
    face = freetype.Face(str(path))
    if family is not None:
        for index in range(face.num_faces):
            candidate = freetype.Face(str(path), index)
            if candidate.family_name.decode() == family:
                face = candidate
                break
    face.set_pixel_sizes(0, FONT_SIZE)
    return face


def font_name(face: freetype.Face) -> str:
    """The font name styles put in ``text-font``: family and style, e.g. ``WenQuanYi Zen Hei Regular``."""
    return f"{face.family_name.decode()} {face.style_name.decode()}"


def render_glyph(face: freetype.Face, code: int) -> Any | None:
    """One glyph message (SDF bitmap and metrics), or None when the font has no glyph for ``code``."""
    if face.get_char_index(code) == 0:
        return None
    face.load_char(code, freetype.FT_LOAD_RENDER | freetype.FT_LOAD_NO_HINTING)
    slot = face.glyph
    bitmap = slot.bitmap
    ascender = face.size.ascender / 64.0
    out = Glyph(id=code, width=bitmap.width, height=bitmap.rows, left=slot.bitmap_left,
                top=round(slot.bitmap_top - ascender), advance=round(slot.advance.x / 64.0))
    if bitmap.width and bitmap.rows:
        raw = bitmap._FT_Bitmap.buffer  # the rendered bytes, read in place (bitmap.buffer makes a list)
        rows = np.ctypeslib.as_array(raw, shape=(bitmap.rows, bitmap.pitch))[:, : bitmap.width]
        out.bitmap = sdf(rows).tobytes()
    return out


def range_pbf(face: freetype.Face, name: str, start: int, only: set[int] | None = None) -> bytes:
    """The PBF of one range of 256 code points (empty of glyphs where the font has none); ``only``
    keeps just those code points (a subset build)."""
    end = start + RANGE_SIZE - 1
    doc = Glyphs()
    stack = doc.stacks.add(name=name, range=f"{start}-{end}")
    for code in range(start, end + 1):
        glyph = None if only is not None and code not in only else render_glyph(face, code)
        if glyph is not None:
            stack.glyphs.append(glyph)
    return doc.SerializeToString()


def build(font: Path, out_dir: Path, family: str | None = None, ranges: Iterable[int] | None = None,
          only: set[int] | None = None) -> Path:
    """Write the glyph PBFs of ``font`` (the given range starts, else the whole BMP; only the code
    points ``only`` when given) under ``out_dir/<font name>/``; returns that folder."""
    face = open_face(font, family)
    name = font_name(face)
    target = out_dir / name
    target.mkdir(parents=True, exist_ok=True)
    starts = sorted(set(ranges)) if ranges is not None else [i * RANGE_SIZE for i in range(BMP_RANGES)]
    for start in starts:
        part = target / f"{start}-{start + RANGE_SIZE - 1}.pbf"
        tmp = part.with_suffix(".tmp")
        tmp.write_bytes(range_pbf(face, name, start, only))
        tmp.replace(part)
    return target


def ranges_of(text: str) -> set[int]:
    """The range starts holding the characters of ``text``."""
    return {ord(ch) // RANGE_SIZE * RANGE_SIZE for ch in text}


def default_font() -> tuple[Path, str] | None:
    """The first Debian CJK font installed, with its face family."""
    for path, family in DEBIAN_FONTS:
        if Path(path).is_file():
            return Path(path), family
    return None


def main(argv: list[str] | None = None) -> int:
    """``python -m server.viewer.glyphs [--font FILE] [--out DIR]``: build the label glyphs."""
    parser = argparse.ArgumentParser(description="Build SDF glyph PBFs for map labels from a CJK font.")
    parser.add_argument("--font", type=Path, help="a font file (default: Debian's Noto Sans CJK, else WenQuanYi)")
    parser.add_argument("--family", help="the face of a font collection, by family name")
    parser.add_argument("--out", type=Path, default=Path("data/fonts"), help="the glyphs folder (ONEMAP_GLYPHS_DIR)")
    parser.add_argument("--ranges", help="comma-separated range starts (multiples of 256); default: all of the BMP")
    args = parser.parse_args(argv)
    found = (args.font, args.family) if args.font else default_font()
    if found is None:
        parser.error("no CJK font found: apt-get install fonts-noto-cjk (or fonts-wqy-zenhei), or pass --font")
    starts = [int(x) for x in args.ranges.split(",")] if args.ranges else None
    if starts is not None and any(s % RANGE_SIZE or not 0 <= s < 65536 for s in starts):
        parser.error("--ranges: each start is a multiple of 256 below 65536")
    target = build(found[0], args.out, found[1], starts)
    print(f"glyphs of '{target.name}' written to {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
