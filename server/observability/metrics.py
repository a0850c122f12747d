"""Prometheus metrics (``prometheus_client``): requests by route template and status, latency
histograms, cache hits and misses per level, PostGIS pool usage and timings, audit queue depth, process
executions by outcome and the job queue (``job_queue``).

With several uvicorn workers, ``onemap serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory
before the workers start: each worker writes its samples there and ``/metrics`` (answered by any worker)
adds them up (prometheus_client's multiprocess mode). The gauges of state (pool, audit queue) are
refreshed by each worker every ``REFRESH_S`` seconds and summed over the live workers.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from prometheus_client import generate_latest as _generate
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
REFRESH_S = 5.0
CONTENT_TYPE = CONTENT_TYPE_LATEST
UNMATCHED = "unmatched"  # a request no route took: never the raw path (it would make a series per URL)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

REQUESTS = Counter("onemap_http_requests_total", "Requests answered, by route template, method and status",
                   ("route", "method", "status"))
LATENCY = Histogram("onemap_http_request_duration_seconds", "Time to answer, by route template",
                    ("route",), buckets=LATENCY_BUCKETS)
CACHE = Counter("onemap_cache_lookups_total",
                "Response cache outcomes: hit (memory), hit-shared (Redis), miss, pass (not cacheable now)",
                ("level",))
POOL_SIZE = Gauge("onemap_db_pool_connections", "PostGIS pool connections open", multiprocess_mode="livesum")
POOL_IN_USE = Gauge("onemap_db_pool_connections_in_use", "PostGIS pool connections lent to a request",
                    multiprocess_mode="livesum")
POOL_WAITING = Gauge("onemap_db_pool_requests_waiting", "Requests waiting for a PostGIS connection",
                     multiprocess_mode="livesum")
DB_TIME = Counter("onemap_db_seconds_total",
                  "PostGIS time: 'usage' connections spent serving requests, 'wait' requests spent waiting for one",
                  ("kind",))
DB_ERRORS = Counter("onemap_db_pool_errors_total", "Connections found broken or failed to be made")
AUDIT_PENDING = Gauge("onemap_audit_queue_depth", "Audit records queued, not yet in the store",
                      multiprocess_mode="livesum")
AUDIT_DROPPED = Counter("onemap_audit_dropped_from_memory_total",
                        "Audit records that left the memory queue before being written (kept in the journal)")

EXECUTIONS = Counter("onemap_process_executions_total",
                     "Process executions ended, by process, mode (sync, async) and outcome (successful, failed, "
                     "cancelled)", ("process", "mode", "outcome"))
JOBS_HELP = "Asynchronous jobs not yet ended, by status, read from the job store when scraped (every worker's)"


METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})  # any other is "other"
_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}  # labelled samples, looked up once (labels() is slow)


def observe(route: str, method: str, status: int, seconds: float) -> None:
    """Count one answered request."""
    if method not in METHODS:
        method = "other"
    found = _children.get((route, method, status))
    if found is None:
        found = _children[(route, method, status)] = (REQUESTS.labels(route, method, str(status)),
                                                      LATENCY.labels(route))
    found[0].inc()
    found[1].observe(seconds)


class StateReader:
    """Turns the process's own counters (cache stats, pool stats, audit writer) into metric samples."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}

    def _delta(self, name: str, value: float) -> float:
        """How much a monotonic counter of the process grew since the last refresh."""
        before = self._seen.get(name, 0.0)
        self._seen[name] = value
        return max(0.0, value - before)

    def refresh(self, cache_stats: Mapping[str, int] | None, pool: Mapping[str, int] | None,
                audit_pending: int, audit_dropped: int) -> None:
        """Update the samples from the current values."""
        for level, count in (cache_stats or {}).items():
            CACHE.labels(level).inc(self._delta(f"cache:{level}", count))
        if pool is not None:
            POOL_SIZE.set(pool.get("pool_size", 0))
            POOL_IN_USE.set(pool.get("pool_size", 0) - pool.get("pool_available", 0))
            POOL_WAITING.set(pool.get("requests_waiting", 0))
            DB_TIME.labels("usage").inc(self._delta("usage", pool.get("usage_ms", 0)) / 1000)
            DB_TIME.labels("wait").inc(self._delta("wait", pool.get("requests_wait_ms", 0)) / 1000)
            DB_ERRORS.inc(self._delta("errors", pool.get("connections_errors", 0) + pool.get("returns_bad", 0)))
        AUDIT_PENDING.set(audit_pending)
        AUDIT_DROPPED.inc(self._delta("dropped", audit_dropped))


def exposition() -> bytes:
    """The text exposition of every worker's samples (or this process's, with one worker)."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return _generate(registry)
    return _generate(REGISTRY)


def executed(process: str, mode: str, outcome: str) -> None:
    """Count one ended process execution."""
    EXECUTIONS.labels(process, mode, outcome).inc()


class _Families(Collector):
    def __init__(self, families: list[GaugeMetricFamily]) -> None:
        self.families = families

    def collect(self) -> list[GaugeMetricFamily]:
        return self.families


def job_queue(counts: Mapping[str, int]) -> bytes:
    """``onemap_jobs{status}`` as text: the store's counts, the same whichever worker answers (so not one
    of the per-worker samples that multiprocess mode adds up)."""
    family = GaugeMetricFamily("onemap_jobs", JOBS_HELP, labels=("status",))
    for status, count in sorted(counts.items()):
        family.add_metric((status,), count)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families([family]))
    return _generate(registry)


def worker_exit(pid: int) -> None:
    """Drop an ended worker's live gauges (multiprocess mode)."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)


def pool_stats(source: Any) -> Mapping[str, int] | None:
    """The read pool's statistics of a PostGIS source (``None`` for the embedded store)."""
    stats = getattr(source, "pool_stats", None)
    return stats() if callable(stats) else None
