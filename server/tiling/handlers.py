"""Tile handlers by collection kind: each kind of collection has one owner of its tiles.

The routes under ``/collections/{collectionId}/tiles`` live in one place (``server.tiles.routes``):
they look the collection up once, check the grid and the tile address, and hand the rest to the
handler of the collection's kind. A capability offers handlers by defining ``TILE_HANDLERS`` (kind ->
handler) in its module listed in ``app.CAPABILITIES``; ``create_app`` collects them with
``collect_handlers`` into ``app.state.tile_handlers``. A kind nobody serves answers 404.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import morecantile
from fastapi import Request
from fastapi.responses import Response

from server.catalog import Collection
from server.errors import NotFound


class TileHandler(Protocol):
    """What the owner of one collection kind's tiles provides to the shared tile routes."""

    def data_type(self, collection: Collection) -> str:
        """The OGC tileset ``dataType`` of the collection: ``vector``, ``map`` or ``coverage``."""
        ...

    def tileset(self, request: Request, collection: Collection, tms: morecantile.TileMatrixSet) -> Response:
        """The tileset metadata of the collection in one grid."""
        ...

    async def tile(
        self, request: Request, collection: Collection, tms: morecantile.TileMatrixSet, tile: morecantile.Tile
    ) -> Response:
        """One tile, already checked against the grid."""
        ...


def collection_kind(collection: Collection) -> str:
    """The kind a collection's tiles are registered under: ``vector`` or ``raster``."""
    return collection.kind


def collect_handlers(modules: Iterable[Any]) -> dict[str, TileHandler]:
    """The handler of each kind from the modules' ``TILE_HANDLERS``; two owners of one kind is an error."""
    found: dict[str, TileHandler] = {}
    for module in modules:
        for kind, handler in getattr(module, "TILE_HANDLERS", {}).items():
            if kind in found:
                raise ValueError(f"two capabilities serve the tiles of {kind} collections")
            found[kind] = handler
    return found


def handler_for(request: Request, collection: Collection) -> TileHandler:
    """The handler of the collection's kind in this app, or a 404 when no capability serves it."""
    handler = request.app.state.tile_handlers.get(collection_kind(collection))
    if handler is None:
        raise NotFound("Tiles of this collection are not available.")
    return handler
