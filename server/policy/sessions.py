"""Browser sessions: a signed, expiring token standing for an API key, carried in an HttpOnly cookie.

A browser exchanges its key once (``POST /session``, or the first page opened with ``?api_key=``)
for the ``onemap_session`` cookie, so later pages, links and the viewer's requests carry no key.
The token reads ``<key id>.<expiry (unix s)>.<binding>.<signature>``: the binding is an HMAC of the
key's stored secret digest, so a rotated or re-issued key no longer matches, and a revoked key is
refused as for the key itself; the signature (HMAC-SHA256 over the rest) makes it tamper-proof.
Every per-key rule (ranges, window, rate, quota, revocation) still applies on every request.

The signing secret is ``ONEMAP_SESSION_SECRET`` (the same on every replica); when unset, it is
derived from ``ONEMAP_CACHE_SECRET``, else drawn at random per process (sessions then end with
the process and do not cross replicas).

CSRF: a session authorizes ``GET``/``HEAD`` only, unless the request's ``Origin`` (else its
``Referer``) is this server's own origin; a cross-site ``POST`` carried by the cookie is refused.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from server.credentials import SESSION_COOKIE
from server.policy.keys import KeyRecord
from server.settings import Settings

TOKEN_FORMAT = re.compile(r"^([0-9a-f]{12})\.(\d{1,12})\.([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{43})$")
SAFE_METHODS = frozenset({"GET", "HEAD"})


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True)
class SessionToken:
    """What a verified token says: which key, until when, and the binding to that key's secret."""

    key_id: str
    expires: int
    binding: str


class SessionSigner:
    """Issues and verifies session tokens with one secret (see the module docstring)."""

    def __init__(self, settings: Settings) -> None:
        if settings.session_secret:
            secret = settings.session_secret.encode()
        elif settings.cache_secret:
            secret = hmac.new(settings.cache_secret.encode(), b"onemap session", hashlib.sha256).digest()
        else:
            secret = secrets.token_bytes(32)
        self._secret = secret
        self.ttl_s = settings.session_ttl_s

    def _mac(self, message: bytes, length: int = 32) -> str:
        return _b64(hmac.new(self._secret, message, hashlib.sha256).digest()[:length])

    def binding(self, record: KeyRecord) -> str:
        """The token's tie to the key's stored secret digest (changes when the key does)."""
        return self._mac(b"bind:" + record.id.encode() + b":" + record.secret_hash.encode(), 16)

    def issue(self, record: KeyRecord, now: dt.datetime) -> tuple[str, int]:
        """A token for ``record`` and its lifetime in seconds (the TTL, never past the key's end)."""
        ends = now + dt.timedelta(seconds=self.ttl_s)
        if record.not_after is not None:
            ends = min(ends, record.not_after)
        expires = int(ends.timestamp())
        body = f"{record.id}.{expires}.{self.binding(record)}"
        return f"{body}.{self._mac(body.encode())}", max(0, expires - int(now.timestamp()))

    def verify(self, token: str, now: dt.datetime) -> SessionToken | None:
        """The token's content when it is well-formed, genuine and unexpired; else ``None``."""
        m = TOKEN_FORMAT.match(token)
        if m is None:
            return None
        body = f"{m.group(1)}.{m.group(2)}.{m.group(3)}"
        if not hmac.compare_digest(self._mac(body.encode()), m.group(4)):
            return None
        expires = int(m.group(2))
        if expires <= now.timestamp():
            return None
        return SessionToken(m.group(1), expires, m.group(3))

    def bound_to(self, token: SessionToken, record: KeyRecord) -> bool:
        """Whether the token was issued for this very key (same secret digest)."""
        return hmac.compare_digest(self.binding(record), token.binding)


def session_cookie(headers: list[tuple[bytes, bytes]] | tuple) -> str | None:
    """The session token from the request's ``Cookie`` headers, or ``None``."""
    for name, value in headers:
        if name != b"cookie":
            continue
        for part in value.decode("latin-1").split(";"):
            k, sep, v = part.strip().partition("=")
            if sep and k == SESSION_COOKIE:
                return v.strip().strip('"')
    return None


def _header(headers: list[tuple[bytes, bytes]] | tuple, wanted: bytes) -> str | None:
    for name, value in headers:
        if name == wanted:
            return value.decode("latin-1")
    return None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def same_origin(headers: list[tuple[bytes, bytes]] | tuple, own: str) -> bool:
    """Whether ``Origin`` (else ``Referer``) names this server's own origin (``own``, a base URL)."""
    claimed = _header(headers, b"origin") or _header(headers, b"referer")
    return claimed is not None and claimed != "null" and _origin(claimed) == _origin(own)


def secure_cookie(scheme: str | None, base_url: str | None) -> bool:
    """Whether the cookie must be ``Secure``: an HTTPS request, or an HTTPS ``ONEMAP_BASE_URL``."""
    return scheme == "https" or (base_url or "").lower().startswith("https:")


def cookie_header(token: str, max_age: int, secure: bool) -> str:
    """The ``Set-Cookie`` value carrying a session token."""
    flags = "; Secure" if secure else ""
    return f"{SESSION_COOKIE}={token}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Lax{flags}"


def clearing_header(secure: bool) -> str:
    """The ``Set-Cookie`` value that ends the session in the browser."""
    return cookie_header("", 0, secure)
