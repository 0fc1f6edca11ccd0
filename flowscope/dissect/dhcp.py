"""DHCP (RFC 2131/2132) host names from payload bytes: what a device calls itself.

Only what names a device is read: option 12 (Host Name) and option 81 (Client FQDN,
RFC 4702), both personal data that flowscope pseudonymises (dissect/localnames.py). Pure and
hostile-input safe: returns None instead of raising; the option walk takes at most
MAX_OPTIONS steps (`limited` says it stopped there) and never reads past the data.
"""
from __future__ import annotations

from dataclasses import dataclass

from flowscope.dissect.dns import safe_label, safe_name

FIXED_BYTES = 236             # op .. file: the BOOTP header before the options
MAGIC = b"\x63\x82\x53\x63"   # RFC 2131 s. 3: the options begin with this cookie
OPT_PAD, OPT_HOST_NAME, OPT_CLIENT_FQDN, OPT_END = 0, 12, 81, 255
FQDN_WIRE = 0x04              # RFC 4702 s. 2.1: the E flag, name in DNS wire format
MAX_OPTIONS = 256             # real messages carry 5-20 options (pads count as steps)


@dataclass(frozen=True)
class DhcpMessage:
    op: int                   # 1 request (client), 2 reply (server)
    xid: int
    host_name: str | None     # option 12, lower-case safe text
    client_fqdn: str | None   # option 81's domain name, lower-case safe text
    limited: bool = False     # the option walk stopped at MAX_OPTIONS


def _fqdn(value: bytes) -> str | None:
    if len(value) < 4:
        return None
    flags, name = value[0], value[3:]
    if not flags & FQDN_WIRE:
        return safe_name(name) or None
    labels, pos = [], 0
    while pos < len(name) and name[pos] and len(labels) < 127:  # wire labels, no compression
        end = pos + 1 + name[pos]
        if name[pos] > 63 or end > len(name):
            return None
        labels.append(safe_label(name[pos + 1:end]))
        pos = end
    return ".".join(labels) or None


def parse_dhcp(data: bytes) -> DhcpMessage | None:
    """Decode a BOOTP/DHCP message (a UDP payload on port 67/68); None if it is not one."""
    data = bytes(data)
    if len(data) < FIXED_BYTES + len(MAGIC) or data[0] not in (1, 2) or data[FIXED_BYTES:FIXED_BYTES + 4] != MAGIC:
        return None
    host = fqdn = None
    pos, steps, n = FIXED_BYTES + 4, 0, len(data)
    while pos < n and steps < MAX_OPTIONS:
        steps += 1
        code = data[pos]
        if code == OPT_PAD:
            pos += 1
            continue
        if code == OPT_END or pos + 1 >= n:
            break
        end = pos + 2 + data[pos + 1]
        if end > n:
            break  # a cut option: keep what came before
        value = data[pos + 2:end]
        if code == OPT_HOST_NAME and host is None:
            host = safe_name(value) or None
        elif code == OPT_CLIENT_FQDN and fqdn is None:
            fqdn = _fqdn(value)
        pos = end
    limited = steps >= MAX_OPTIONS and pos < n and data[pos] != OPT_END
    return DhcpMessage(data[0], int.from_bytes(data[4:8], "big"), host, fqdn, limited)
