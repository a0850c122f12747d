"""The API definition at /api: OpenAPI 3.0, every query parameter declared, served under both media types."""

from __future__ import annotations

import pytest
from openapi_spec_validator import validate

OPENAPI = "application/vnd.oai.openapi+json;version=3.0"
F_JSON_HTML = {"f": "string"}
FILTER = {"filter": "string", "filter-lang": "string", "filter-crs": "string"}
SEARCH = {"bbox": "string", "intersects": "string", "datetime": "string", "ids": "string", "collections": "string",
          "limit": "integer", "token": "string", **FILTER, "sortby": "string", "fields": "string"}
WMTS_KVP = {name: "string" for name in ("SERVICE", "REQUEST", "VERSION", "LAYER", "STYLE", "TILEMATRIXSET",
                                        "TILEMATRIX", "TILEROW", "TILECOL", "FORMAT")}
# every route's query parameters, with their types
DECLARED = {
    ("get", "/"): F_JSON_HTML,
    ("get", "/conformance"): F_JSON_HTML,
    ("get", "/collections"): F_JSON_HTML,
    ("get", "/collections/{collectionId}"): F_JSON_HTML,
    ("get", "/collections/{collectionId}/items"): {
        "bbox": "string", "bbox-crs": "string", "crs": "string", "datetime": "string", "limit": "integer",
        "properties": "string", "sortby": "string", "cursor": "string", **FILTER, "f": "string",
    },
    ("get", "/collections/{collectionId}/queryables"): {"f": "string"},
    ("get", "/collections/{collectionId}/sortables"): {"f": "string"},
    ("get", "/collections/{collectionId}/items/{featureId}"): {"crs": "string", "f": "string"},
    ("get", "/tileMatrixSets"): {},
    ("get", "/tileMatrixSets/{tileMatrixSetId}"): {},
    ("get", "/collections/{collectionId}/tiles"): {},
    ("get", "/collections/{collectionId}/tiles/{tileMatrixSetId}"): {"f": "string"},
    ("get", "/collections/{collectionId}/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}"): {
        "f": "string", "render": "string", "item": "string", "datetime": "string",
    },
    ("get", "/tiles"): {},
    ("get", "/tiles/{tileMatrixSetId}"): {"f": "string"},
    ("get", "/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}"): {"f": "string", "collections": "string"},
    ("get", "/collections/{collectionId}/terrain/layer.json"): {},
    ("get", "/collections/{collectionId}/terrain/{z}/{x}/{y}.terrain"): {"item": "string"},
    ("get", "/collections/{collectionId}/elevation"): {
        "lon": "number", "lat": "number", "item": "string", "datetime": "string",
    },
    ("get", "/collections/{collectionId}/assets/{assetId}"): {},
    ("get", "/stac"): {},
    ("get", "/stac/conformance"): {},
    ("get", "/stac/queryables"): {},
    ("get", "/stac/collections"): {},
    ("get", "/stac/collections/{collectionId}"): {},
    ("get", "/stac/collections/{collectionId}/items"): SEARCH,
    ("get", "/stac/collections/{collectionId}/items/{itemId}"): {},
    ("get", "/stac/search"): SEARCH,
    ("post", "/stac/search"): {},
    ("get", "/styles"): {"f": "string"},
    ("get", "/styles/{styleId}"): {"f": "string"},
    ("get", "/styles/{styleId}/metadata"): {"f": "string"},
    ("get", "/codes/{unitCode}"): {"f": "string"},
    ("get", "/processes"): {},
    ("get", "/processes/{processId}"): {},
    ("post", "/processes/{processId}/execution"): {},
    ("get", "/jobs"): {},
    ("get", "/jobs/{jobId}"): {},
    ("get", "/jobs/{jobId}/results"): {},
    ("delete", "/jobs/{jobId}"): {},
    ("get", "/map"): {},
    ("get", "/scene"): {"layers": "string"},
    ("get", "/collections/{collectionId}/3dtiles"): {},
    ("get", "/collections/{collectionId}/3dtiles/tileset.json"): {},
    ("get", "/collections/{collectionId}/3dtiles/tiles/{tile}.glb"): {},
    ("post", "/session"): {},
    ("delete", "/session"): {},
    ("post", "/session/logout"): {},
    ("get", "/wmts"): WMTS_KVP,
    **{("get", f"/{layer}/wmts"): WMTS_KVP for layer in ("img_c", "img_w", "ter_c", "ter_w", "vec_c", "vec_w")},
    ("get", "/wmts/1.0.0/WMTSCapabilities.xml"): {},
    ("get", "/wmts/1.0.0/{layer}/{style}/{tileMatrixSet}/{tileMatrix}/{tileRow}/{tileCol}.{ext}"): {},
}
ENUMS = {
    ("/collections/{collectionId}/items", "f"): ["json", "html", "csv", "fgb"],
    ("/collections/{collectionId}/items/{featureId}", "f"): ["json", "html"],
    ("/collections/{collectionId}/items", "filter-lang"): ["cql2-text", "cql2-json", "cql-text"],
    ("/styles/{styleId}", "f"): ["mapbox", "json"],
    ("/collections/{collectionId}/tiles/{tileMatrixSetId}", "f"): ["json", "tilejson"],
    ("/collections/{collectionId}/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}", "render"):
        ["terrain-rgb", "terrarium", "hillshade"],
}


@pytest.fixture(scope="module")
def spec(client):
    return client.get("/api").json()


def test_api_is_openapi_30_and_valid(spec):
    assert spec["openapi"].startswith("3.0.")
    validate(spec)


def test_api_media_types(client, spec):
    asked = client.get("/api", headers={"Accept": OPENAPI})
    assert asked.status_code == 200 and asked.headers["content-type"] == OPENAPI
    assert asked.json() == spec and "accept" in asked.headers["vary"].lower()
    for accept in ("application/vnd.oai.openapi+json", "application/json", "*/*"):
        expected = OPENAPI if "openapi" in accept else "application/json"
        assert client.get("/api", headers={"Accept": accept}).headers["content-type"] == expected
    page = client.get("/api.html")
    assert page.status_code == 200 and "/api" in page.text


def test_landing_pages_state_the_version_served(client, spec):
    served = ".".join(spec["openapi"].split(".")[:2])
    landing = {link["rel"]: link for link in client.get("/").json()["links"]}
    assert landing["service-desc"]["type"] == f"application/vnd.oai.openapi+json;version={served}"
    assert landing["service-desc"]["href"].endswith("/api") and landing["service-doc"]["href"].endswith("/api.html")
    stac = {link["rel"]: link for link in client.get("/stac").json()["links"]}
    assert stac["service-desc"]["type"] == landing["service-desc"]["type"]


def test_every_route_declares_its_query_parameters(spec):
    routes = {(method, path) for path, operations in spec["paths"].items() for method in operations}
    assert routes == set(DECLARED), "a route was added or removed: list its parameters here"
    for (method, path), expected in DECLARED.items():
        operation = spec["paths"][path][method]
        query = {p["name"]: p["schema"]["type"] for p in operation.get("parameters", []) if p["in"] == "query"}
        assert query == expected, (method, path)
    for (path, name), values in ENUMS.items():
        declared = next(p for p in spec["paths"][path]["get"]["parameters"] if p["name"] == name)
        assert declared["schema"]["enum"] == values, (path, name)
    limit = next(p for p in spec["paths"]["/collections/{collectionId}/items"]["get"]["parameters"]
                 if p["name"] == "limit")
    assert limit["schema"]["minimum"] == 1 and "maximum" in limit["schema"]["description"]


def test_stac_post_body_is_declared(spec):
    body = spec["paths"]["/stac/search"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    ref = body.get("$ref") or body["allOf"][0]["$ref"]  # an optional body: none searches everything
    model = spec["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    types = {name: prop.get("type") or sorted(t.get("type") for t in prop["anyOf"])
             for name, prop in model["properties"].items()}
    assert types == {"bbox": "array", "intersects": "object", "datetime": "string", "ids": "array",
                     "collections": "array", "limit": "integer", "token": "string", "filter": ["object", "string"],
                     "filter-lang": "string", "filter-crs": "string", "sortby": "array", "fields": "object"}
    assert model["additionalProperties"] is False


def test_errors_and_keys_are_documented_as_served(spec):
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            assert "422" not in operation["responses"], (method, path)
    items = spec["paths"]["/collections/{collectionId}/items"]["get"]["responses"]["400"]
    assert items["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/Exception"
    schemes = spec["components"]["securitySchemes"].values()
    assert {(s["in"], s["name"]) for s in schemes} == {("header", "X-API-Key"), ("query", "api_key"), ("query", "tk")}
    assert {} in spec["security"], "anonymous callers are admitted where the edition allows them"


def test_validation_errors_name_the_parameter(client):
    r = client.get("/collections/parcels/tiles/WebMercatorQuad/x/0/0")
    assert r.status_code == 400 and "'tileMatrix'" in r.json()["description"]
    r = client.post("/stac/search", content=b'{"limit": 1, "colour": "red"}')
    assert r.status_code == 400 and r.json()["description"] == "Unknown parameter 'colour'."
    r = client.post("/stac/search", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["description"] == "The request body is not valid JSON."
