"""The policy middleware (pure ASGI): authenticate, attach ``request.state.policy``, audit.

Runs once per HTTP request, before routing. Library files of the viewer pass straight through; the
landing page, conformance and the API definition need no key (they carry no data); everything else
is authenticated by ``PolicyRuntime.authenticate``. Refusals (401/403/429, and 503 while the store
is unchecked) are answered here with the OGC exception body. Every request except library files is
audited after its response: time, edition, key id, client address, route, collection, parameters
(credentials removed), what was returned and the status.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.credentials import KEY_HEADER, KEY_PARAMS
from server.errors import OGCError, ogc_response
from server.policy.admin import AuditRecord
from server.policy.audit import audit_params
from server.policy.keys import parse_key
from server.policy.model import Policy
from server.policy.runtime import PolicyRuntime

NO_KEY_PATHS = frozenset({"/", "/conformance", "/api", "/api.html", "/docs/oauth2-redirect", "/favicon.ico"})
LIBRARY_PREFIXES = ("/map/lib/", "/map/static/")
TILE_ROUTE_MARK = "{tileCol}"
COLLECTION_PATH = re.compile(r"^/collections/([^/]+)")


def presented_key(scope: Scope) -> str | None:
    """The key from the ``X-API-Key`` header, else from a key query parameter (``api_key``)."""
    for name, value in scope.get("headers", ()):
        if name == KEY_HEADER:
            return value.decode("latin-1")
    qs = scope.get("query_string", b"")
    if qs and any(p.encode() in qs for p in KEY_PARAMS):
        for k, v in parse_qsl(qs.decode("latin-1"), keep_blank_values=True):
            if k in KEY_PARAMS:
                return v
    return None


def _returned(scope: Scope, status: int) -> int | None:
    noted = scope.get("state", {}).get("audit", {}).get("returned")
    if noted is not None:
        return int(noted)
    route = scope.get("route")
    if route is not None and TILE_ROUTE_MARK in getattr(route, "path", ""):
        return 1 if status == 200 else 0
    return None


class PolicyMiddleware:
    """Resolves the policy of each request; see the module docstring."""

    def __init__(self, app: ASGIApp, runtime: PolicyRuntime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        runtime = self.runtime
        if scope["path"].startswith(LIBRARY_PREFIXES):
            state["policy"] = runtime.anonymous() or runtime.public_only()
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        now = dt.datetime.now(dt.UTC)
        client = scope.get("client")
        client_ip = client[0] if client else None
        policy: Policy | None = None
        try:
            await runtime.ensure_ready()
            raw_key = presented_key(scope)
            if raw_key is None and scope["path"] in NO_KEY_PATHS and not runtime.spec.anonymous:
                policy = runtime.public_only()
            else:
                policy = await runtime.authenticate(raw_key, client_ip, now)
        except OGCError as exc:
            await ogc_response(exc.status, exc.code, exc.description, exc.headers or None)(scope, receive, send)
            self._audit(scope, now, None, client_ip, exc.status, started)
            return
        state["policy"] = policy
        state["audit"] = {}
        status = [500]

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self._audit(scope, now, policy, client_ip, status[0], started)

    def _audit(self, scope: Scope, now: dt.datetime, policy: Policy | None, client_ip: str | None,
               status: int, started: float) -> None:
        key_id = policy.key_id if policy is not None else None
        if key_id is None and policy is None:
            key_id = _claimed_key_id(scope)
        route = scope.get("route")
        self.runtime.audit.submit(AuditRecord(
            ts=now,
            edition=self.runtime.edition,
            key_id=key_id,
            client_ip=client_ip,
            method=scope.get("method", "GET"),
            route=getattr(route, "path", None),
            path=scope["path"][:500],
            collection=_collection(scope),
            params=audit_params(scope.get("query_string", b"")),
            returned=_returned(scope, status),
            status=status,
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
        ))


def _collection(scope: Scope) -> str | None:
    """The collection asked for: from the matched route, or from the path when refused before routing."""
    found = (scope.get("path_params") or {}).get("collectionId")
    if found is None and (m := COLLECTION_PATH.match(scope["path"])):
        found = m.group(1)
    return found[:200] if found else None


def _claimed_key_id(scope: Scope) -> str | None:
    """For a refused request: the id part of a well-formed key (never the secret), for the audit."""
    raw = presented_key(scope)
    parsed = parse_key(raw) if raw else None
    return parsed[0] if parsed else None
