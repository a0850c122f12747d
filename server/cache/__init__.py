"""Caching: in-process (bounded in bytes) and shared (Redis, fail-open) response caches, HTTP
validators (ETag/304, Cache-Control, Vary) and invalidation by data version (seeding the shared
cache is the ``onemap seed`` command, ``server/commands/seed.py``).

Routes call ``cached(request, kind, parts, produce, collections=...)`` (or decorate themselves with
``cache_response``); ``install`` attaches the cache to an app (``app.state.cache``) and the fast
path in front of the router. One mechanism: keys, entries and headers are made in ``cached``; the
fast path only replays entries it made, with the same headers.

Operations (settings, environment prefix ``ONEMAP_``):
- ``CACHE_MEMORY_BYTES`` bounds each worker's in-process cache (identity + gzip + brotli copies);
  ``CACHE_MAX_ENTRY_BYTES`` keeps huge pages out of both levels.
- ``REDIS_URL`` enables the shared cache; give Redis ``maxmemory`` with ``allkeys-lru``. Entries
  expire after ``REDIS_TTL_S``. ``REDIS_TIMEOUT_S``, ``REDIS_BREAKER_FAILURES`` and
  ``REDIS_BREAKER_COOLDOWN_S`` bound what a lost or slow Redis costs: a miss, never an error.
- ``CACHE_VERSION_TTL_S`` (default 1 s) is the staleness bound: an edit is seen at most that long
  after it commits (the trigger-maintained ``onemap_versions`` of PostGIS and of the embedded store;
  a store without it falls back to the file's modification stamp); raster collections follow their
  files' size and modification time.
- ``CACHE_SECRET`` keys the ETags; set the same value on every replica (random per process when
  unset, which only costs revalidations across workers). ``CACHE_NAMESPACE``: change it to drop
  every shared entry after an upgrade that changes response bytes.
- ``CACHE_MAX_AGE_S``: ``Cache-Control: public`` for anonymous internet-edition callers, ``private``
  for everyone else.
"""

from __future__ import annotations

from server.cache.response_cache import ResponseCache, all_rasters, cache_response, cached, path_collection
from server.cache.scope import cache_scope, is_anonymous, is_public

__all__ = [
    "ResponseCache", "all_rasters", "cache_response", "cache_scope", "cached", "install", "is_anonymous",
    "is_public", "path_collection",
]


def install(app, settings, catalog, source) -> ResponseCache:
    """Create the app's response cache, store it on ``app.state.cache`` and add the fast path.

    The caller opens and closes it in the app lifespan (``await cache.open()`` / ``close()``).
    Add the access-policy middleware after this (outside it), so the fast path sees the policy.
    """
    cache = ResponseCache(settings, catalog, source)
    app.state.cache = cache
    if settings.cache_fast_path:
        from server.cache.fastpath import FastPath

        app.add_middleware(FastPath, cache=cache)
    return cache
