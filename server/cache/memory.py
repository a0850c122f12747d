"""The in-process cache: a least-recently-used map of entries, bounded in bytes.

The bound is a budget per machine: ``ONEMAP_CACHE_MEMORY_BYTES`` is shared by the worker processes
of one ``onemap serve`` (``ONEMAP_WORKERS``, set from ``--workers``), each holding its part.
"""

from __future__ import annotations

from cachetools import LRUCache

from server.cache.entry import Entry
from server.settings import Settings


def _entry_size(entry: Entry) -> int:
    return entry.size


def worker_budget(settings: Settings) -> int:
    """This worker's part of the machine's in-process cache budget."""
    return settings.cache_memory_bytes // settings.workers


class MemoryCache:
    """Entries by key digest; holds at most ``max_bytes`` (identity + compressed copies + overhead)."""

    def __init__(self, max_bytes: int, max_entry_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.max_entry_bytes = min(max_entry_bytes, max_bytes)
        self._lru: LRUCache | None = LRUCache(maxsize=max_bytes, getsizeof=_entry_size) if max_bytes else None

    def get(self, digest: str) -> Entry | None:
        """The entry, or ``None``; a hit makes it most recently used."""
        if self._lru is None:
            return None
        return self._lru.get(digest)

    def put(self, digest: str, entry: Entry) -> bool:
        """Keep the entry (evicting the least recently used); ``False`` when it is too big to keep."""
        if self._lru is None or entry.size > self.max_entry_bytes:
            return False
        self._lru[digest] = entry
        return True

    @property
    def bytes_used(self) -> int:
        """Bytes held now; never more than ``max_bytes``."""
        return int(self._lru.currsize) if self._lru is not None else 0

    def __len__(self) -> int:
        return len(self._lru) if self._lru is not None else 0

    def clear(self) -> None:
        """Drop every entry."""
        if self._lru is not None:
            self._lru.clear()
