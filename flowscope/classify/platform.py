"""Which addresses are Business Platform hosts, and which responders are local (issue 13).

A platform host is a local address that receives webhooks from Meta (found by the classifier
in the capture), or one the auditor names with --platform-host ADDR|CIDR: a company's webhook
endpoint often has a public address, which no address class marks as local.
"""
from __future__ import annotations

import ipaddress
from functools import lru_cache

from flowscope.geo.special import address_class

LOCAL_CLASSES = frozenset({"private", "cgnat", "link-local"})  # private includes IPv6 ULA


class PlatformHosts:
    """The networks given with --platform-host (canonical CIDR text, Settings validated them)."""

    def __init__(self, networks=()):
        self.networks = tuple(ipaddress.ip_network(n) for n in networks)

    def contains(self, ip: str) -> bool:
        return bool(self.networks) and _in(ip, self.networks)

    def is_local(self, ip: str) -> bool:
        """A local address (private, CGNAT, link-local) or one of the given platform hosts."""
        return address_class(ip) in LOCAL_CLASSES or self.contains(ip)


@lru_cache(maxsize=1 << 14)
def _in(ip: str, networks: tuple) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr.version == n.version and addr in n for n in networks)
