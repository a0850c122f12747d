"""API keys: issuing, hashing, parsing and the checks bound to a key.

A key reads ``om_<id>_<secret>``: the id (12 hex characters) finds the record, the secret (43
URL-safe characters, 256 bits) is checked against the stored SHA-256 digest in constant time. Only
the digest is stored; the full key is shown once, when it is created.

A key carries its scopes (collection ids, or all), the client IP ranges it may be used from (CIDR,
any when empty), a validity window, a daily quota and a per-second rate.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import ipaddress
import re
import secrets
from dataclasses import dataclass, field

PREFIX = "om"
KEY_FORMAT = re.compile(r"^om_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
RATE_FORMAT = re.compile(r"^(\d+(?:\.\d+)?)(?:/s)?$")


def digest(secret: str) -> str:
    """The stored form of a key's secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_key() -> tuple[str, str, str]:
    """A fresh key: (key id, full key to hand out, digest to store)."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return key_id, f"{PREFIX}_{key_id}_{secret}", digest(secret)


def parse_key(raw: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, or ``None``."""
    m = KEY_FORMAT.match(raw.strip())
    return (m.group(1), m.group(2)) if m else None


def parse_rate(raw: str) -> float:
    """A rate like ``20/s`` or ``20`` as requests per second."""
    m = RATE_FORMAT.match(raw.strip())
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"rate '{raw}' is not a positive number of requests per second (e.g. 20/s)")
    return float(m.group(1))


def parse_networks(values: list[str]) -> tuple[str, ...]:
    """Normalized CIDR ranges; ``ValueError`` naming the bad one."""
    out = []
    for v in values:
        try:
            out.append(str(ipaddress.ip_network(v.strip(), strict=False)))
        except ValueError:
            raise ValueError(f"'{v}' is not an IP range in CIDR notation (e.g. 10.0.0.0/8)") from None
    return tuple(out)


def parse_time(raw: str | None) -> dt.datetime | None:
    """An ISO 8601 date or date-time (UTC when no offset is given)."""
    if raw is None:
        return None
    try:
        value = dt.datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"'{raw}' is not an ISO 8601 date or date-time") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class KeyRecord:
    """A stored key (never the secret itself)."""

    id: str
    name: str
    secret_hash: str
    scopes: frozenset[str] | None = None  # None: every collection
    networks: tuple[str, ...] = ()
    not_before: dt.datetime | None = None
    not_after: dt.datetime | None = None
    daily_quota: int | None = None
    rate: float | None = None
    created: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    revoked: dt.datetime | None = None

    def matches(self, secret: str) -> bool:
        """Constant-time comparison of a presented secret with the stored digest."""
        return hmac.compare_digest(digest(secret), self.secret_hash)

    def allows_ip(self, client_ip: str | None) -> bool:
        """Whether the client address lies in one of the key's ranges (any address when none)."""
        if not self.networks:
            return True
        address = _address(client_ip or "")
        return address is not None and any(address in n for n in _networks(self.networks))

    def window_problem(self, now: dt.datetime) -> str | None:
        """Why the key is not valid at ``now``, or ``None``."""
        if self.not_before is not None and now < self.not_before:
            return f"The API key is not valid before {self.not_before.isoformat()}."
        if self.not_after is not None and now > self.not_after:
            return f"The API key expired at {self.not_after.isoformat()}."
        return None


@functools.lru_cache(maxsize=4096)
def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """A client address, parsed once (``None`` when it is not one)."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@functools.lru_cache(maxsize=1024)
def _networks(ranges: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """A key's ranges, parsed once."""
    return tuple(ipaddress.ip_network(n) for n in ranges)
