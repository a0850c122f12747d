"""What every store writer takes: batches of rows of one collection, written all or nothing."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass
class Batch:
    """Rows for one collection: a list per field (catalog names) and lon/lat MultiPolygons."""

    collection: str
    columns: dict[str, list]
    geoms: np.ndarray

    def __len__(self) -> int:
        return len(self.geoms)


class Writer(Protocol):
    """A store writer (``GeoPackageWriter``, ``PostGISWriter``): tables are replaced when it finishes."""

    def write(self, batch: Batch) -> None:
        """Add one batch of rows to its collection's table."""
        ...

    def finish(self) -> None:
        """Index and put the written tables in place."""
        ...

    def abort(self) -> None:
        """Leave nothing half-written behind."""
        ...


def write_all(writer: Writer, batches: Iterable[Batch]) -> dict[str, int]:
    """Write every batch, then finish; on any failure abort, so nothing half-written stays.

    Returns the rows written per collection.
    """
    counts: dict[str, int] = {}
    try:
        for batch in batches:
            writer.write(batch)
            counts[batch.collection] = counts.get(batch.collection, 0) + len(batch)
        writer.finish()
    except BaseException:
        writer.abort()
        raise
    return counts
