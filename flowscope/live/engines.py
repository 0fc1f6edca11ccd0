"""What the capture engines share: the Engine interface, drop counters, interfaces.

The engines are dumpcap (Wireshark's, dumpcap.py) where installed, else scapy's packet
socket (sniffer.py); session.choose_engine picks one. Both write capture files into a work
directory and hand over each file once it is closed, in order; the session analyses those
files exactly as `analyze` would. This module imports neither engine: they import it.
"""
from __future__ import annotations

import socket
from dataclasses import asdict, dataclass

from flowscope.live.options import LiveError


@dataclass
class Drops:
    """Packets lost before they reached a capture file, by where they were lost.

    None: the engine could not tell (e.g. it was killed before reporting)."""
    kernel: int | None = None      # the kernel's capture buffer overflowed (pcap ps_drop)
    interface: int | None = None   # the NIC or driver dropped them (pcap ps_ifdrop)
    engine: int | None = None      # the capture program itself (dumpcap's own queue, flushed)
    received: int | None = None    # packets the engine received, drops not included
    source: str | None = None      # where the figures come from

    @property
    def known(self) -> bool:
        return None not in (self.kernel, self.interface, self.engine)

    @property
    def total(self) -> int:
        return sum(x or 0 for x in (self.kernel, self.interface, self.engine))

    def as_notes(self) -> dict:
        d = asdict(self)
        return {"dropped_kernel": d["kernel"], "dropped_interface": d["interface"],
                "dropped_engine": d["engine"], "packets_received": d["received"],
                "drops_source": d["source"]}


class Engine:
    """What the session needs from an engine (see dumpcap.py and sniffer.py)."""
    label = "engine"
    error: str | None = None      # one line, set when the engine failed while capturing
    reached_limit = False         # stopped by itself after --packets N
    packets_seen = 0              # running count, for the live view
    counts_drops_live = False     # drops() is known while capturing (else only once stopped)

    def check(self) -> None: ...                  # preflight; raises LiveError
    def start(self) -> None: ...
    def wait_ready(self, timeout_s: float) -> None: ...   # raises LiveError if it failed
    def closed_files(self) -> list[str]: ...     # files closed since the last call, in order
    def running(self) -> bool: ...
    def stop(self, grace_s: float = 0.0) -> None: ...   # ask to stop after grace_s; idempotent
    def wait(self, timeout_s: float = 15.0) -> None: ...
    def drops(self) -> Drops: ...


def interfaces() -> list[str]:
    """Interface names in this network namespace."""
    try:
        return sorted(name for _, name in socket.if_nameindex())
    except OSError:
        return []


def interface_drops(iface: str) -> int | None:
    """Frames the NIC lost (Linux sysfs rx_missed_errors + rx_fifo_errors, the sum libpcap
    reports as ps_ifdrop), or None where the interface has no such counters."""
    total = None
    for name in ("rx_missed_errors", "rx_fifo_errors"):
        try:
            with open(f"/sys/class/net/{iface}/statistics/{name}") as fh:
                total = (total or 0) + int(fh.read())
        except (OSError, ValueError):
            pass
    return total


def no_such_interface(name: str) -> LiveError:
    names = interfaces()
    hint = f" (available: {', '.join(names)})" if names else ""
    return LiveError(f"cannot capture on {name}: no such interface{hint}")


def drops_from_isb(captures) -> Drops | None:
    """Drops from the pcapng Interface Statistics Blocks of the capture files, if any wrote one.

    The counters run from the start of the capture, so the largest value of each is the total.
    Named as the pcapng spec names them (isb_osdrop: the OS, isb_ifdrop: the interface); note
    that dumpcap, in single-file mode, puts all of its drops into isb_ifdrop."""
    best: dict[tuple[str, str], int] = {}
    for cap in captures:
        for ifid, counters in cap.interface_stats.items():
            for name, value in counters.items():
                best[ifid, name] = max(best.get((ifid, name), 0), int(value))
    if not best:
        return None

    def total(name):
        values = [v for (_, n), v in best.items() if n == name]
        return sum(values) if values else None
    return Drops(kernel=total("osdrop") or 0, interface=total("ifdrop") or 0, engine=0,
                 received=total("ifrecv"), source="pcapng ISB")
