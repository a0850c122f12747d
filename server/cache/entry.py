"""A cached response: its bodies compressed once, its headers, and its ETag.

An entry holds the identity body and, when compression pays, a gzip and a brotli copy, so a
response is negotiated from ``Accept-Encoding`` by picking bytes, never by compressing again.
In Redis an entry is packed without the identity body (it is inflated once when loaded).

Packed layout: ``OMC1`` + 4-byte big-endian header length + orjson header + bodies, in the order
identity (only when nothing is compressed), gzip, brotli.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from dataclasses import dataclass, field

import brotli
import orjson

MAGIC = b"OMC1"
MIN_COMPRESS = 256  # smaller bodies are sent as they are
_GAIN = 0.95  # a compressed copy is kept only when at least 5% smaller
_OVERHEAD = 1024  # bookkeeping bytes counted per entry (headers, key, memoized header lists)
_COMPRESSIBLE = ("json", "text/", "xml", "mapbox-vector-tile", "protobuf", "javascript", "csv", "svg",
                "gltf", "quantized-mesh")


class CorruptEntry(ValueError):
    """Bytes read from the shared cache are not an entry this server wrote."""


def compressible(media_type: str | None, size: int) -> bool:
    """True for text-like media types (JSON, HTML, MVT...) big enough to gain from compression."""
    if size < MIN_COMPRESS or not media_type:
        return False
    media = media_type.lower()
    return any(marker in media for marker in _COMPRESSIBLE)


def compress(body: bytes) -> tuple[bytes | None, bytes | None]:
    """gzip (level 6) and brotli (quality 5) copies of ``body``; ``None`` where it does not pay."""
    gz = gzip.compress(body, compresslevel=6, mtime=0)
    br = brotli.compress(body, quality=5)
    limit = len(body) * _GAIN
    return (gz if len(gz) < limit else None), (br if len(br) < limit else None)


@dataclass(eq=False)
class Entry:
    """One stored response. ``headers`` are extra headers sent as they are (Vary, Content-Crs...)."""

    status: int
    media_type: str | None
    etag: str
    identity: bytes
    gzip: bytes | None = None
    br: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    returned: int | None = None  # features/tiles the body carries, for the audit of later hits
    _raw: dict = field(default_factory=dict, repr=False)

    @classmethod
    def build(
        cls, status: int, media_type: str | None, etag: str, body: bytes,
        headers: tuple[tuple[str, str], ...] = (), pack: bool = True,
    ) -> Entry:
        """An entry for ``body``; compressed copies are made here, once, when ``pack`` is set."""
        gz = br = None
        if pack and status == 200 and compressible(media_type, len(body)):
            gz, br = compress(body)
        return cls(status, media_type, etag, body, gz, br, headers)

    @property
    def size(self) -> int:
        """Bytes this entry holds in memory (what the in-process cache bound counts)."""
        return len(self.identity) + len(self.gzip or b"") + len(self.br or b"") + _OVERHEAD

    def body(self, encoding: str | None) -> bytes:
        """The bytes for a content coding chosen by ``http.choose_encoding``."""
        if encoding == "br" and self.br is not None:
            return self.br
        if encoding == "gzip" and self.gzip is not None:
            return self.gzip
        return self.identity

    def pack(self) -> bytes:
        """The entry as bytes for the shared cache (compressed copies only, when there are any)."""
        stored_identity = self.gzip is None and self.br is None
        header = {
            "s": self.status, "m": self.media_type, "e": self.etag, "h": self.headers, "r": self.returned,
            "n": [len(self.identity) if stored_identity else -1, len(self.gzip or b""), len(self.br or b"")],
        }
        head = orjson.dumps(header)
        parts = [MAGIC, struct.pack(">I", len(head)), head]
        if stored_identity:
            parts.append(self.identity)
        parts += [self.gzip or b"", self.br or b""]
        return b"".join(parts)

    @classmethod
    def unpack(cls, data: bytes) -> Entry:
        """The entry packed by ``pack``; the identity body is inflated here when only copies were stored."""
        try:
            if data[:4] != MAGIC:
                raise CorruptEntry("unknown entry format")
            (n,) = struct.unpack(">I", data[4:8])
            header = orjson.loads(data[8 : 8 + n])
            pos = 8 + n
            n_id, n_gz, n_br = header["n"]
            identity = None
            if n_id >= 0:
                identity, pos = data[pos : pos + n_id], pos + n_id
            gz, pos = data[pos : pos + n_gz] or None, pos + n_gz
            br = data[pos : pos + n_br] or None
            if identity is None:
                identity = zlib.decompress(gz, wbits=31) if gz else brotli.decompress(br)
            headers = tuple((str(k), str(v)) for k, v in header["h"])
            return cls(header["s"], header["m"], header["e"], identity, gz, br, headers, header.get("r"))
        except CorruptEntry:
            raise
        except (KeyError, TypeError, ValueError, struct.error, zlib.error, brotli.error) as exc:
            raise CorruptEntry(str(exc)) from None
