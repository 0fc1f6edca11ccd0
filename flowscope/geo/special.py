"""Addresses that must never be geolocated, and why.

``address_class(ip)`` returns a short label for an address whose location would be
meaningless or misleading as evidence (private, loopback, documentation, tunnels, the
rewritten addresses of anonymised captures, ...) and ``None`` for an ordinary public
unicast address, the only kind that the geo databases are asked about.

Labels: "invalid", "unspecified", "loopback", "private", "cgnat", "link-local",
"multicast", "broadcast", "documentation", "benchmarking", "reserved", "ipv4-mapped",
"nat64", "teredo", "6to4", "anonymised".

"anonymised" is for what a real capture cannot hold but test corpora often do:
IPv6 addresses outside the blocks IANA has handed to the regional registries (for
example a Meta ``...:face:b00c:...`` host whose prefix was rewritten to ``2a38::/16``,
or ``3516:bf0b::/32`` from ``3000::/4``), and IPv4 placeholders made of one repeated
hex-pattern byte (``170.170.170.170`` = ``0xAAAAAAAA`` and its BB/CC/DD siblings).
"""
from __future__ import annotations

import ipaddress
import socket
from functools import lru_cache

_N = ipaddress.ip_network

# Checked in order: the first network that holds the address gives its label.
_V4: tuple[tuple[ipaddress.IPv4Network, str], ...] = (
    (_N("0.0.0.0/32"), "unspecified"),
    (_N("255.255.255.255/32"), "broadcast"),
    (_N("0.0.0.0/8"), "reserved"),            # "this network" (RFC 791)
    (_N("10.0.0.0/8"), "private"),            # RFC 1918
    (_N("172.16.0.0/12"), "private"),
    (_N("192.168.0.0/16"), "private"),
    (_N("100.64.0.0/10"), "cgnat"),           # RFC 6598 shared address space
    (_N("127.0.0.0/8"), "loopback"),
    (_N("169.254.0.0/16"), "link-local"),
    (_N("192.0.2.0/24"), "documentation"),    # TEST-NET-1/2/3 (RFC 5737)
    (_N("198.51.100.0/24"), "documentation"),
    (_N("203.0.113.0/24"), "documentation"),
    (_N("198.18.0.0/15"), "benchmarking"),    # RFC 2544
    (_N("192.0.0.0/24"), "reserved"),         # IETF protocol assignments
    (_N("192.88.99.0/24"), "6to4"),           # deprecated 6to4 relay anycast
    (_N("224.0.0.0/4"), "multicast"),
    (_N("240.0.0.0/4"), "reserved"),          # class E
)

_V6: tuple[tuple[ipaddress.IPv6Network, str], ...] = (
    (_N("::/128"), "unspecified"),
    (_N("::1/128"), "loopback"),
    (_N("::ffff:0:0/96"), "ipv4-mapped"),
    (_N("::/96"), "reserved"),                # deprecated IPv4-compatible
    (_N("64:ff9b::/96"), "nat64"),            # RFC 6052
    (_N("64:ff9b:1::/48"), "nat64"),          # RFC 8215
    (_N("100::/64"), "reserved"),             # discard-only
    (_N("2001::/32"), "teredo"),
    (_N("2001:2::/48"), "benchmarking"),      # RFC 5180
    (_N("2001:db8::/32"), "documentation"),   # RFC 3849
    (_N("3fff::/20"), "documentation"),       # RFC 9637
    (_N("2001::/23"), "reserved"),            # IETF protocol assignments (ORCHID, ...)
    (_N("2002::/16"), "6to4"),
    (_N("fc00::/7"), "private"),              # unique local (RFC 4193)
    (_N("fe80::/10"), "link-local"),
    (_N("fec0::/10"), "reserved"),            # deprecated site-local
    (_N("ff00::/8"), "multicast"),
)

# Global unicast blocks IANA has delegated to the RIRs (coarsened to whole /11 and /12
# blocks: good enough to spot a rewritten prefix, not a routing table).
_V6_ALLOCATED: tuple[ipaddress.IPv6Network, ...] = tuple(_N(n) for n in (
    "2001::/16", "2003::/18",
    "2400::/11",                 # APNIC 2400::/12, 2410::/12
    "2600::/11",                 # ARIN 2600::/12, 2610::/23, 2620::/23
    "2630::/12",                 # ARIN
    "2800::/12",                 # LACNIC
    "2a00::/11",                 # RIPE NCC 2a00::/12, 2a10::/12
    "2c00::/12",                 # AFRINIC
))

# 0xAA.., 0xBB.., 0xCC.., 0xDD..: placeholder bytes of rewriting tools (0xEE and 0xFF are
# caught as multicast / reserved; lower repeats such as 1.1.1.1, 8.8.8.8, 9.9.9.9 and
# 17.17.17.17 are real hosts and stay public).
_V4_PLACEHOLDER_BYTES = frozenset({0xAA, 0xBB, 0xCC, 0xDD})


def _spans(nets) -> tuple[tuple[int, int, str | None], ...]:
    return tuple((int(n.network_address), int(n.broadcast_address), label) for n, label in nets)


# The same tables as integer spans: comparing ints is ~20x faster than `addr in net`.
_V4_SPANS = _spans(_V4)
_V6_SPANS = _spans(_V6)
_V6_ALLOCATED_SPANS = _spans((n, None) for n in _V6_ALLOCATED)


def _parse(text: str) -> tuple[int, int] | None:
    for family, version in ((socket.AF_INET, 4), (socket.AF_INET6, 6)):
        try:
            return version, int.from_bytes(socket.inet_pton(family, text), "big")
        except OSError:
            continue
    try:  # forms inet_pton refuses but ipaddress accepts
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    return addr.version, int(addr)


@lru_cache(maxsize=65536)  # asked several times per distinct address by the geo stage
def address_class(ip: str) -> str | None:
    """Label of an address that must not be geolocated, or None for a public one.

    Accepts IPv4 and IPv6 text (brackets and an IPv6 zone id are tolerated); text that
    is not an address at all is "invalid".
    """
    text = str(ip).strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = text.split("%", 1)[0]  # fe80::1%eth0
    parsed = _parse(text)
    if parsed is None:
        return "invalid"
    version, value = parsed
    if version == 4:
        for lo, hi, label in _V4_SPANS:
            if lo <= value <= hi:
                return label
        packed = value.to_bytes(4, "big")
        if packed[0] in _V4_PLACEHOLDER_BYTES and len(set(packed)) == 1:
            return "anonymised"
        return None
    for lo, hi, label in _V6_SPANS:
        if lo <= value <= hi:
            return label
    if not any(lo <= value <= hi for lo, hi, _ in _V6_ALLOCATED_SPANS):
        return "anonymised"
    return None


def is_geolocatable(ip: str) -> bool:
    """True for an ordinary public unicast address."""
    return address_class(ip) is None
