"""An asset in object storage served as a file (``/collections/{id}/assets/{assetId}``), as a local COG is:
streamed through the server in ``CHUNK``-sized range reads (``server.raster.objects``: GDAL's virtual file
system, with the raster reads' credentials and timeouts), so memory stays bounded whatever the size.

One byte range per request (``Range: bytes=a-b``, ``a-``, ``-n``) is answered 206 with Content-Range; a
range outside the object is 416 (OGC body, ``Content-Range: bytes */size``); several ranges, another unit
or an ``If-Range`` that does not match the ETag get the whole object (RFC 9110 lets a server ignore
Range). ETag and Last-Modified are the object's own. A store that is down or slower than GDAL's HTTP
timeouts is a 503 before any byte is sent; a failure after the first bytes ends the answer early (the
client sees a body shorter than Content-Length) and is logged.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from urllib.parse import quote

from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from server.errors import OGCError
from server.raster.objects import RemoteObject
from server.raster.store import RasterStoreUnavailable

log = logging.getLogger("onemap.raster")

CHUNK = 256 * 1024
SINGLE_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)")


class RangeNotSatisfiable(OGCError):
    """A byte range outside the file (416)."""

    status = 416
    code = "InvalidParameterValue"

    def __init__(self, size: int) -> None:
        super().__init__(f"The requested byte range is not within the file ({size} bytes).")
        self.headers = {"Content-Range": f"bytes */{size}"}


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one range (first and last byte, inclusive) a ``Range`` header asks of a ``size``-byte object;
    ``None`` for the whole object (no header, several ranges, another unit). ``RangeNotSatisfiable``
    when it lies outside the object."""
    found = SINGLE_RANGE.fullmatch((header or "").strip())
    if found is None:
        return None
    first, last = found.groups()
    if not first:  # the last n bytes
        if not last or int(last) == 0 or size == 0:
            raise RangeNotSatisfiable(size)
        return max(0, size - int(last)), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        raise RangeNotSatisfiable(size)
    return start, end


def _disposition(filename: str) -> str:
    quoted = quote(filename)
    if quoted != filename:
        return f"attachment; filename*=utf-8''{quoted}"
    return f'attachment; filename="{filename}"'


def _unavailable(exc: OSError) -> RasterStoreUnavailable:
    log.warning("asset download: the object store did not answer: %s", exc)
    return RasterStoreUnavailable()


async def _stream(obj: RemoteObject, head: bytes, offset: int, end: int) -> AsyncIterator[bytes]:
    """``head``, then the object's bytes from ``offset`` up to ``end`` (exclusive), a chunk at a time."""
    try:
        yield head
        while offset < end:
            try:
                chunk = await run_in_threadpool(obj.read, offset, min(CHUNK, end - offset))
            except OSError as exc:
                log.warning("asset download ended early at byte %d of %d: %s", offset, end, exc)
                return
            offset += len(chunk)
            yield chunk
    finally:
        obj.close()  # no network: a read handle closes at once


async def remote_file(location: str, range_header: str | None, if_range: str | None, filename: str,
                      media_type: str) -> StreamingResponse:
    """The object at ``location`` (a GDAL virtual file system name from the catalog), whole or one range."""
    try:
        obj = await run_in_threadpool(RemoteObject, location)
    except OSError as exc:
        raise _unavailable(exc) from None
    try:
        wanted = byte_range(range_header, obj.size) if not if_range or if_range == obj.etag else None
        first, last = wanted or (0, obj.size - 1)
        head = await run_in_threadpool(obj.read, first, min(CHUNK, last + 1 - first))
    except OSError as exc:
        obj.close()
        raise _unavailable(exc) from None
    except BaseException:
        obj.close()
        raise
    headers = {"Content-Length": str(last + 1 - first), "Accept-Ranges": "bytes",
               "Content-Disposition": _disposition(filename)}
    if wanted:
        headers["Content-Range"] = f"bytes {first}-{last}/{obj.size}"
    headers |= {k: v for k, v in (("ETag", obj.etag), ("Last-Modified", obj.last_modified)) if v}
    return StreamingResponse(_stream(obj, head, first + len(head), last + 1), status_code=206 if wanted else 200,
                             headers=headers, media_type=media_type)
