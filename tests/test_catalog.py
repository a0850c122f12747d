"""The catalog: collection files validate into typed kinds, and a bad file names its file and key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from server.catalog import Catalog, CatalogError, RasterCollection, VectorCollection, load_catalog
from tests.support import ROOT

SHIPPED = ROOT / "collections"


def test_every_shipped_collection_has_its_kind():
    catalog = load_catalog(SHIPPED)
    kinds = {c.id: c.kind for c in catalog}
    assert kinds == {"admin_boundaries": "vector", "buildings": "vector", "control_lines": "vector",
                     "dem": "raster", "imagery": "raster", "land_survey": "vector", "parcels": "vector",
                     "parcel_events": "vector", "planning_zones": "vector"}
    assert all(isinstance(c, VectorCollection if c.kind == "vector" else RasterCollection) for c in catalog)
    assert [c.id for c in catalog.of_kind(RasterCollection)] == ["dem", "imagery"]
    assert len(catalog.of_kind(VectorCollection)) == 7 and len(catalog) == 9
    assert Catalog(catalog.of_kind(RasterCollection)).ids == ("dem", "imagery")


def _write(directory: Path, source: str, change) -> Path:
    doc = yaml.safe_load((SHIPPED / f"{source}.yaml").read_text(encoding="utf-8"))
    change(doc)
    directory.mkdir(exist_ok=True)
    (directory / f"{source}.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return directory


@pytest.mark.parametrize("change,message", [
    (lambda d: d.pop("kind"), "parcels.yaml: key 'kind': missing; use one of vector, raster"),
    (lambda d: d.update(kind="3d"), "parcels.yaml: key 'kind': '3d' is not a collection kind"),
    (lambda d: d.update(kind="raster"), "parcels.yaml: key 'raster': Field required"),
    (lambda d: d["source"].pop("table"), "parcels.yaml: key 'source.table': Field required"),
    (lambda d: d.update(temporal_field="nope"), "temporal_field 'nope' is not among the fields"),
])
def test_a_bad_vector_file_names_file_and_key(tmp_path, change, message):
    with pytest.raises(CatalogError) as err:
        load_catalog(_write(tmp_path / "c", "parcels", change))
    assert message in str(err.value)


@pytest.mark.parametrize("change,message", [
    (lambda d: d.update(kind="vector"), "dem.yaml: key 'source': Field required"),
    (lambda d: d.update(fields=[]), "dem.yaml: key 'fields': Extra inputs are not permitted"),
    (lambda d: d["raster"].update(resolution_m=0), "dem.yaml: key 'raster.resolution_m'"),
    (lambda d: d["classification"].update(rows=[{"level": "secret", "field": "x", "values": [1]}]),
     "classification row rule field 'x' is not among the fields"),
])
def test_a_bad_raster_file_names_file_and_key(tmp_path, change, message):
    with pytest.raises(CatalogError) as err:
        load_catalog(_write(tmp_path / "c", "dem", change))
    assert message in str(err.value)
