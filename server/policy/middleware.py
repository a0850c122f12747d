"""The policy middleware (pure ASGI): who the client is, authenticate, attach ``request.state.policy``, audit.

Runs once per request, before routing, outermost but for CORS (``cors.py``). The client's address
is resolved first (the direct peer, or what a trusted proxy forwarded: ``proxies.py``) and written
back to the scope, so key ranges, rate limits, the audit and the access log all see the same address. Library files of
the viewer need no key; the landing page, conformance, the API definition and the tile matrix sets need none
either (they carry no data); everything else is authenticated by ``PolicyRuntime.authenticate``, or,
without a key, by the ``onemap_session`` cookie (``sessions.py``; ``GET``/``HEAD`` only unless the
request is same-origin). An HTML page opened with ``?api_key=`` also gets the session cookie, so
its links and the viewer need no key after it. ``/session`` itself is answered by ``session_routes``.
Refusals (401/403/429, 413 for a body above ``max_body_bytes``, 503 while the store is unchecked)
are answered here with the OGC exception body. WebSocket upgrades are refused before the app.
``HEAD`` is served as ``GET`` without the body. Every request is audited as its response ends (the record
is journaled before the last body message is sent, ``journal.py``): time,
edition, key id, client address, method, route, path, collection, parameters as parsed (credentials
removed), what was returned and the status, with control characters escaped.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.credentials import KEY_HEADER, KEY_HEADER_NAME, KEY_PARAMS, printable
from server.errors import Forbidden, OGCError, PayloadTooLarge, ogc_response
from server.policy.admin import AuditRecord
from server.policy.audit import audit_params
from server.policy.keys import KeyRecord
from server.policy.model import Policy
from server.policy.proxies import ClientResolver
from server.policy.runtime import PolicyRuntime
from server.policy.sessions import SAFE_METHODS, cookie_header, same_origin, secure_cookie, session_cookie
from server.settings import Settings

SESSION_PATHS = frozenset({"/session", "/session/logout"})
NO_KEY_PATHS = frozenset({"/", "/conformance", "/api", "/api.html", "/docs/oauth2-redirect", "/favicon.ico",
                          "/tileMatrixSets"})
NO_KEY_PREFIXES = ("/tileMatrixSets/",)  # tile matrix set definitions: grids, no data
LIBRARY_PREFIXES = ("/map/lib/", "/map/static/")
TILE_ROUTE_MARK = "{tileCol}"
COLLECTION_PATH = re.compile(r"^/collections/([^/]+)")
WEBSOCKET_POLICY_VIOLATION = 1008
_KEY_PARAM_BYTES = tuple(p.encode() for p in KEY_PARAMS)


def presented_key(scope: Scope) -> str | None:
    """The key from the ``X-API-Key`` header, else from a key query parameter (``api_key``)."""
    for name, value in scope.get("headers", ()):
        if name == KEY_HEADER:
            return value.decode("latin-1")
    qs = scope.get("query_string", b"")
    return _query_key(qs) if qs and any(p in qs for p in _KEY_PARAM_BYTES) else None


@functools.lru_cache(maxsize=4096)
def _query_key(query_string: bytes) -> str | None:
    """The key query parameter of a raw query string (memoized: map clients repeat their URLs)."""
    for k, v in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if k in KEY_PARAMS:
            return v
    return None


def needs_no_key(path: str) -> bool:
    """Whether a path carries no data, so answers without a credential (the landing page, the API
    definition, tile matrix sets ...)."""
    return path in NO_KEY_PATHS or path.startswith(NO_KEY_PREFIXES)


def _returned(scope: Scope, status: int) -> int | None:
    noted = scope.get("state", {}).get("audit", {}).get("returned")
    if noted is not None:
        return int(noted)
    route = scope.get("route")
    if route is not None and TILE_ROUTE_MARK in getattr(route, "path", ""):
        return 1 if status == 200 else 0
    return None


def _declared_length(scope: Scope) -> int | None:
    """The request's ``Content-Length`` (``None`` when absent or not a number)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


@dataclass
class _Exchange:
    """One request on its way through: when it started, from where, as whom, and how it ended."""

    now: dt.datetime
    started: float
    client_ip: str | None
    method: str
    raw_key: str | None = None  # the key presented (header or query), read once
    policy: Policy | None = None
    key_id: str | None = None
    status: int = 500
    grant: KeyRecord | None = None  # an HTML page opened with ?api_key= gets a session of this key
    audited: bool = False


class PolicyMiddleware:
    """Resolves the client and the policy of each request; see the module docstring."""

    def __init__(self, app: ASGIApp, runtime: PolicyRuntime, settings: Settings) -> None:
        self.app = app
        self.runtime = runtime
        self.clients = ClientResolver(settings.trusted_proxies, settings.forwarded_header)
        self.max_body = settings.max_body_bytes
        self.base_url = settings.base_url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        peer = scope.get("client")
        client_ip = self.clients.client(peer[0] if peer else None, scope.get("headers", ()))
        if peer is None or client_ip != peer[0]:
            scope["client"] = (client_ip, peer[1] if peer else 0) if client_ip else None
        method = scope.get("method", "WEBSOCKET") if scope["type"] == "http" else "WEBSOCKET"
        exchange = _Exchange(dt.datetime.now(dt.UTC), time.perf_counter(), client_ip, method, presented_key(scope))
        if scope["type"] == "websocket":  # no route takes one: refused before the app (403 to the client)
            await receive()
            exchange.status = 403
            self._audit(scope, exchange)
            await send({"type": "websocket.close", "code": WEBSOCKET_POLICY_VIOLATION})
            return
        state = scope.setdefault("state", {})
        try:
            exchange.policy = await self._admit(scope, exchange)
        except (OGCError, PayloadTooLarge) as exc:
            headers = dict(exc.headers) if exc.headers else None
            exchange.status = exc.status
            self._audit(scope, exchange)  # journaled before the answer leaves
            await ogc_response(exc.status, exc.code, exc.description, headers)(scope, receive, send)
            return
        state["policy"] = exchange.policy
        state["audit"] = {}
        state["session"] = exchange.grant is not None or (exchange.raw_key is None
                                                          and session_cookie(scope["headers"]) is not None)
        await self._serve(scope, receive, send, exchange)

    async def _admit(self, scope: Scope, exchange: _Exchange) -> Policy:
        """The caller's policy, or the ``OGCError`` refusing the request."""
        runtime = self.runtime
        if scope["path"].startswith(LIBRARY_PREFIXES):
            return runtime.anonymous() or runtime.public_only()
        await runtime.ensure_ready()
        raw_key = exchange.raw_key
        token = session_cookie(scope.get("headers", ())) if raw_key is None else None
        if scope["path"] in SESSION_PATHS or (raw_key is None and token is None and needs_no_key(scope["path"])
                                              and not runtime.spec.anonymous):
            policy = runtime.public_only()
        elif token is not None:
            policy = await self._session_policy(scope, token, exchange)
        else:
            policy = await self._key_policy(scope, raw_key, exchange)
        length = _declared_length(scope)
        if length is not None and length > self.max_body:
            raise PayloadTooLarge(self.max_body)
        return policy

    async def _key_policy(self, scope: Scope, raw_key: str | None, exchange: _Exchange) -> Policy:
        """The policy of the key presented (or the anonymous one); a GET with the key in its query may
        hand a session to the HTML page it opens (made only when the answer is a page)."""
        runtime = self.runtime
        if raw_key is None:
            return await runtime.authenticate(None, exchange.client_ip, exchange.now)
        record = await runtime.key_record(raw_key)
        try:
            policy = await runtime.admit(record, exchange.client_ip, exchange.now)
        except OGCError:  # 403/429: the key itself was genuine, the refusal is its own
            exchange.key_id = record.id
            raise
        if scope["method"] == "GET" and _from_query(scope):
            exchange.grant = record
        return policy

    def _with_session(self, message: Message, record: KeyRecord, now: dt.datetime, scope: Scope) -> Message:
        """An HTML page opened with ``?api_key=``: its answer also carries the key's session cookie."""
        token, max_age = self.runtime.sessions.issue(record, now)
        cookie = cookie_header(token, max_age, self.secure(scope)).encode("latin-1")
        return {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie)]}

    def own_origin(self, scope: Scope) -> str:
        """This server's base URL: ``ONEMAP_BASE_URL``, else the scheme and Host of the request."""
        if self.base_url:
            return self.base_url
        host = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"host"), "")
        return f"{scope.get('scheme', 'http')}://{host}"

    def secure(self, scope: Scope) -> bool:
        """Whether the session cookie must be ``Secure`` (HTTPS request or HTTPS base URL)."""
        return secure_cookie(scope.get("scheme"), self.base_url)

    async def _session_policy(self, scope: Scope, token: str, exchange: _Exchange) -> Policy:
        """The policy of a session cookie; a cross-site request other than GET/HEAD is refused (CSRF)."""
        runtime = self.runtime
        if scope["method"] not in SAFE_METHODS and not same_origin(scope.get("headers", ()), self.own_origin(scope)):
            raise Forbidden("A session cookie authorizes a cross-site request only to read (GET); "
                            f"send the key in the {KEY_HEADER_NAME} header.")
        try:
            return await runtime.authenticate_session(token, exchange.client_ip, exchange.now)
        except OGCError as exc:
            if exc.status in (403, 429):
                found = runtime.sessions.verify(token, exchange.now)
                exchange.key_id = found.key_id if found else None
            elif exc.status == 401 and (fallback := self._without_credential(scope)) is not None:
                return fallback  # a stale cookie is worth no less than none: what needs no key still answers
            raise

    def _without_credential(self, scope: Scope) -> Policy | None:
        """What a caller presenting nothing may see here: the anonymous policy, the key-free pages' policy,
        or ``None`` when a credential is required."""
        anonymous = self.runtime.anonymous()
        if anonymous is not None:
            return anonymous
        return self.runtime.public_only() if needs_no_key(scope["path"]) else None

    async def _serve(self, scope: Scope, receive: Receive, send: Send, exchange: _Exchange) -> None:
        """Run the app (``HEAD`` as ``GET`` without the body; the body read no further than the limit)."""
        head = scope["method"] == "HEAD"
        inner = {**scope, "method": "GET"} if head else scope  # the shared state dict travels along

        async def recorded(message: Message) -> None:
            if message["type"] == "http.response.start":
                exchange.status = message["status"]
                if exchange.grant is not None and _is_page(message):
                    message = self._with_session(message, exchange.grant, exchange.now, scope)
            elif not exchange.audited and message["type"] == "http.response.body" and not message.get("more_body"):
                self._audit(inner, exchange)  # journaled before the last byte leaves: an answer is never lost
            if head and message["type"] != "http.response.start" and message.get("body"):
                message = {**message, "body": b""}
            await send(message)

        try:
            await self.app(inner, _limited(receive, self.max_body), recorded)
        finally:
            if head and "route" in inner:
                scope["route"] = inner["route"]  # for the outer middleware's metrics
            if not exchange.audited:
                self._audit(inner, exchange)

    def _audit(self, scope: Scope, exchange: _Exchange) -> None:
        exchange.audited = True
        policy = exchange.policy
        route_path = getattr(scope.get("route"), "path", None)
        found = (scope.get("path_params") or {}).get("collectionId")
        route, path, collection, params = _described(route_path, scope["path"], found, scope.get("query_string", b""))
        audit = self.runtime.audit
        audit.submit(AuditRecord(
            ts=exchange.now,
            edition=self.runtime.edition,
            key_id=(policy.key_id if policy is not None else None) or exchange.key_id or _noted_key(scope),
            client_ip=exchange.client_ip,
            method=exchange.method,
            route=route,
            path=path,
            collection=collection,
            params=params,
            returned=_returned(scope, exchange.status),
            status=exchange.status,
            duration_ms=round((time.perf_counter() - exchange.started) * 1000, 3),
            id=audit.new_id(),
            request_id=scope.get("state", {}).get("request_id"),
        ))


@functools.lru_cache(maxsize=4096)  # map clients repeat their URLs
def _described(route_path: str | None, path: str, collection: str | None,
               query: bytes) -> tuple[str | None, str, str | None, str | None]:
    """What the audit keeps of a request's target: (route, path, collection, parameters), each printable.
    The collection is the matched route's, else read from the path (a request refused before routing)."""
    if collection is None and (m := COLLECTION_PATH.match(path)):
        collection = m.group(1)
    return (printable(route_path) if route_path else None, printable(path)[:500],
            printable(collection)[:200] if collection else None, audit_params(query))


def _from_query(scope: Scope) -> bool:
    """Whether the request's key came as a query parameter (not in the header)."""
    return not any(name == KEY_HEADER for name, _ in scope.get("headers", ()))


def _limited(receive: Receive, max_body: int) -> Receive:
    """``receive`` refusing a request body longer than ``max_body`` (``PayloadTooLarge``)."""
    seen = 0

    async def limited() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > max_body:
                raise PayloadTooLarge(max_body)
        return message

    return limited


def _is_page(message: Message) -> bool:
    """A successful HTML page (what a browser opened, so what may receive the session cookie)."""
    if message["status"] != 200:
        return False
    for name, value in message.get("headers", ()):
        if len(name) == 12 and name.lower() == b"content-type":
            return value.startswith(b"text/html")
    return False


def _noted_key(scope: Scope) -> str | None:
    """The key id a route noted (``POST /session`` authenticates the key itself)."""
    noted = scope.get("state", {}).get("audit", {}).get("key_id")
    return str(noted) if noted else None
