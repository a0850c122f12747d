"""The bare ASGI reference of the cache benchmark: every request answered with the same bytes.

What this machine's HTTP server can do at all (``uvicorn load-tests.bare_asgi:app`` with the workers,
loop and parser OneMap runs with); ``BARE_BODY`` names the file whose bytes it sends and
``BARE_TYPE`` their content type.
"""

from __future__ import annotations

import os
from pathlib import Path

BODY = Path(os.environ["BARE_BODY"]).read_bytes()
HEADERS = [(b"content-type", os.environ.get("BARE_TYPE", "application/octet-stream").encode()),
           (b"content-length", str(len(BODY)).encode())]


async def app(scope, receive, send) -> None:
    """Answer any HTTP request with ``BODY``."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
