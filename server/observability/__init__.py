"""Health, readiness, metrics, request ids and structured logs (README, "Operations").

``install(app)`` adds the outermost middleware (``middleware.py``) and a task that refreshes the state
gauges (pool, audit queue, cache counters) every ``metrics.REFRESH_S`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from server.observability import metrics
from server.observability.middleware import ObservabilityMiddleware
from server.observability.readiness import Readiness

log = logging.getLogger("onemap.observability")


class StateSampler:
    """Reads the process's counters into the metrics (``metrics.StateReader``)."""

    def __init__(self) -> None:
        self.reader = metrics.StateReader()

    def refresh(self, state: Any) -> None:
        """Sample the cache, the read pool and the audit writer now."""
        audit = state.policy.audit
        self.reader.refresh(getattr(state.cache, "stats", None), metrics.pool_stats(state.source),
                            audit.pending, audit.dropped)


def install(app: FastAPI) -> None:
    """Attach the observability middleware (call last: it must be outermost) and the refresh task."""
    settings = app.state.settings
    if settings.metrics == "token" and not settings.metrics_token:
        raise ValueError("ONEMAP_METRICS=token needs ONEMAP_METRICS_TOKEN (the bearer token Prometheus sends)")
    app.state.observability = StateSampler()
    app.state.readiness = Readiness(settings)
    app.add_middleware(ObservabilityMiddleware, state=app.state, settings=settings)
    inner = app.router.lifespan_context

    async def refreshing() -> None:
        while True:
            await asyncio.sleep(metrics.REFRESH_S)
            try:
                app.state.observability.refresh(app.state)
            except Exception as exc:  # metrics never stop the server
                log.debug("metrics refresh failed: %s", exc)

    @asynccontextmanager
    async def lifespan(a: FastAPI):
        async with inner(a) as state:
            task = asyncio.create_task(refreshing())
            try:
                yield state
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                await app.state.readiness.close()
                metrics.worker_exit(os.getpid())

    app.router.lifespan_context = lifespan
