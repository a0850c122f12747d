"""The OGC API Processes description of ``site-compliance`` (Part 1, the process description model)."""

from __future__ import annotations

from typing import Any

from server.processes.inputs import CRS84, SUPPORTED_CRS

PROCESS_ID = "site-compliance"
OUTPUT_ID = "report"
VERSION = "1.0.0"

_TITLES = {
    "zh": ("规划符合性分析",
           "计算用地范围与三区三线、规划用途分区、三调地类及宗地的重叠面积（CGCS2000 高斯-克吕格投影），"
           "并按配置的规则给出审查结论。"),
    "en": ("Site compliance", "Overlap in m² (CGCS2000 Gauss-Kruger) of a site with the control lines, the planning "
           "use zones, the land survey classes and the parcels, and a verdict from the configured rules."),
}


def summary(base: str, lang: str) -> dict[str, Any]:
    """The process summary of the /processes list."""
    title, description = _TITLES["en" if lang == "en" else "zh"]
    url = f"{base}/processes/{PROCESS_ID}"
    return {
        "id": PROCESS_ID, "title": title, "description": description, "version": VERSION,
        "keywords": ["规划符合性分析", "三区三线", "site compliance"],
        "jobControlOptions": ["sync-execute", "async-execute"],
        "outputTransmission": ["value"],
        "links": [
            {"href": url, "rel": "self", "type": "application/json", "title": title},
            {"href": f"{url}/execution", "rel": "http://www.opengis.net/def/rel/ogc/1.0/execute",
             "type": "application/json", "title": "Execute"},
        ],
    }


def description(base: str, lang: str) -> dict[str, Any]:
    """The full description: inputs and outputs with their JSON schemas."""
    doc = summary(base, lang)
    doc["inputs"] = {
        "geometry": {
            "title": "Site", "description": "A GeoJSON Polygon or MultiPolygon (a Feature is accepted too).",
            "minOccurs": 1, "maxOccurs": 1,
            "schema": {"type": "object", "contentMediaType": "application/geo+json",
                       "required": ["type", "coordinates"],
                       "properties": {"type": {"type": "string", "enum": ["Polygon", "MultiPolygon"]},
                                      "coordinates": {"type": "array"}}},
        },
        "crs": {
            "title": "CRS of the geometry", "description": f"Default {CRS84} (lon/lat).",
            "minOccurs": 0, "maxOccurs": 1,
            "schema": {"type": "string", "format": "uri", "enum": list(SUPPORTED_CRS), "default": CRS84},
        },
        "planned_use": {
            "title": "Planned use", "description": "First-level land and sea use code (01-24) of the planned use.",
            "minOccurs": 0, "maxOccurs": 1,
            "schema": {"type": "string", "pattern": "^(0[1-9]|1[0-9]|2[0-4])$"},
        },
    }
    doc["outputs"] = {
        OUTPUT_ID: {
            "title": "Compliance report",
            "description": "Areas by control line, planning use and land survey class, the parcels touched, "
                           "the verdict with reasons and the layers not available to the caller.",
            "schema": {"type": "object", "contentMediaType": "application/json"},
        },
    }
    return doc
