"""The store and the running rules agree, or the server does not serve.

A release records in its store label the rules its data was prepared under (``EditionsFile.
fingerprint``: the edition's levels and collection rules and the release rules). A server refuses a
labelled store when the running ``editions.yaml`` defines the store's edition differently - rules
tightened since the release would otherwise be applied to data prepared under looser ones, and a
row newly excluded at serve time from a coverage layer would leave a hole of its exact shape - and
names every difference, so the operator knows which release to rebuild. It also refuses to exclude
rows of a coverage layer at serve time (``release.<id>.coverage``) from a store not released for
those exclusions: such rows must go through a release, which fills their area.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from server.catalog import Catalog
from server.policy.editions import EditionsFile
from server.policy.labels import StoreLabel
from server.policy.model import CollectionAccess, RowCondition
from server.policy.resolve import collection_access


def differences(recorded: Any, running: Any, where: str = "") -> list[str]:
    """``key: <recorded> at release, <running> now`` for every leaf that differs, keys dotted."""
    if isinstance(recorded, dict) and isinstance(running, dict):
        out = []
        for k in sorted(set(recorded) | set(running)):
            out += differences(recorded.get(k), running.get(k), f"{where}.{k}" if where else str(k))
        return out
    if recorded == running:
        return []
    return [f"{where}: {orjson.dumps(recorded).decode()} at release, {orjson.dumps(running).decode()} now"]


def _excluded(catalog: Catalog, editions: EditionsFile, edition: str, cid: str) -> set[RowCondition]:
    c = catalog.get(cid)
    access = collection_access(c, editions.edition(edition)) if c is not None else None
    return set(access.restriction.exclude) if access else set()


def _coverage_problem(label: StoreLabel, catalog: Catalog, editions: EditionsFile, edition: str,
                      base: Mapping[str, CollectionAccess]) -> str | None:
    released_for = label.edition if label.edition in editions.editions else None
    for cid, rules in sorted(editions.release.items()):
        if rules.coverage is None or cid not in base:
            continue
        done = _excluded(catalog, editions, released_for, cid) if released_for is not None else set()
        if set(base[cid].restriction.exclude) - done:
            return (f"the '{edition}' edition removes rows of the coverage layer '{cid}', which this store "
                    f"still holds; removing them while serving would leave holes of their exact shape. "
                    f"Build a release for it (onemap release --edition {edition}) and import that.")
    return None


def rules_problem(label: StoreLabel, catalog: Catalog, editions: EditionsFile, edition: str,
                  base: Mapping[str, CollectionAccess]) -> str | None:
    """Why a server of ``edition`` (its collections ``base``) must not serve this store, or ``None``."""
    if label.edition is not None:
        rebuild = f"rebuild the release (onemap release --edition {label.edition}) and import it"
        if label.edition not in editions.editions:
            return f"the store was released for the '{label.edition}' edition, which editions.yaml no longer defines"
        if label.rules is None:
            return f"the store's label records no rules (a release made before rules were recorded); {rebuild}"
        changed = differences(orjson.loads(label.rules), editions.fingerprint(label.edition))
        if changed:
            return (f"the store was released for the '{label.edition}' edition under other rules than the "
                    f"running editions.yaml: {'; '.join(changed)}. Restore those rules or {rebuild}")
    return _coverage_problem(label, catalog, editions, edition, base)
