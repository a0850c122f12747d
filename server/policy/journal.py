"""The audit journal: every audit record is appended to a local file before the response is sent.

One file per process at a time (``audit-<pid>-<random>.jsonl``, one JSON object a line, then zeros to
the preallocated size) under the configured directory, held under an exclusive ``flock`` while its
process lives. A record is copied into the file's shared memory map: it is in the kernel's page cache
at once, so a ``kill -9`` of the worker loses nothing, and the request pays no system call (nor a wait
for the interpreter lock after one). Writing to disk (``msync``) is batched by the audit writer's thread
(a machine crash may lose the last fraction of a second). Files whose lock is free belong to a process
that ended (killed, or stopped while the store was unreachable): ``orphans`` reads them so that the
writer replays them into the store. Rows carry a unique id and the store ignores an id it holds, so
replaying a file twice never duplicates a row.

The directory must be on a local file system of the machine (``flock`` on network file systems is not
reliable); each store gets its own subdirectory, so a journal is only ever replayed into its store.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import logging
import mmap
import os
import secrets
import threading
from collections.abc import Callable, Generator
from dataclasses import fields
from pathlib import Path

import orjson

from server.policy.admin import AuditRecord

log = logging.getLogger("onemap.audit")

PREFIX = "audit-"
SUFFIX = ".jsonl"
SEGMENT_BYTES = 4 << 20  # each file is preallocated to this size
ROTATE_BYTES = 1 << 20  # a fully written file is replaced once this much of it is used
_FIELDS = frozenset(f.name for f in fields(AuditRecord))


def encode(record: AuditRecord) -> bytes:
    """One journal line (orjson writes the dataclass and its date-time natively)."""
    return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)


def decode(line: bytes) -> AuditRecord | None:
    """The record of one journal line; ``None`` for a line that is not one (e.g. cut short by a crash)."""
    try:
        d = orjson.loads(line)
        d = {k: v for k, v in d.items() if k in _FIELDS}
        d["ts"] = dt.datetime.fromisoformat(d["ts"])
        return AuditRecord(**d)
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError):
        return None


class _Segment:
    """One journal file: preallocated, written through a shared memory map up to ``used``."""

    __slots__ = ("fd", "path", "map", "used")

    def __init__(self, fd: int, path: Path) -> None:
        self.fd, self.path, self.used = fd, path, 0
        self.map = mmap.mmap(fd, SEGMENT_BYTES)


class Journal:
    """This process's journal; ``append`` is safe from any thread, the rest from one thread.

    Records go into a shared memory map of a preallocated file: an append is a copy into the page
    cache, with no system call and without giving up the interpreter lock, and the kernel keeps the
    pages when the process dies. A file that fills before it can be rotated is kept (still locked)
    and writing goes on in a new one."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self._lock = threading.Lock()
        self._segment = self._open_new()
        self._full: list[_Segment] = []  # filled files whose records may still be queued
        self._unsynced = False
        self._complete = True  # every record in the current files is also queued in memory

    @property
    def path(self) -> Path:
        """The file being written."""
        return self._segment.path

    def _open_new(self) -> _Segment:
        """A new file, locked and preallocated under a name ``orphans`` ignores, then given its name."""
        name = f"{PREFIX}{os.getpid()}-{secrets.token_hex(6)}{SUFFIX}"
        making = self.directory / f".{name}"
        fd = os.open(making, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.posix_fallocate(fd, 0, SEGMENT_BYTES)  # a full disk fails here, not as a fault while writing
            os.rename(making, self.directory / name)
            return _Segment(fd, self.directory / name)
        except BaseException:
            os.close(fd)
            making.unlink(missing_ok=True)
            raise

    def append(self, line: bytes) -> None:
        """Copy one line into the journal (a new file when the current one is full)."""
        with self._lock:
            segment = self._segment
            end = segment.used + len(line)
            if end > SEGMENT_BYTES:
                self._full.append(segment)
                segment = self._segment = self._open_new()
                end = len(line)
            segment.map[segment.used:end] = line
            segment.used = end
        self._unsynced = True

    def incomplete(self) -> None:
        """Records of the current files were dropped from memory: keep the files for replay."""
        self._complete = False

    def sync(self) -> None:
        """Write to disk what was appended since the last call."""
        if self._unsynced:
            self._unsynced = False
            for segment in (*self._full, self._segment):
                segment.map.flush()

    def rotate(self, settled: Callable[[], bool]) -> None:
        """Start a new file once the current one is big (or another one filled) and ``settled()``
        (everything queued is written) holds; ``settled`` is asked under the lock that ``append`` takes,
        so no record is in between.

        The old files are removed, or, when some of their records were dropped from memory, left for replay."""
        if self._segment.used < ROTATE_BYTES and not self._full:
            return
        fresh = self._open_new()
        with self._lock:
            swap = settled()
            if swap:
                old, self._segment, self._full = [*self._full, self._segment], fresh, []
        if not swap:
            self._retire(fresh, remove=True)
            return
        for segment in old:
            self._retire(segment, remove=self._complete)
        self._complete = True

    def close(self, written: bool) -> None:
        """Close the files: removed when ``written`` (everything is in the store), else kept for replay."""
        for segment in (*self._full, self._segment):
            self._retire(segment, remove=written and self._complete)

    def _retire(self, segment: _Segment, remove: bool) -> None:
        segment.map.flush()
        segment.map.close()
        if remove:
            segment.path.unlink(missing_ok=True)
        os.close(segment.fd)  # releases the lock: a kept file is now an orphan

    def orphans(self) -> Generator[tuple[Path, list[AuditRecord], int], None, None]:
        """Files of ended processes, one at a time, locked while the caller replays them:
        (path, records, lines that were not records). Remove a file with ``path.unlink()`` once stored."""
        for path in sorted(self.directory.glob(f"{PREFIX}*{SUFFIX}")):
            if path == self.path:
                continue
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # its process is alive
                if os.fstat(fd).st_nlink == 0:
                    continue  # replayed and removed by another process meanwhile
                data = path.read_bytes()
                end = data.find(b"\0")  # written up to the first NUL, zeros after
                lines = (data if end < 0 else data[:end]).splitlines()
                records = [r for r in map(decode, lines) if r is not None]
                yield path, records, sum(1 for line in lines if line.strip()) - len(records)
            finally:
                with contextlib.suppress(OSError):
                    os.close(fd)
