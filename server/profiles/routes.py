"""``GET /codes/{unitCode}``: the unit-code profile (一码全息) as JSON, or an HTML page with a small map."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request

from server.codes.unit_code import parse_unit_code
from server.html import render_page
from server.policy import policy_of
from server.profiles.build import profile
from server.profiles.sketch import outline
from server.web import HTML, JSON, base_url, format_param, json_response, output_format

router = APIRouter(tags=["Unit-code profile"])
Format = Annotated[str | None, format_param("json", "html")]


@router.get("/codes/{unitCode}", summary="Everything about one parcel, by its unit code")
async def unit_code_profile(
    request: Request,
    unitCode: Annotated[str, Path(description="The 28-character real estate unit code")],  # noqa: N803
    f: Format = None,
):
    """The code's parts, the parcel, its buildings, the planning zones, control lines and survey classes
    over it (m², %), the imagery covering it and its elevation; 400 naming the first wrong position of a
    malformed code, 404 for a code without a parcel the caller may see."""
    fmt = output_format(request)
    code = parse_unit_code(unitCode)
    base = base_url(request)
    state = request.app.state
    doc = await profile(state.source, policy_of(request), code, state.settings.data_dir, base)
    url = f"{base}/codes/{code.code}"
    doc["links"] = [
        {"href": url, "rel": "self" if fmt == "json" else "alternate", "type": JSON, "title": "This profile"},
        {"href": f"{url}?f=html", "rel": "self" if fmt == "html" else "alternate", "type": HTML,
         "title": "This profile as HTML"},
    ]
    if fmt == "html":
        return render_page(request, "profile.html", doc=doc, sketch=outline(doc["parcel"]["geometry"]))
    return json_response(doc)
