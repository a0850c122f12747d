"""Who the client is: the direct peer, or - only behind a trusted proxy - the address that proxy forwarded.

A forwarded header is anyone's to write, so it is believed only when the connection comes from a
proxy named in ``ONEMAP_TRUSTED_PROXIES``, and only the one header those proxies set
(``ONEMAP_FORWARDED_HEADER``: ``X-Forwarded-For``, ``Forwarded`` (RFC 7239) or ``X-Real-IP``); any
other forwarded header a client sends is ignored. In a list of hops the client is the right-most
address that is not itself a trusted proxy: each proxy appends the peer it saw, so whatever a client
wrote in front of that is never reached. A hop that is not an address (``unknown``, an obfuscated
identifier, garbage) leaves the client unknown (``None``), which no address-bound key admits.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=4096)
def parse_address(text: str) -> IPAddress | None:
    """An address from a header hop: ``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``, ``::1``, quoted or not."""
    text = text.strip().strip('"').strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def forwarded_for(values: Iterable[str]) -> list[str]:
    """The ``for=`` hops of RFC 7239 ``Forwarded`` header values, left to right (missing ones as ``""``)."""
    hops = []
    for value in values:
        for element in value.split(","):
            found = ""
            for pair in element.split(";"):
                name, _, content = pair.partition("=")
                if name.strip().lower() == "for":
                    found = content
            hops.append(found)
    return hops


class ClientResolver:
    """Resolves the client address of an ASGI scope from the trusted proxies and their header."""

    def __init__(self, trusted: Iterable[str], header: str) -> None:
        self.networks: tuple[IPNetwork, ...] = tuple(ipaddress.ip_network(n, strict=False) for n in trusted)
        self.header = header.lower()
        self._header = self.header.encode()

    def trusted(self, address: IPAddress | None) -> bool:
        """Whether ``address`` is one of the trusted proxies."""
        return address is not None and any(address in n for n in self.networks)

    def client(self, peer: str | None, headers: Iterable[tuple[bytes, bytes]]) -> str | None:
        """The client's address for a connection from ``peer`` carrying ``headers``."""
        peer_address = parse_address(peer) if peer else None
        if not self.networks or not self.trusted(peer_address):
            return peer
        values = [v.decode("latin-1") for k, v in headers if k == self._header]
        if not values:
            return peer
        if self.header == "x-real-ip":
            hops = [values[-1]]
        elif self.header == "forwarded":
            hops = forwarded_for(values)
        else:
            hops = [hop for v in values for hop in v.split(",")]
        leftmost = None
        for hop in reversed(hops):
            address = parse_address(hop)
            if address is None:
                return None
            if not self.trusted(address):
                return str(address)
            leftmost = address
        return str(leftmost) if leftmost is not None else peer
