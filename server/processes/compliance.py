"""The ``site-compliance`` process: a site's overlap with the control lines, the planning uses, the
land survey classes and the parcels, and a verdict from the rules in ``config/compliance.yaml``.

Every layer is read through the ``Source`` with the caller's ``Restriction``: a layer the caller may
not see (or whose grouping field it may not read) is left out and named in ``unavailable_layers``, and
the rules on it are listed as not evaluated - no number is ever computed from rows it cannot see.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from server.catalog import VectorCollection
from server.codes.classes import CODE_LISTS
from server.policy import Policy, RestrictionError
from server.processes.inputs import SiteInputs
from server.processes.rules import ComplianceConfig, Verdict, combine
from server.sources import Source
from server.sources.areas import Overlap

AREA_DIGITS = 2


async def _layer(source: Source, policy: Policy, layer: str, group: str | None,
                 inputs: SiteInputs) -> list[Overlap] | None:
    """The layer's overlaps as the caller may see them; None when it may not see the layer or the field."""
    access = policy.access(layer)
    if access is None or not isinstance(access.view, VectorCollection):
        return None
    fields = (group,) if group else ()
    try:
        return await source.overlaps(access.view, inputs.site, fields, restriction=access.restriction)
    except RestrictionError:
        return None


def _grouped(overlaps: list[Overlap]) -> dict[str, float]:
    groups: dict[str, float] = {}
    for o in overlaps:
        key = "" if o.values[0] is None else str(o.values[0])
        groups[key] = groups.get(key, 0.0) + o.area_m2
    return groups


def _classes(groups: Mapping[str, float], site_m2: float, names: Mapping[str, str]) -> list[dict[str, Any]]:
    return [
        {"code": code, "name": names.get(code), "area_m2": round(area, AREA_DIGITS),
         "percent": round(100 * area / site_m2, 3) if site_m2 else None}
        for code, area in sorted(groups.items(), key=lambda kv: (-kv[1], kv[0]))
    ]


def _verdict(config: ComplianceConfig, measured: Mapping[str, dict[str, float]], inputs: SiteInputs,
             lang: str) -> dict[str, Any]:
    """The verdict, the rules that fired (with reasons) and those not evaluated for want of their layer."""
    fired: list[Verdict] = []
    reasons, not_evaluated = [], []
    for rule in config.rules:
        groups = measured.get(rule.layer)
        if groups is None:
            not_evaluated.append({"rule": rule.id, "layer": rule.layer})
            continue
        area = rule.measure(groups, inputs.area_m2, inputs.planned_use)
        if area is None or area <= rule.min_m2:
            continue
        fired.append(rule.verdict)
        reasons.append({"rule": rule.id, "verdict": rule.verdict, "area_m2": round(area, AREA_DIGITS),
                        "reason": rule.text(lang, area, inputs.planned_use)})
    return {"verdict": combine(fired), "complete": not not_evaluated, "reasons": reasons,
            "not_evaluated": not_evaluated}


async def site_compliance(source: Source, policy: Policy, config: ComplianceConfig, inputs: SiteInputs,
                          base: str, lang: str = "zh") -> dict[str, Any]:
    """The compliance report of ``inputs`` for a caller with ``policy`` (one read per layer, concurrently)."""
    layers = list(config.layers.items())
    results = await asyncio.gather(*(_layer(source, policy, lid, group, inputs) for lid, group in layers))
    measured: dict[str, dict[str, float]] = {}
    report: dict[str, Any] = {
        "site": {"area_m2": round(inputs.area_m2, AREA_DIGITS), "vertices": inputs.vertices,
                 "area_crs": f"http://www.opengis.net/def/crs/EPSG/0/{inputs.site.epsg}",
                 "area_zones": [f"http://www.opengis.net/def/crs/EPSG/0/{z}" for z in inputs.site.zones],
                 "planned_use": inputs.planned_use},
        "layers": {},
        "unavailable_layers": [lid for (lid, _), r in zip(layers, results, strict=True) if r is None],
    }
    for (lid, group), overlaps in zip(layers, results, strict=True):
        if overlaps is None:
            continue
        report["layers"][lid] = _layer_report(policy, lid, group, overlaps, inputs.area_m2, base)
        if group:
            measured[lid] = _grouped(overlaps)
    report.update(_verdict(config, measured, inputs, lang))
    return report


def _layer_report(policy: Policy, lid: str, group: str | None, overlaps: list[Overlap], site_m2: float,
                  base: str) -> dict[str, Any]:
    """A layer's part of the report: areas by class, or the features one by one (with links)."""
    total = sum(o.area_m2 for o in overlaps)
    part: dict[str, Any] = {"overlap_m2": round(total, AREA_DIGITS), "features": len(overlaps),
                            "items": f"{base}/collections/{lid}/items"}
    if group:
        access = policy.access(lid)
        field = access.view.field(group) if access is not None and isinstance(access.view, VectorCollection) else None
        names = CODE_LISTS.get(field.codes or "", {}) if field is not None else {}
        part["by_" + group] = _classes(_grouped(overlaps), site_m2, names)
    else:
        items = f"{base}/collections/{lid}/items/"
        part["list"] = [{"id": o.id, "area_m2": round(o.area_m2, AREA_DIGITS), "href": f"{items}{o.id}"}
                        for o in overlaps]
    return part
