"""HTML pages: one Jinja2 environment, autoescaped, rendering the same documents the JSON carries.

Part of the floor: every capability renders its pages here (``templates/``); ``static/`` holds the
files the pages load from this server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from server.web import base_url

STATIC_DIR = Path(__file__).parent / "static"
_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
)


def render_page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render a page template with the request's base URL available as ``base``."""
    html = _env.get_template(template).render(base=base_url(request), **context)
    return HTMLResponse(html, status_code=status_code)
