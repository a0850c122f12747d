"""The fast path: answer a repeated GET from memory before routing.

A plain ASGI middleware. For a GET whose raw request (who asks, path, query, Host, Accept,
Accept-Language) was answered from the cache before, it checks that the data versions the entry
depends on are unchanged (memoized, no I/O within ``cache_version_ttl_s``) and sends the stored
bytes with the same headers ``cached()`` would. Everything else goes to the app untouched, so the
routed path remains the one place where keys, scopes and entries are made.

"Who asks" is the access policy's cache scope and anonymity when the policy middleware has run
before this one (it must be added after the cache, i.e. outside it, so authentication, quotas and
audit still apply to every request). Without a policy in the scope, only requests without
credentials are answered here. If the policy middleware ran after the fast path, fingerprints
recorded by routes (with a policy) never match those seen here (without one): the fast path then
stays idle rather than skipping the policy.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from server.cache.response_cache import ResponseCache, scan


class FastPath:
    """ASGI middleware serving remembered cache hits without entering the router."""

    def __init__(self, app: ASGIApp, cache: ResponseCache) -> None:
        self.app = app
        self.cache = cache

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or not self.cache.aliases:
            await self.app(scope, receive, send)
            return
        info = scan(scope)
        found = await self.cache.fast_lookup(info) if info.eligible else None
        if found is None:
            await self.app(scope, receive, send)
            return
        entry, alias = found
        if alias.route is not None:  # what routing would have set, for the audit and access log
            scope["route"] = alias.route
            scope["path_params"] = alias.path_params
        status, headers, body = self.cache.variant(scope, entry, info, alias.public, "hit")
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
