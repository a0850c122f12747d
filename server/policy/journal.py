"""The audit journal: every audit record is appended to a local file before the response is sent.

One file per process (``audit-<pid>-<random>.jsonl``, one JSON object a line) under the configured
directory, held under an exclusive ``flock`` while its process lives. A record is written with one
unbuffered ``os.write`` (it reaches the kernel, so a ``kill -9`` of the worker loses nothing);
``fsync`` is batched by the audit writer's thread (a machine crash may lose the last fraction of a
second). Files whose lock is free belong to a process that ended (killed, or stopped while the store
was unreachable): ``orphans`` reads them so that the writer replays them into the store. Rows carry a
unique id and the store ignores an id it holds, so replaying a file twice never duplicates a row.

The directory must be on a local file system of the machine (``flock`` on network file systems is not
reliable); each store gets its own subdirectory, so a journal is only ever replayed into its store.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import logging
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
ROTATE_BYTES = 1 << 20  # a fully written file is replaced once it is this big
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


class Journal:
    """This process's journal file; ``append`` is safe from any thread, the rest from one thread."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self._lock = threading.Lock()
        self._fd, self.path = self._open_new()
        self._unsynced = False
        self._complete = True  # every record in the current file is also queued in memory

    def _open_new(self) -> tuple[int, Path]:
        path = self.directory / f"{PREFIX}{os.getpid()}-{secrets.token_hex(6)}{SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd, path

    def append(self, line: bytes) -> None:
        """Write one line to the kernel (no user-space buffer)."""
        with self._lock:
            os.write(self._fd, line)
        self._unsynced = True

    def incomplete(self) -> None:
        """Records of the current file were dropped from memory: keep the file for replay."""
        self._complete = False

    def sync(self) -> None:
        """``fsync`` what was appended since the last call."""
        if self._unsynced:
            self._unsynced = False
            os.fsync(self._fd)

    def rotate(self, settled: Callable[[], bool]) -> None:
        """Start a new file once the current one is big and ``settled()`` (everything queued is written)
        holds; ``settled`` is asked under the lock that ``append`` takes, so no record is in between.

        The old file is removed, or, when some of its records were dropped from memory, left for replay."""
        if os.fstat(self._fd).st_size < ROTATE_BYTES:
            return
        fd, path = self._open_new()
        with self._lock:
            swap = settled()
            if swap:
                old_fd, old_path, self._fd, self.path = self._fd, self.path, fd, path
        if not swap:
            self._retire(fd, path, remove=True)
            return
        self._retire(old_fd, old_path, remove=self._complete)
        self._complete = True

    def close(self, written: bool) -> None:
        """Close the file: removed when ``written`` (everything is in the store), else kept for replay."""
        self._retire(self._fd, self.path, remove=written and self._complete)

    def _retire(self, fd: int, path: Path, remove: bool) -> None:
        os.fsync(fd)
        if remove:
            path.unlink(missing_ok=True)
        os.close(fd)  # releases the lock: a kept file is now an orphan

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
                lines = path.read_bytes().splitlines()
                records = [r for r in map(decode, lines) if r is not None]
                yield path, records, sum(1 for line in lines if line.strip()) - len(records)
            finally:
                with contextlib.suppress(OSError):
                    os.close(fd)
