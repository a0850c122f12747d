"""The audit writer: records are queued by requests and appended to the store in batches.

A request appends its record to an in-memory queue and, with a journal directory, to this process's
journal file (``journal.py``) before its response is sent; a background thread writes whatever is
queued every ``interval`` seconds (or sooner when a batch fills) in one statement a batch (``admin.py``),
``fsync``s the journal and replays the journals of processes that ended.
When the store is unreachable the records stay queued and are retried; past ``max_pending`` the oldest
leave memory (the journal keeps them). ``stop`` writes everything left; what the store does not take
stays in the journal, replayed at the next start (by any process using the same directory and store).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import secrets
import threading
import time
from collections import deque
from pathlib import Path

from server.credentials import redacted_query
from server.policy.admin import AdminStore, AuditRecord
from server.policy.journal import Journal, encode

log = logging.getLogger("onemap.audit")

MAX_PARAMS_CHARS = 2000
REPLAY_EVERY_S = 30.0  # how often the writer looks for journals of ended processes


def audit_params(query_string: bytes) -> str | None:
    """The query parameters worth keeping, with any credential removed."""
    if not query_string:
        return None
    return redacted_query(query_string.decode("latin-1"))[:MAX_PARAMS_CHARS] or None


class AuditWriter:
    """Batches audit records into the store from one background thread, journaled when ``journal_dir`` is set."""

    def __init__(self, store: AdminStore, interval: float = 0.5, batch: int = 1000, max_pending: int = 200_000,
                 journal_dir: Path | None = None):
        self.store = store
        self.interval = interval
        self.batch = batch
        self._queue: deque[AuditRecord] = deque()
        self._max_pending = max_pending
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()  # one writer at a time (thread and explicit flushes)
        self._thread: threading.Thread | None = None
        self._journal_dir = journal_dir
        self.journal: Journal | None = None
        self._ids = itertools.count()
        self._id_prefix = secrets.token_hex(8)
        self._replay_due = 0.0
        self.dropped = 0

    def new_id(self) -> str:
        """A record id unique across processes and restarts (a random prefix and a counter)."""
        return f"{self._id_prefix}{next(self._ids):x}"

    def submit(self, record: AuditRecord) -> None:
        """Queue one record and journal it (never blocks on the store, never raises)."""
        if len(self._queue) >= self._max_pending:
            self._queue.popleft()
            self.dropped += 1
            if self.journal is not None:
                self.journal.incomplete()
            if self.dropped % 1000 == 1:
                log.error("audit queue full: %d records left memory so far%s", self.dropped,
                          " (kept in the journal)" if self.journal is not None else "")
        self._queue.append(record)  # before the journal: a rotation never removes a file with unqueued records
        if self.journal is not None:
            try:
                self.journal.append(encode(record))
            except OSError as exc:
                self._journal_lost(exc)
        if len(self._queue) >= self.batch:
            self._wake.set()

    def _journal_lost(self, exc: OSError) -> None:
        log.error("audit journal %s not writable, records are kept in memory only: %s",
                  self.journal.path if self.journal else "", exc)
        self.journal = None

    def start(self) -> None:
        """Open the journal and start the background writer (which first replays ended processes' journals)."""
        if self._journal_dir is not None and self.journal is None:
            try:
                self.journal = Journal(self._journal_dir)
            except OSError as exc:
                log.error("audit journal directory %s not usable, records are kept in memory only: %s",
                          self._journal_dir, exc)
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="onemap-audit", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the writer and write what is left; what the store refuses stays in the journal."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.flush()
        journal, self.journal = self.journal, None
        if journal is not None:
            journal.close(written=not self._queue)
            if self._queue:
                log.warning("audit store unreachable at exit: %d records kept in %s, replayed at the next start",
                            len(self._queue), journal.path)
        elif self._queue:
            log.error("audit store unreachable at exit and no journal: %d records lost", len(self._queue))

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

    def replay(self) -> int:
        """Store the records of ended processes' journals (each file removed once stored); how many."""
        if self.journal is None:
            return 0
        replayed = 0
        with contextlib.closing(self.journal.orphans()) as found:
            for path, records, bad in found:
                with self._lock:
                    for start in range(0, len(records), self.batch):
                        self.store.append_audit(records[start:start + self.batch])
                path.unlink(missing_ok=True)
                replayed += len(records)
                log.info("audit journal %s replayed: %d records%s", path.name, len(records),
                         f", {bad} unreadable lines skipped" if bad else "")
        return replayed

    @property
    def pending(self) -> int:
        """Records not written yet."""
        return len(self._queue)

    def _loop(self) -> None:
        backoff = 0.0  # the first round runs at once: replay what ended processes left
        while not self._stop.is_set():
            self._wake.wait(backoff)
            self._wake.clear()
            if self._stop.is_set():
                break  # ``stop`` writes what is left
            before = len(self._queue)
            self.flush()
            failed = bool(before) and len(self._queue) >= before
            if self.journal is not None:
                self._tend_journal(failed)
            backoff = min(max(backoff, self.interval) * 2, 10.0) if failed else self.interval

    def _tend_journal(self, failed: bool) -> None:
        """Sync this process's journal; unless the store just failed, start a new file when the old one is
        all written and replay the journals of ended processes."""
        journal = self.journal
        if journal is None:
            return
        try:
            journal.sync()
            if failed:
                return
            with self._lock:  # no flush in flight: an empty queue means every record is stored
                journal.rotate(lambda: not self._queue)
            if time.monotonic() >= self._replay_due:
                self._replay_due = time.monotonic() + REPLAY_EVERY_S
                self.replay()
        except OSError as exc:
            self._journal_lost(exc)
        except Exception as exc:  # the store failed during a replay: the files stay for the next round
            log.warning("audit journal replay failed, retried later: %s", exc)
