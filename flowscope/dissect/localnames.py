"""Which DNS names belong to local devices: personal data to pseudonymise, not evidence.

A phone asking the router for `julias-iphone.fritz.box`, announcing `Julias-iPhone.local`
by mDNS or sending DHCP host name "Julias-iPhone" names its owner. Public names (WhatsApp's,
Meta's, any CDN's) are the evidence and stay in clear. A name is local when
- it ends in a local suffix (data/local_names.toml, each with its source), or
- it is a single label (public names always have a dot: search-list and LLMNR names), or
- it is the reverse name of a local address (x.x.x.x.in-addr.arpa), or
- the capture showed it to be: an answer with a local address, a PTR target of a local
  address, an mDNS/LLMNR name, a DHCP host name (dissect.evidence collects these).
"""
from __future__ import annotations

import re
import tomllib
from functools import lru_cache
from importlib import resources

from flowscope.geo.special import address_class

LOCAL_CLASSES = frozenset({"private", "cgnat", "link-local"})  # private includes IPv6 ULA


@lru_cache(maxsize=1)
def suffixes() -> tuple[str, ...]:
    data = tomllib.loads(resources.files("flowscope.dissect").joinpath("data/local_names.toml").read_text())
    return tuple(sorted({s["name"].lower() for s in data["suffix"]}, key=len, reverse=True))


def is_local_address(ip: str) -> bool:
    return address_class(ip) in LOCAL_CLASSES


def is_local_name(name: str) -> bool:
    """A local suffix, a single label, or the reverse name of a local address."""
    n = name.lower().rstrip(".")
    if not n:
        return False
    if "." not in n:
        return True
    if n.endswith(".in-addr.arpa") or n.endswith(".ip6.arpa"):
        ip = reverse_address(n)
        return ip is not None and is_local_address(ip)
    return n in suffixes() or n.endswith(_tails())


@lru_cache(maxsize=1)
def _tails() -> tuple[str, ...]:
    return tuple("." + s for s in suffixes())


def mentions_local_suffix(low: str) -> bool:
    """A cheap test before the name pattern runs: does ".<suffix>" occur in the lower-cased text?"""
    return _tail_pattern().search(low) is not None


@lru_cache(maxsize=1)
def _tail_pattern() -> re.Pattern:
    return re.compile("|".join(re.escape(tail) for tail in _tails()))


def reverse_address(name: str) -> str | None:
    """The address a reverse name stands for ("1.0.168.192.in-addr.arpa" -> "192.168.0.1")."""
    n = name.lower().rstrip(".")
    if n.endswith(".in-addr.arpa"):
        parts = n[:-len(".in-addr.arpa")].split(".")
        if len(parts) == 4 and all(p.isdigit() and int(p) < 256 for p in parts):
            return ".".join(reversed(parts))
    elif n.endswith(".ip6.arpa"):
        nibbles = n[:-len(".ip6.arpa")].split(".")
        if len(nibbles) == 32 and all(len(x) == 1 and x in "0123456789abcdef" for x in nibbles):
            full = "".join(reversed(nibbles))
            return ":".join(full[i:i + 4] for i in range(0, 32, 4))
    return None


def is_service_type(name: str) -> bool:
    """DNS-SD service types (`_googlecast._tcp.local`) name a protocol, not a device."""
    return name.startswith("_")
