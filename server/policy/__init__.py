"""Editions, classification, desensitization, API keys, quotas and audit.

Routes look collections up only through ``visible_collection`` / ``visible_collections``: they get
the collection of the kind they serve as the caller may see it (visible fields only, capped zooms
and resolution) or the one 404 of a missing collection. Every read of data (sources, rasters, STAC,
releases) takes the caller's ``Restriction`` as a required keyword argument - ``restriction_for``
for one collection, ``restrictions`` for several - and applies it (fields selected, rows excluded,
fields masked, coordinates reduced, resolution capped) before any byte leaves it; a read handed
anything else raises ``RestrictionError``. Caches read ``request.state.policy.cache_scope``.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TypeVar, get_args, overload

from fastapi import FastAPI, Request

from server.catalog import Collection, CollectionBase
from server.errors import NotFound, collection_not_found
from server.policy.middleware import PolicyMiddleware
from server.policy.model import CollectionAccess, Policy, Restriction, RestrictionError, RowCondition, checked
from server.policy.repeats import refuse_repeated
from server.policy.runtime import PolicyRuntime
from server.policy.session_routes import router as session_router

__all__ = [
    "CollectionAccess", "Policy", "PolicyRuntime", "Restriction", "RestrictionError", "RowCondition",
    "access", "checked", "install", "note_returned", "policy_of", "refuse_repeated", "restriction_for", "restrictions",
    "session_active",
    "visible_collection", "visible_collections",
]

K = TypeVar("K", bound=CollectionBase)


def install(app: FastAPI) -> PolicyRuntime:
    """Attach the policy to an app built by ``create_app``: middleware, start-up checks, audit writer.

    Also serves ``/session`` (browser sessions, ``session_routes.py``).
    Call after the routers are included. Raises ``EditionError`` for an unknown edition or rules
    that do not match the catalog; start-up fails (``StoreRefused``) on a store above the edition.
    """
    runtime = PolicyRuntime(app.state.settings, app.state.catalog, app.state.store)
    app.state.policy = runtime
    app.include_router(session_router)
    app.add_middleware(PolicyMiddleware, runtime=runtime, settings=app.state.settings)
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


@overload
def visible_collection(request: Request, collection_id: str) -> Collection: ...


@overload
def visible_collection(request: Request, collection_id: str, kind: type[K]) -> K: ...


def visible_collection(request: Request, collection_id: str, kind: type[CollectionBase] = CollectionBase):
    """The collection as the caller may see it, or the 404 of a missing collection.

    With ``kind`` (``VectorCollection``, ``RasterCollection``), the result has that type; a visible
    collection of another kind is a 404 saying so (a raster collection has no items, a vector one no
    terrain), never that it does not exist.
    """
    view = access(request, collection_id).view
    if not isinstance(view, kind):
        wanted = get_args(kind.model_fields["kind"].annotation)[0]  # Literal["vector"] -> vector
        raise NotFound(f"Collection '{collection_id}' is a {view.kind} collection: it has no such resource "
                       f"(this path is offered for {wanted} collections; see /collections/{collection_id}).")
    return view


def restriction_for(request: Request, collection: CollectionBase) -> Restriction:
    """What a read of ``collection``'s data must apply for this caller (404 when it is hidden)."""
    return access(request, collection.id).restriction


def restrictions(request: Request) -> dict[str, Restriction]:
    """The caller's restriction of every visible collection, by id (for reads over several)."""
    return policy_of(request).restrictions


@overload
def visible_collections(request: Request) -> list[Collection]: ...


@overload
def visible_collections(request: Request, kind: type[K]) -> list[K]: ...


def visible_collections(request: Request, kind: type[CollectionBase] = CollectionBase):
    """Every collection the caller may see (of ``kind``, when given), as it may see it, in catalog order."""
    return [a.view for a in policy_of(request).collections.values() if isinstance(a.view, kind)]


def note_returned(request: Request, count: int) -> None:
    """Tell the audit how many features (or tiles, items) the response carries."""
    audit = getattr(request.state, "audit", None)
    if isinstance(audit, dict):
        audit["returned"] = count


def session_active(request: Request) -> bool:
    """Whether the browser is (or, with this response, will be) signed in by the session cookie:
    pages and the viewer then build no link or request with the key in it."""
    return bool(getattr(request.state, "session", False))
