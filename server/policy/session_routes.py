"""``POST /session`` exchanges an API key for the browser session cookie; ``DELETE /session`` ends it.

The key comes in the ``X-API-Key`` header, else as ``api_key`` in a JSON object or a form body. It
is verified as a request would be (revoked, client address range, validity window, rate, quota).
A request naming another site as its ``Origin`` (or ``Referer``) is refused, so no page elsewhere
can sign a browser in under its own key.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, Request, Response

from server.credentials import KEY_HEADER_NAME, KEY_PARAMS, SESSION_COOKIE
from server.errors import Forbidden, InvalidParameter
from server.policy.sessions import clearing_header, cookie_header, same_origin, secure_cookie

router = APIRouter(tags=["Sessions"])


def _own_origin(request: Request) -> str:
    return request.app.state.settings.base_url or str(request.base_url)


async def _presented(request: Request) -> str:
    """The key of a session request: header, else the JSON or form field (400 when none)."""
    header = request.headers.get(KEY_HEADER_NAME)
    if header:
        return header
    body = await request.body()
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    value: object = None
    if kind == "application/json" and body:
        try:
            found = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise InvalidParameter("The request body is not valid JSON.") from None
        value = found.get(KEY_PARAMS[0]) if isinstance(found, dict) else None
    elif kind == "application/x-www-form-urlencoded":
        value = dict(parse_qsl(body.decode("latin-1"))).get(KEY_PARAMS[0])
    if not isinstance(value, str) or not value:
        raise InvalidParameter(f"Send the API key in the {KEY_HEADER_NAME} header or as '{KEY_PARAMS[0]}' "
                               "in a JSON or form body.")
    return value


def _refuse_other_sites(request: Request) -> None:
    claimed = request.headers.get("origin") or request.headers.get("referer")
    if claimed and not same_origin(request.scope["headers"], _own_origin(request)):
        raise Forbidden("A session can only be opened from this server's own pages.")


@router.post("/session", summary="Exchange an API key for a browser session cookie")
async def open_session(request: Request) -> Response:
    """Set the ``onemap_session`` cookie (HttpOnly, SameSite=Lax, Secure over HTTPS) for a valid key."""
    _refuse_other_sites(request)
    raw_key = await _presented(request)
    runtime = request.app.state.policy
    now = dt.datetime.now(dt.UTC)
    client = request.client.host if request.client else None
    token, max_age, policy = await runtime.open_session(raw_key, client, now)
    request.state.audit["key_id"] = policy.key_id
    expires = now + dt.timedelta(seconds=max_age)
    body = orjson.dumps({"cookie": SESSION_COOKIE, "expires": expires.isoformat(timespec="seconds")})
    secure = secure_cookie(request.scope.get("scheme"), request.app.state.settings.base_url)
    return Response(body, media_type="application/json", headers={
        "Set-Cookie": cookie_header(token, max_age, secure), "Cache-Control": "no-store"})


@router.delete("/session", summary="End the browser session", status_code=204)
@router.post("/session/logout", summary="End the browser session", status_code=204)
async def close_session(request: Request) -> Response:
    """Clear the session cookie."""
    secure = secure_cookie(request.scope.get("scheme"), request.app.state.settings.base_url)
    return Response(status_code=204, headers={"Set-Cookie": clearing_header(secure), "Cache-Control": "no-store"})
