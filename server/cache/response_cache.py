"""The response cache every cacheable route goes through: ``await cached(request, kind, parts, produce)``.

A key holds everything that changes the bytes: a namespace (settings ``cache_namespace``, package
version, digests of the catalog, the styles and the configuration files), the edition, the caller's
cache scope, the kind of resource and its identifying parts, the data version of each collection the
body is made from, and, as the route asks, the normalized query, the public base URL (bodies with
absolute links) and the language.

Lookup order: in-process (bounded in bytes) -> Redis (fail-open) -> ``produce()`` (one producer
per key at a time in a process; concurrent requests for the same key wait for it). Only 200 and
204 responses with a body in memory are stored; errors and streamed bodies pass through.

The cache also remembers which key a raw request (who asks, path, query, Host, Accept,
Accept-Language) led to and the data versions it depended on, so ``FastPath`` can answer the
next identical request before routing (see ``fastpath.py``).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson
from cachetools import LRUCache
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from server.cache import http
from server.cache.breaker import CircuitBreaker
from server.cache.entry import CorruptEntry, Entry
from server.cache.memory import MemoryCache, worker_budget
from server.cache.scope import cache_scope, edition, has_credentials, is_public
from server.cache.shared import SharedCache
from server.cache.versions import VersionMemo
from server.catalog import Catalog, Collection, RasterCollection
from server.credentials import CREDENTIAL_HEADERS, without_credentials
from server.web import base_url

log = logging.getLogger("onemap.cache")
Produce = Callable[[], Awaitable[Response]]
_DROP_HEADERS = {"content-length", "content-type", "content-encoding", "etag", "vary", "cache-control",
                 "date", "server", "set-cookie", "x-cache"}
_THREAD_BYTES = 64 * 1024  # compress bigger bodies in a worker thread


@dataclass(slots=True)
class RequestInfo:
    """What caching needs from a raw request, read in one pass over its headers.

    ``fingerprint`` identifies the raw request and who asks: the policy's cache scope and
    anonymity when a policy is attached to the scope, else anonymity from the credentials sent.
    ``eligible`` is False for a request with credentials but no policy (never answered early).
    """

    fingerprint: tuple
    accept_encoding: str
    if_none_match: str | None
    eligible: bool


@dataclass(slots=True)
class Alias:
    """A raw request -> the entry it was answered with, the versions it depended on, and routing facts."""

    digest: str
    deps: tuple[tuple[str, str], ...]
    public: bool
    route: Any = None
    path_params: dict | None = None


def scan(scope: Scope) -> RequestInfo:
    """Read what matters for caching from an ASGI scope (headers, query, attached policy)."""
    host = accept = language = encoding = b""
    inm = None
    credentials = False
    for name, value in scope["headers"]:
        if name == b"host":
            host = value
        elif name == b"accept":
            accept = value
        elif name == b"accept-language":
            language = value
        elif name == b"accept-encoding":
            encoding = value
        elif name == b"if-none-match":
            inm = value
        elif name in CREDENTIAL_HEADERS:
            credentials = True
    query = scope.get("query_string", b"")
    policy = scope["state"].get("policy") if "state" in scope else None
    if policy is not None:
        who, eligible = (getattr(policy, "cache_scope", None), bool(getattr(policy, "anonymous", False))), True
    else:
        if not credentials and query:
            credentials = has_credentials([], query)
        who, eligible = (None, not credentials), not credentials
    fingerprint = (who, scope.get("scheme"), host, scope.get("root_path", ""), scope["path"], query, accept, language)
    return RequestInfo(fingerprint, encoding.decode("latin-1"), inm.decode("latin-1") if inm else None, eligible)


class RawResponse(Response):
    """A response whose headers are already the final ASGI byte pairs."""

    def __init__(self, status: int, headers: list, body: bytes) -> None:
        self.status_code = status
        self.raw_headers = headers
        self.body = body
        self.background = None


def _namespace(settings, catalog: Catalog) -> str:
    """The settings' namespace, the package version, the catalog and the files of the styles and
    configuration directories: a worker started on an edited configuration (``kill -HUP``) shares no
    entry with the workers before it."""
    try:
        version = metadata.version("onemap")
    except metadata.PackageNotFoundError:
        version = "dev"
    digest = hashlib.blake2b(f"{settings.cache_namespace}|{version}|".encode(), digest_size=8)
    digest.update(orjson.dumps([c.model_dump(mode="json") for c in catalog]))
    for folder in (settings.styles_dir, settings.config_dir):
        for path in sorted(Path(folder).glob("*")):
            if path.is_file():
                digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


class ResponseCache:
    """The two cache levels, the version memo and the HTTP validators, for one app."""

    def __init__(self, settings, catalog: Catalog, source) -> None:
        self.catalog = catalog
        self.max_age = settings.cache_max_age_s
        self.fast_path = settings.cache_fast_path
        self.debug_header = settings.cache_debug_header
        self.max_entry = settings.cache_max_entry_bytes
        self.memory = MemoryCache(worker_budget(settings), settings.cache_max_entry_bytes)
        self.versions = VersionMemo(source, settings.cache_version_ttl_s, settings.data_dir,
                                    settings.cache_outage_grace_s)
        self.shared: SharedCache | None = None
        if settings.redis_url:
            breaker = CircuitBreaker("redis", settings.redis_breaker_failures, settings.redis_breaker_cooldown_s)
            self.shared = SharedCache(settings.redis_url, settings.redis_timeout_s, settings.redis_ttl_s, breaker)
        self._secret = (settings.cache_secret or secrets.token_hex(32)).encode()
        self.namespace = _namespace(settings, catalog)
        self.aliases: LRUCache = LRUCache(maxsize=50_000)
        self._inflight: dict[str, asyncio.Future] = {}
        self.stats = {"hit": 0, "hit-shared": 0, "miss": 0, "pass": 0}

    async def open(self) -> None:
        """Open the Redis client (lazily connected) when one is configured."""
        if self.shared is not None:
            await self.shared.open()

    async def close(self) -> None:
        """Close the Redis client."""
        if self.shared is not None:
            await self.shared.close()

    # -- keys and validators --------------------------------------------------------------------

    async def key(
        self, request: Request, kind: str, parts: Sequence[Any], collections: Iterable[Collection],
        query: bool, base: bool, language: str | None,
    ) -> tuple[str, tuple[tuple[str, str], ...]]:
        """The key digest for this request, and the (collection, version) pairs it depends on."""
        deps = tuple([(c.id, await self.versions.get(c)) for c in collections])
        items = [self.namespace, edition(request), cache_scope(request), kind, *map(str, parts)]
        items += [f"{cid}@{version}" for cid, version in deps]
        if query:  # credentials are not part of what is asked for (the scope stands for the caller)
            # JSON: one text per parameter list (no \x1f inside), in C where urlencode quotes in Python
            items.append(orjson.dumps(sorted(without_credentials(request.query_params.multi_items()))).decode())
        if base:
            items.append(base_url(request))
        if language:
            items.append(f"lang={language}")
        digest = hashlib.blake2b("\x1f".join(items).encode(), digest_size=20).hexdigest()
        return digest, deps

    def etag(self, digest: str, body: bytes) -> str:
        """A weak ETag keyed with the server secret over the key digest and the body digest."""
        mac = hmac.new(self._secret, digest.encode() + hashlib.sha256(body).digest(), hashlib.sha256)
        return 'W/"' + base64.urlsafe_b64encode(mac.digest()[:18]).decode() + '"'

    # -- lookups ----------------------------------------------------------------------------------

    async def lookup(self, digest: str) -> tuple[Entry | None, str]:
        """The entry from memory (``hit``) or Redis (``hit-shared``, then kept in memory)."""
        entry = self.memory.get(digest)
        if entry is not None:
            return entry, "hit"
        if self.shared is None:
            return None, "miss"
        packed = await self.shared.get(digest)
        if packed is None:
            return None, "miss"
        try:
            entry = Entry.unpack(packed)
        except CorruptEntry as exc:
            log.warning("ignoring unreadable shared cache entry %s: %s", digest, exc)
            return None, "miss"
        self.memory.put(digest, entry)
        return entry, "hit-shared"

    async def fast_lookup(self, info: RequestInfo) -> tuple[Entry, Alias] | None:
        """For a raw request seen before: its entry (if the data versions still match) and its alias."""
        alias = self.aliases.get(info.fingerprint)
        if alias is None:
            return None
        fresh = self.versions.fresh
        for cid, version in alias.deps:
            current = fresh(cid)
            if current is None:
                collection = self.catalog.get(cid)
                try:
                    current = await self.versions.get(collection) if collection else None
                except Exception:
                    return None
            if current != version:
                return None
        entry = self.memory.get(alias.digest)
        return (entry, alias) if entry is not None else None

    # -- filling ----------------------------------------------------------------------------------

    async def fill(
        self, request: Request, digest: str, produce: Produce, vary: str
    ) -> tuple[Entry | None, Response | None]:
        """Produce and store the entry, once per key at a time; ``(None, response)`` when not cacheable."""
        waiting = self._inflight.get(digest)
        if waiting is not None:
            entry = await asyncio.shield(waiting)
            if entry is not None:
                return entry, None
            return await self._produce(request, digest, produce, vary)
        future = asyncio.get_running_loop().create_future()
        self._inflight[digest] = future
        entry = None
        try:
            entry, response = await self._produce(request, digest, produce, vary)
            return entry, response
        finally:
            del self._inflight[digest]
            future.set_result(entry)

    async def _produce(
        self, request: Request, digest: str, produce: Produce, vary: str
    ) -> tuple[Entry | None, Response | None]:
        response = await produce()
        body = getattr(response, "body", None)
        if (
            response.status_code not in (200, 204) or not isinstance(body, bytes) or len(body) > self.max_entry
            or "set-cookie" in response.headers or "no-store" in response.headers.get("cache-control", "")
        ):
            return None, response
        status = response.status_code
        media = response.headers.get("content-type") if status == 200 else None
        extra = tuple((k, v) for k, v in response.headers.items() if k not in _DROP_HEADERS) + (("vary", vary),)
        etag = self.etag(digest, body)
        pack = self.memory.max_bytes > 0 or self.shared is not None
        args = (status, media, etag, body if status == 200 else b"", extra, pack)
        big = pack and len(body) > _THREAD_BYTES  # only compressing is worth a worker thread
        entry = await run_in_threadpool(Entry.build, *args) if big else Entry.build(*args)
        audit = request.scope.get("state", {}).get("audit")
        entry.returned = audit.get("returned") if isinstance(audit, dict) else None
        self.memory.put(digest, entry)
        if self.shared is not None:
            await self.shared.set(digest, entry.pack())
        return entry, None

    # -- answering ------------------------------------------------------------------------------

    def variant(
        self, scope: Scope, entry: Entry, info: RequestInfo, public: bool, level: str
    ) -> tuple[int, list, bytes]:
        """Status, raw headers and body for this client (304 when its copy is current).

        A hit also tells the access audit (``scope["state"]["audit"]``) how much the body carries.
        """
        self.stats[level] += 1
        if entry.returned is not None:
            audit = scope.get("state", {}).get("audit")
            if isinstance(audit, dict):
                audit["returned"] = entry.returned
        encoding = http.choose_encoding(info.accept_encoding, entry)
        status, body = http.status_and_body(entry, info.if_none_match, encoding)
        control = http.cache_control(public, self.max_age)
        x_cache = level if self.debug_header else None
        return status, list(http.raw_headers(entry, encoding, control, status, x_cache)), body

    async def serve(
        self, request: Request, kind: str, parts: Sequence[Any], produce: Produce, *,
        collections: Iterable[Collection] = (), query: bool = True, base: bool = False, language: str | None = None,
    ) -> Response:
        """The cached response for this request, producing and storing it on a miss."""
        try:
            digest, deps = await self.key(request, kind, parts, collections, query, base, language)
        except Exception as exc:  # no data version: the store is down; answer without the cache
            log.debug("cache bypassed for %s: %s", request.url.path, exc)
            self.stats["pass"] += 1
            return await produce()
        info = scan(request.scope)
        entry, level = await self.lookup(digest)
        if entry is None:
            entry, response = await self.fill(request, digest, produce, http.VARY_LANGUAGE if language else http.VARY)
            if entry is None:
                self.stats["pass"] += 1
                assert response is not None  # _produce returns the response whenever it stores no entry
                return response
        public = is_public(request)
        if self.fast_path and info.eligible:
            scope = request.scope
            self.aliases[info.fingerprint] = Alias(digest, deps, public, scope.get("route"), scope.get("path_params"))
        return RawResponse(*self.variant(request.scope, entry, info, public, level))


async def cached(
    request: Request, kind: str, parts: Sequence[Any], produce: Produce, *,
    collections: Iterable[Collection] = (), query: bool = True, base: bool = False, language: str | None = None,
) -> Response:
    """Serve ``produce()``'s response through the caches, with ETag/304, Cache-Control and Vary.

    ``kind`` names the resource ("tile", "items"...), ``parts`` identify it (ids, tms, z/row/col,
    format); ``collections`` are the collections the body is made from (their data versions go into
    the key); ``query`` adds the normalized query string, ``base`` the public base URL (for bodies
    with absolute links), ``language`` the negotiated language (and ``Accept-Language`` to Vary).
    Validate the request before calling: errors raised by ``produce`` are never cached.
    """
    cache: ResponseCache | None = getattr(request.app.state, "cache", None)
    if cache is None or request.method != "GET":
        return await produce()
    return await cache.serve(
        request, kind, parts, produce, collections=collections, query=query, base=base, language=language
    )


def cache_response(
    kind: str, *, query: bool = True, base: bool = True,
    collections: Callable[[Request, dict[str, Any]], Iterable[Collection]] | None = None,
) -> Callable:
    """Decorator form of ``cached`` for a route whose body depends only on its parameters.

    The route must take ``request: Request``. Its other arguments (path and declared query
    parameters) identify the resource; ``collections(request, arguments)`` names the collections
    the body is made from. Validation happens inside the route, so errors are never cached.
    """

    def decorate(route: Callable[..., Awaitable[Response]]) -> Callable[..., Awaitable[Response]]:
        @functools.wraps(route)
        async def endpoint(**arguments: Any) -> Response:
            request: Request = arguments["request"]
            parts = tuple(sorted((k, repr(v)) for k, v in arguments.items() if k != "request"))
            deps = collections(request, arguments) if collections is not None else ()
            return await cached(
                request, kind, parts, lambda: route(**arguments), collections=deps, query=query, base=base
            )

        return endpoint

    return decorate


def all_rasters(request: Request, arguments: dict[str, Any]) -> list[RasterCollection]:
    """``cache_response`` dependencies: every raster collection of the catalog."""
    return request.app.state.catalog.of_kind(RasterCollection)


def path_collection(request: Request, arguments: dict[str, Any]) -> list[Collection]:
    """``cache_response`` dependencies: the collection named by the ``collectionId`` path parameter."""
    found = request.app.state.catalog.get(arguments.get("collectionId"))
    return [found] if found is not None else []
