"""The observability middleware (pure ASGI, outermost): ``/healthz``, ``/readyz``, ``/metrics``, the
request id and the request metrics.

``/healthz`` (the process answers) and ``/readyz`` are answered before the policy: no key, never audited,
never cached. ``/metrics`` is answered here only as ``ONEMAP_METRICS`` allows (``open``, or ``token`` with
``Authorization: Bearer <ONEMAP_METRICS_TOKEN>``); otherwise the request goes on like any other path (a
404, or the 401 of an edition that needs a key), so a caller may not tell it from a route that does not
exist. Every other request gets a request id - the ``X-Request-ID`` a trusted proxy sent (the same
proxies as ``ONEMAP_TRUSTED_PROXIES``), else a new one - returned in ``X-Request-ID``, stored in the audit
row and in every log line written while serving it.

A response's head is held until its first body part and the two leave back to back, after every inner
layer's work (the audit journal among it): a replica killed in the middle of an answer leaves its proxy
either nothing, which the proxy retries on another replica, or the whole answer - seldom a head without
its body, which no proxy can retry.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import re
import time
from typing import Any

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from server.observability import metrics
from server.observability.logs import request_id
from server.observability.readiness import readiness
from server.policy.proxies import ClientResolver, parse_address
from server.settings import Settings

REQUEST_ID_HEADER = b"x-request-id"
VALID_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")
JSON = b"application/json"
JOB_QUEUE_TIMEOUT_S = 2.0
log = logging.getLogger("onemap.observability")
ID_BYTES = 12


class _RandomIds:
    """Random request ids from a pool of random bytes drawn a thousand ids at a time: one system call
    per thousand requests rather than one each (a system call lets other threads take the interpreter)."""

    def __init__(self, batch: int = 1024) -> None:
        self._size = ID_BYTES * batch
        self._pool = b""
        self._at = 0

    def next(self) -> str:
        """A new id (24 hexadecimal characters)."""
        if self._at >= len(self._pool):
            self._pool, self._at = os.urandom(self._size), 0
        at = self._at
        self._at = at + ID_BYTES
        return self._pool[at:at + ID_BYTES].hex()


async def _answer(send: Send, status: int, body: bytes, content_type: bytes = JSON) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode()),
                            (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": body})


async def _job_queue(state: Any) -> bytes:
    """The job-queue gauges from the capability that runs jobs (its ``JOB_QUEUE``), read now; nothing when
    the job store does not answer within ``JOB_QUEUE_TIMEOUT_S`` (the scrape is not held up)."""
    for module in getattr(state, "capabilities", ()):
        reader = getattr(module, "JOB_QUEUE", None)
        if reader is not None:
            try:
                return metrics.job_queue(await asyncio.wait_for(reader(state), JOB_QUEUE_TIMEOUT_S))
            except Exception as exc:  # metrics never fail the scrape
                log.debug("job queue not read: %s", exc)
    return b""


class ObservabilityMiddleware:
    """See the module docstring."""

    def __init__(self, app: ASGIApp, state: Any, settings: Settings) -> None:
        self.app = app
        self.state = state
        self.proxies = ClientResolver(settings.trusted_proxies, settings.forwarded_header)
        self.metrics = settings.metrics
        self.token = (settings.metrics_token or "").encode()
        self.ids = _RandomIds()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path == "/healthz":
            await _answer(send, 200, b'{"status":"ok"}')
            return
        if path == "/readyz":
            checks = await readiness(self.state)
            ready = checks["store"] == "ok"
            body = orjson.dumps({"status": "ready" if ready else "not ready", "checks": checks})
            await _answer(send, 200 if ready else 503, body)
            return
        if path == "/metrics" and self._may_scrape(scope):
            self.state.observability.refresh(self.state)
            body = metrics.exposition() + await _job_queue(self.state)
            await _answer(send, 200, body, metrics.CONTENT_TYPE.encode())
            return
        await self._serve(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        rid = self._request_id(scope)
        scope.setdefault("state", {})["request_id"] = rid
        header = (REQUEST_ID_HEADER, rid.encode())
        started = time.perf_counter()
        status = 500

        held: list[Any] = []

        async def sending(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                held.append({**message, "headers": [*message.get("headers", ()), header]})
                return
            if held:  # the head leaves with the first body part, after all the work of the inner layers
                await send(held.pop())
            await send(message)

        token = request_id.set(rid)
        try:
            await self.app(scope, receive, sending)
        finally:
            request_id.reset(token)
            route = getattr(scope.get("route"), "path", None) or metrics.UNMATCHED
            metrics.observe(route, scope["method"], status, time.perf_counter() - started)

    def _request_id(self, scope: Scope) -> str:
        """A trusted proxy's well-formed ``X-Request-ID``, else a new random id."""
        if self.proxies.networks:
            peer = scope.get("client")
            if peer and self.proxies.trusted(parse_address(peer[0])):
                for name, value in scope.get("headers", ()):
                    if name == REQUEST_ID_HEADER and VALID_REQUEST_ID.fullmatch(value):
                        return value.decode("ascii")
        return self.ids.next()  # random: a counter would tell a caller how many requests others made

    def _may_scrape(self, scope: Scope) -> bool:
        if self.metrics == "open":
            return True
        if self.metrics != "token" or not self.token:
            return False
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                return hmac.compare_digest(value, b"Bearer " + self.token)
        return False
