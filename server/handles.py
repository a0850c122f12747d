"""Open file handles reused across requests: one per thread, file and kind, reopened when the file changes.

A GDAL dataset handle must not be used by two threads at once, and opening one (and losing its block
cache on close) costs more than most reads, so each thread keeps its own handle per (file, kind). A
handle is reopened when its file changes (size, mtime or inode), so a rewritten file is picked up
without a restart; a remote one (a GDAL virtual file system name, ``/vsis3/...``, see
``server.assets``) is reopened every ``REMOTE_REOPEN_S`` seconds. A missing local file raises
``FileNotFoundError``; the caller maps it to its own answer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REMOTE_REOPEN_S = 60.0


def is_remote_name(location: str | Path) -> bool:
    """A GDAL virtual file system name (``/vsis3/...``), as ``server.assets.asset_location`` gives for
    an asset in object storage."""
    return isinstance(location, str) and location.startswith("/vsi")


class ThreadHandles:
    """Per-thread open handles, each made by a factory and closed by ``close`` when replaced."""

    def __init__(self, close: Callable[[Any], None] = lambda handle: handle.close()) -> None:
        self._local = threading.local()
        self._close = close

    def get(self, path: str | Path, kind: str, factory: Callable[[], Any]) -> Any:
        """The calling thread's handle of ``kind`` on ``path``: made now, or again if the file changed."""
        handles: dict[tuple[str | Path, str], tuple[tuple, Any]] = self._local.__dict__.setdefault("handles", {})
        key = _signature(path)
        cached = handles.get((path, kind))
        if cached is not None and cached[0] == key:
            return cached[1]
        if cached is not None:
            self._close(cached[1])
        handle = factory()
        handles[(path, kind)] = (key, handle)
        return handle

    def forget(self) -> None:
        """Drop the calling thread's handles (after a failed read): each is made again on next use."""
        self._local.__dict__.pop("handles", None)


def _signature(path: str | Path) -> tuple:
    """What tells that a file changed: its size, mtime and inode; for a remote one, the time window."""
    if is_remote_name(path):
        return (int(time.monotonic() // REMOTE_REOPEN_S),)
    st = Path(path).stat()
    return (st.st_size, st.st_mtime_ns, st.st_ino)
