"""One frozen, validated Settings object, passed whole through the pipeline.

A leaf: plain values checked for range here, nothing imported from the stages. What only a
stage can check is checked when that stage opens, before any capture is read: `vantage`
against the airport table (geo.stage.check_settings), `geoip` files and `catalogs` by their
readers; the flow table's timeout array is built in flows/timeouts.py.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from flowscope.errors import UsageError


def _network(value) -> str:
    """ADDR or CIDR -> canonical network text (host bits set are refused: a typo, not a range)."""
    import ipaddress
    try:
        return str(ipaddress.ip_network(str(value).strip(), strict=True))
    except ValueError as e:
        raise UsageError(f"settings: platform host {value!r} is not an address or CIDR ({e})") from None


@dataclass(frozen=True)
class Settings:
    # WhatsApp's chat connection idles for minutes between keep-alives: one hour keeps it whole.
    tcp_idle_s: float = 3600.0
    tcp_closed_s: float = 120.0     # after FIN from both sides or a RST
    udp_idle_s: float = 300.0
    other_idle_s: float = 120.0     # ICMP and other IP protocols
    dedup_window_ms: float = 1.0    # mirror-port duplicates arrive within microseconds; 0 disables
    batch_packets: int = 16384
    classify: bool = True           # dissect payload and label services (off: flow table only)
    catalogs: tuple = ()            # user catalog files extending/overriding the built-in one
    progress: bool = False
    geo: bool = True                # geolocate remote endpoints (off: geo columns null)
    geoip: tuple = ()               # user .mmdb files consulted besides the embedded databases
    vantage: str | None = None      # capture point: "LAT,LON", an IATA code or a city
    # Business Platform servers (ADDR or CIDR): their Graph API flows are Cloud API calls (issue 13)
    platform_hosts: tuple = ()
    # Limits against hostile input (docs/security.md); hitting one stops reading that file.
    max_flows: int = 1 << 20        # concurrent flows in one file's table (~0.45 GB of rows)
    max_expansion: float = 1000.0   # decompressed / compressed bytes of a gzip/bzip2/xz input (0: off)

    def __post_init__(self):
        for name in ("tcp_idle_s", "tcp_closed_s", "udp_idle_s", "other_idle_s"):
            if not getattr(self, name) > 0:
                raise UsageError(f"settings: {name} must be > 0 (got {getattr(self, name)})")
        if self.dedup_window_ms < 0:
            raise UsageError(f"settings: dedup_window_ms must be >= 0 (got {self.dedup_window_ms})")
        if isinstance(self.catalogs, (str, bytes)):
            object.__setattr__(self, "catalogs", (self.catalogs,))
        object.__setattr__(self, "catalogs", tuple(str(c) for c in self.catalogs))
        if isinstance(self.geoip, (str, bytes)):
            object.__setattr__(self, "geoip", (self.geoip,))
        object.__setattr__(self, "geoip", tuple(str(g) for g in self.geoip))
        if isinstance(self.platform_hosts, (str, bytes)):
            object.__setattr__(self, "platform_hosts", (self.platform_hosts,))
        object.__setattr__(self, "platform_hosts", tuple(_network(h) for h in self.platform_hosts))
        if self.max_flows < 1:
            raise UsageError(f"settings: max_flows must be >= 1 (got {self.max_flows})")
        if self.max_expansion < 0:
            raise UsageError(f"settings: max_expansion must be >= 0 (got {self.max_expansion})")
        if self.batch_packets < 1:
            raise UsageError("settings: batch_packets must be >= 1")

    def dedup_ns(self) -> int:
        return int(self.dedup_window_ms * 1e6)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("progress")
        return d
