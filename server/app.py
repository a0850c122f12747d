"""The application factory: ``create_app(settings)`` builds the FastAPI app and its lifespan."""

from __future__ import annotations

import gc
from contextlib import asynccontextmanager
from importlib import import_module

from fastapi import Depends, FastAPI

from server import cache, credentials, errors, observability, policy
from server.catalog import load_catalog
from server.policy import cors
from server.settings import Settings
from server.stores import open_store
from server.tiling.handlers import collect_handlers

# Each capability exposes ``router``; the order is the order of the OpenAPI document. A capability may
# also serve the tiles of a collection kind (``TILE_HANDLERS``, see ``server.tiling.handlers``).
CAPABILITIES = (
    "server.common.routes",
    "server.features.routes",
    "server.tiles.routes",
    "server.raster.routes",
    "server.stac_api.routes",
    "server.styles.routes",
    "server.processes.routes",
    "server.profiles.routes",
    "server.viewer.routes",
    "server.wmts.routes",
    "server.threed.routes",
    "server.scene.routes",
)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app. The catalog is validated here, so a bad collection file stops start-up."""
    settings = settings or Settings()
    catalog = load_catalog(settings.collections_dir)
    store = open_store(settings)
    source = store.source(catalog)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await source.open()
        await app.state.cache.open()
        gc.collect()
        gc.freeze()  # start-up objects leave the collector's generations: shorter pauses while serving
        try:
            yield
        finally:
            await app.state.cache.close()
            await source.close()

    app = FastAPI(
        title="OneMap",
        description="The natural-resources one map (自然资源一张图) as OGC APIs.",
        version="0.1.0",
        openapi_url=None,  # /api (OpenAPI 3.0) and /api.html are served by server.common.openapi
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        # FastAPI's OpenTelemetry hooks ask the environment on every request; nothing here configures them
        telemetry={"tracing": False, "metrics": False, "logs": False},
        dependencies=[Depends(policy.refuse_repeated)],  # what a route reads is what the audit records
    )
    app.state.settings = settings
    app.state.catalog = catalog
    app.state.store = store
    app.state.source = source
    errors.install(app)
    credentials.redact_logs()
    cache.install(app, settings, catalog, source)
    app.state.capabilities = [import_module(name) for name in CAPABILITIES]
    app.state.tile_handlers = collect_handlers(app.state.capabilities)
    for module in app.state.capabilities:
        app.include_router(module.router)
    policy.install(app)  # every request is authenticated and audited
    cors.install(app, settings)  # preflights need no key, every response carries CORS headers
    observability.install(app)  # outermost: /healthz, /readyz, /metrics, request ids, request metrics
    return app
