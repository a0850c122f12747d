"""Who a response is for: the cache scope and whether the caller is anonymous.

The access policy (``server.policy``) sets ``request.state.policy`` with a ``cache_scope`` string, a
stable hash of the edition and of what the caller may see. Until a policy is attached, the scope is
the edition itself. A request is anonymous when the policy says so (``policy.anonymous``) or, with
no policy, when it carries no credential (``server.credentials``: API key header or parameter,
Authorization header).
"""

from __future__ import annotations

from starlette.requests import Request

from server.credentials import CREDENTIAL_HEADERS, CREDENTIAL_PARAMS


def _policy(request: Request):
    return getattr(request.state, "policy", None)


def edition(request: Request) -> str:
    """The edition serving this request (the policy's when attached, else the settings')."""
    value = getattr(_policy(request), "edition", None)
    return str(value) if value else request.app.state.settings.edition


def cache_scope(request: Request) -> str:
    """The caller's cache scope: ``request.state.policy.cache_scope``, else ``edition:<edition>``."""
    scope = getattr(_policy(request), "cache_scope", None)
    return str(scope) if scope else f"edition:{request.app.state.settings.edition}"


def has_credentials(headers: list[tuple[bytes, bytes]], query_string: bytes) -> bool:
    """True when raw ASGI headers or the query string carry a credential."""
    for name, _ in headers:
        if name in CREDENTIAL_HEADERS:
            return True
    if query_string:
        q = query_string.decode("latin-1").lower()
        return any(f"{p}=" in q for p in CREDENTIAL_PARAMS)
    return False


def is_anonymous(request: Request) -> bool:
    """True for a caller without credentials (what the policy says, when attached)."""
    anonymous = getattr(_policy(request), "anonymous", None)
    if anonymous is not None:
        return bool(anonymous)
    return not has_credentials(request.scope["headers"], request.scope.get("query_string", b""))


def is_public(request: Request) -> bool:
    """Shared caches (CDN, proxies) may keep the response: anonymous callers of the internet edition."""
    return edition(request) == "internet" and is_anonymous(request)
