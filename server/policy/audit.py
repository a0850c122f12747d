"""The audit writer: records are queued by requests and appended to the store in batches.

A request only appends to an in-memory queue; a background thread writes whatever is queued every
``interval`` seconds (or sooner when a batch fills) in one multi-row INSERT. When the store is
unreachable the records stay queued and are retried; past ``max_pending`` the oldest are dropped
and the loss is logged. ``stop`` writes everything left before the server exits.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import deque

from server.credentials import redacted_query
from server.policy.admin import AdminStore, AuditRecord

log = logging.getLogger("onemap.audit")

MAX_PARAMS_CHARS = 2000


@functools.lru_cache(maxsize=4096)  # map clients repeat their URLs
def audit_params(query_string: bytes) -> str | None:
    """The query parameters worth keeping, with any credential removed."""
    if not query_string:
        return None
    return redacted_query(query_string.decode("latin-1"))[:MAX_PARAMS_CHARS] or None


class AuditWriter:
    """Batches audit records into the store from one background thread."""

    def __init__(self, store: AdminStore, interval: float = 0.5, batch: int = 1000, max_pending: int = 200_000):
        self.store = store
        self.interval = interval
        self.batch = batch
        self._queue: deque[AuditRecord] = deque()
        self._max_pending = max_pending
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()  # one writer at a time (thread and explicit flushes)
        self._thread: threading.Thread | None = None
        self.dropped = 0

    def submit(self, record: AuditRecord) -> None:
        """Queue one record (never blocks, never raises)."""
        if len(self._queue) >= self._max_pending:
            self._queue.popleft()
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.error("audit queue full: %d records dropped so far", self.dropped)
        self._queue.append(record)
        if len(self._queue) >= self.batch:
            self._wake.set()

    def start(self) -> None:
        """Start the background writer."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="onemap-audit", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the writer and write what is left (best effort)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.flush()

    def flush(self) -> int:
        """Write everything queued now; the number of records written."""
        written = 0
        with self._lock:
            while self._queue:
                records = [self._queue.popleft() for _ in range(min(self.batch, len(self._queue)))]
                try:
                    self.store.append_audit(records)
                except Exception as exc:  # keep them for the next attempt
                    self._queue.extendleft(reversed(records))
                    log.warning("audit write failed, %d records kept for retry: %s", len(self._queue), exc)
                    return written
                written += len(records)
        return written

    @property
    def pending(self) -> int:
        """Records not written yet."""
        return len(self._queue)

    def _loop(self) -> None:
        backoff = self.interval
        while not self._stop.is_set():
            self._wake.wait(backoff)
            self._wake.clear()
            before = len(self._queue)
            self.flush()
            failed = before and len(self._queue) >= before
            backoff = min(backoff * 2, 10.0) if failed else self.interval
