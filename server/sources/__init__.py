"""Data sources behind one small protocol; each backend's store (``server.stores``) makes its source."""

from __future__ import annotations

from server.sources.base import Cursor, Extent, ItemQuery, Page, Source, TileRequest, TimeInterval

__all__ = ["Cursor", "Extent", "ItemQuery", "Page", "Source", "TileRequest", "TimeInterval"]
