"""Editions, classification, desensitization, API keys, quotas and audit.

Routes look collections up only through ``visible_collection`` / ``visible_collections``: they get
the collection as the caller may see it (a ``CollectionView``: visible fields only, capped zooms and
resolution) or the one 404 of a missing collection. Sources read ``restriction_of(collection)`` and
apply it (rows excluded, fields masked, coordinates reduced) before any byte leaves them. Caches
read ``request.state.policy.cache_scope``.
"""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI, Request

from server.catalog import Collection
from server.errors import collection_not_found
from server.policy.middleware import PolicyMiddleware
from server.policy.model import CollectionAccess, Policy, Restriction, RowCondition
from server.policy.resolve import CollectionView, restriction_of
from server.policy.runtime import PolicyRuntime

__all__ = [
    "CollectionAccess", "CollectionView", "Policy", "PolicyRuntime", "Restriction", "RowCondition",
    "access", "install", "note_returned", "policy_of", "restriction_of", "visible_collection",
    "visible_collections", "visible_ids",
]


def install(app: FastAPI) -> PolicyRuntime:
    """Attach the policy to an app built by ``create_app``: middleware, start-up checks, audit writer.

    Call after the routers are included. Raises ``EditionError`` for an unknown edition or rules
    that do not match the catalog; start-up fails (``StoreRefused``) on a store above the edition.
    """
    runtime = PolicyRuntime(app.state.settings, app.state.catalog, app.state.store)
    app.state.policy = runtime
    app.add_middleware(PolicyMiddleware, runtime=runtime)
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a):
        async with inner(a) as state:
            await runtime.start()
            try:
                yield state
            finally:
                await runtime.stop()

    app.router.lifespan_context = lifespan
    return runtime


def policy_of(request: Request) -> Policy:
    """The request's policy; a request that has none sees nothing (fail safe)."""
    policy = getattr(request.state, "policy", None)
    if policy is None:
        return request.app.state.policy.public_only()
    return policy


def access(request: Request, collection_id: str) -> CollectionAccess:
    """The caller's access to a collection, or the 404 of a missing collection."""
    found = policy_of(request).access(collection_id)
    if found is None:
        raise collection_not_found(collection_id)
    return found


def visible_collection(request: Request, collection_id: str, kind: str | None = None) -> Collection:
    """The collection as the caller may see it, or the 404 of a missing collection.

    ``kind`` "vector" or "raster" answers the same 404 for a collection of the other kind.
    """
    view = access(request, collection_id).view
    if kind == "vector" and not view.is_vector or kind == "raster" and view.raster is None:
        raise collection_not_found(collection_id)
    return view


def visible_collections(request: Request) -> list[Collection]:
    """Every collection the caller may see, as it may see it, in catalog order."""
    return [a.view for a in policy_of(request).collections.values()]


def visible_ids(request: Request) -> set[str]:
    """Ids of the collections the caller may see."""
    return set(policy_of(request).visible_ids)


def note_returned(request: Request, count: int) -> None:
    """Tell the audit how many features (or tiles, items) the response carries."""
    audit = getattr(request.state, "audit", None)
    if isinstance(audit, dict):
        audit["returned"] = count
