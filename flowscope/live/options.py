"""What a live capture is asked to do, validated before anything starts."""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

from flowscope.errors import FlowscopeError, UsageError

# The monitored devices on a mirror port or test access point sit in private space:
# RFC 1918, unique-local IPv6, link-local, and carrier-grade NAT (phones on mobile data).
DEFAULT_LOCAL_NETS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
                      "169.254.0.0/16", "fc00::/7", "fe80::/10")
RING_FILE_S = 1            # a ring file is closed, and so analysable, at least once a second
RING_FILE_KB = 100_000     # ...or at 100 MB, whichever comes first (bursts on a busy port)
BUFFER_MIB = 32            # kernel capture buffer: absorbs bursts while we analyse a file
ROTATE_MIN_S = RING_FILE_S  # a period holds whole ring files: none shorter than one

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(s|m|h)?\s*$")
_UNIT_S = {None: 1, "s": 1, "m": 60, "h": 3600}


class LiveError(FlowscopeError):
    """Capture cannot start or had to stop: a missing interface, a bad filter, no permission,
    an engine that died. The message is one line, fit to print as is."""


def parse_duration_s(text: str, option: str = "--duration") -> float:
    """'90', '90s', '10m', '1.5h' -> seconds (> 0); `option` names the option in the error."""
    m = _DURATION.match(str(text))
    if not m or float(m.group(1)) <= 0:
        raise UsageError(f"{option}: expected a positive number of seconds, or with a unit "
                         f"s/m/h such as 90, 10m, 2h (got {text!r})")
    return float(m.group(1)) * _UNIT_S[m.group(2)]


def parse_local_nets(cidrs) -> tuple:
    """CIDR strings -> ip_network objects (host bits are dropped: 192.168.1.7/24 is the /24)."""
    nets = []
    for text in cidrs:
        try:
            nets.append(ipaddress.ip_network(str(text).strip(), strict=False))
        except ValueError:
            raise UsageError(f"--local-net: not an IPv4 or IPv6 network in CIDR notation: {text!r}") from None
    return tuple(dict.fromkeys(nets))


@dataclass(frozen=True)
class LiveOptions:
    interface: str
    out: Path
    bpf: str | None = None
    duration_s: float | None = None
    max_packets: int | None = None
    local_nets: tuple = field(default_factory=lambda: parse_local_nets(DEFAULT_LOCAL_NETS))
    keep_pcap: bool = False
    force: bool = False
    rotate_s: float | None = None       # one evidence directory per period of this length (live/periods.py)
    rotate_packets: int | None = None   # ... or per this many packets

    def __post_init__(self):
        if not self.interface or not self.interface.strip():
            raise UsageError("--interface: an interface name is required")
        if self.duration_s is not None and not self.duration_s > 0:
            raise UsageError(f"--duration must be > 0 (got {self.duration_s})")
        if self.max_packets is not None and self.max_packets < 1:
            raise UsageError(f"--packets must be >= 1 (got {self.max_packets})")
        if self.duration_s is not None and self.max_packets is not None:
            raise UsageError("give --duration or --packets, not both")
        if self.rotate_s is not None and not self.rotate_s >= ROTATE_MIN_S:
            raise UsageError(f"--rotate must be at least {ROTATE_MIN_S:g} s, a ring file's length (got {self.rotate_s:g} s)")
        if self.rotate_packets is not None and self.rotate_packets < 1:
            raise UsageError(f"--rotate-packets must be >= 1 (got {self.rotate_packets})")
        if self.rotate_s is not None and self.rotate_packets is not None:
            raise UsageError("give --rotate or --rotate-packets, not both")
        if self.bpf is not None and not self.bpf.strip():
            object.__setattr__(self, "bpf", None)
        object.__setattr__(self, "out", Path(self.out))
        object.__setattr__(self, "local_nets", parse_local_nets(self.local_nets))

    @property
    def rotating(self) -> bool:
        return self.rotate_s is not None or self.rotate_packets is not None

    @property
    def pcap_dir(self) -> Path:
        return self.out / "pcap"

    def local_net_strings(self) -> list[str]:
        return [str(n) for n in self.local_nets]
