"""Bytes of a remote raster object (``/vsis3/...``, ``/vsicurl/...``: ``server.assets.remote_name``) read
through GDAL's virtual file system - the GDAL that rasterio loaded, so with the same credentials, endpoint,
HTTP timeouts and retries as the raster reads (``server.assets.GDAL_LIMITS``, the ``AWS_*`` ...
options of the environment). rasterio has no Python API for a virtual file's bytes, so the five C
functions needed (``VSIFOpenExL``, ``VSIFSeekL``, ``VSIFTellL``, ``VSIFReadL``, ``VSIFCloseL``) and the
object's HTTP headers (``VSIGetFileMetadata``, domain ``HEADERS``: ETag, Last-Modified) are called
through ``ctypes``. Each read is one HTTP range request (or answered from GDAL's bounded range cache).

GDAL keeps what it learnt of an object (existence, size, headers, ranges read); that is dropped when a
read fails and when it is older than ``FRESH_S``, as raster reads reopen remote files.

Every call blocks: run it in a worker thread. One ``RemoteObject`` is used by one caller at a time.
"""

from __future__ import annotations

import ctypes
import functools
import threading
import time
from pathlib import Path

import rasterio

SEEK_SET, SEEK_END = 0, 2
FRESH_S = 60.0  # what GDAL knows of an object (size, headers, ranges) is asked again after this long
_asked: dict[str, float] = {}  # object -> when its cached state was last dropped (one entry per asset)
_asked_lock = threading.Lock()


def _library() -> str:
    """The file of the GDAL library rasterio loaded (the wheel's bundled one, or the system's)."""
    maps = Path("/proc/self/maps")
    loaded = [line.split()[-1] for line in maps.read_text().splitlines()
              if "/libgdal" in line] if maps.exists() else []
    package = Path(rasterio.__file__).resolve().parent
    bundled = sorted([*(package.parent / "rasterio.libs").glob("libgdal*"), *(package / ".dylibs").glob("libgdal*")])
    for path in bundled:
        if not loaded or str(path) in loaded:
            return str(path)
    system = [p for p in loaded if ".libs/" not in p]  # another wheel's copy is another GDAL
    if not system:
        raise RuntimeError("the GDAL library of rasterio was not found")
    return system[0]


@functools.cache
def _gdal() -> ctypes.CDLL:
    lib = ctypes.CDLL(_library())
    lib.VSIFOpenExL.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int]
    lib.VSIFOpenExL.restype = ctypes.c_void_p
    lib.VSIFSeekL.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int]
    lib.VSIFSeekL.restype = ctypes.c_int
    lib.VSIFTellL.argtypes = [ctypes.c_void_p]
    lib.VSIFTellL.restype = ctypes.c_uint64
    lib.VSIFReadL.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_void_p]
    lib.VSIFReadL.restype = ctypes.c_size_t
    lib.VSIFCloseL.argtypes = [ctypes.c_void_p]
    lib.VSIFCloseL.restype = ctypes.c_int
    lib.VSIGetFileMetadata.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p]
    lib.VSIGetFileMetadata.restype = ctypes.POINTER(ctypes.c_char_p)
    lib.CSLDestroy.argtypes = [ctypes.c_void_p]
    lib.VSICurlPartialClearCache.argtypes = [ctypes.c_char_p]
    return lib


def _headers(name: bytes) -> dict[str, str]:
    """The object's HTTP response headers, lower-case names (empty for a file system without them)."""
    lib = _gdal()
    found = lib.VSIGetFileMetadata(name, b"HEADERS", None)
    if not found:
        return {}
    headers = {}
    try:
        i = 0
        while found[i] is not None:
            key, _, value = found[i].decode("latin-1").partition("=")
            headers[key.strip().lower()] = value.strip()
            i += 1
    finally:
        lib.CSLDestroy(ctypes.cast(found, ctypes.c_void_p))
    return headers


class RemoteObject:
    """An open remote object: its ``size``, ``etag`` and ``last_modified`` (as the store sent them, or
    None), and reads of any part. ``OSError`` when it cannot be opened or a read comes back short."""

    def __init__(self, name: str) -> None:
        self.name = name.encode()
        lib = _gdal()
        with _asked_lock:
            stale = time.monotonic() - _asked.get(name, float("-inf")) > FRESH_S
            if stale:
                _asked[name] = time.monotonic()
        if stale:  # a replaced object shows its new size and ETag within FRESH_S
            lib.VSICurlPartialClearCache(self.name)
        self.headers = _headers(self.name)  # a request of its own: a store that is down fails here
        self._handle = lib.VSIFOpenExL(self.name, b"rb", 1)
        if not self._handle:
            forget(name)
            raise OSError("the object could not be opened")
        if lib.VSIFSeekL(self._handle, 0, SEEK_END) != 0:
            self.close()
            raise OSError("the object's size is unknown")
        self.size = int(lib.VSIFTellL(self._handle))
        self.etag = self.headers.get("etag")
        self.last_modified = self.headers.get("last-modified")

    def read(self, offset: int, length: int) -> bytes:
        """``length`` bytes from ``offset`` (fewer only at the end of the object)."""
        lib = _gdal()
        want = max(0, min(length, self.size - offset))
        buffer = ctypes.create_string_buffer(want)
        if lib.VSIFSeekL(self._handle, offset, SEEK_SET) != 0:
            raise OSError("seek failed")
        got = lib.VSIFReadL(buffer, 1, want, self._handle) if want else 0
        if got != want:
            forget(self.name.decode())
            raise OSError(f"short read: {got} of {want} bytes")
        return buffer.raw[:got]

    def close(self) -> None:
        """Close the handle (idempotent)."""
        handle, self._handle = self._handle, None
        if handle:
            _gdal().VSIFCloseL(handle)


def forget(name: str) -> None:
    """Drop what GDAL cached about the object (its existence, size, ranges), so that the next request asks
    the store again: after a failure, a store back up is seen at once."""
    _gdal().VSICurlPartialClearCache(name.encode())
    with _asked_lock:
        _asked.pop(name, None)
