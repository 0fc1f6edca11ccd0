"""Rotated live capture: one evidence directory per period (`flowscope live --rotate 1h`,
`--rotate-packets N`), each complete and verifiable on its own.

Periods
- By time (--rotate D): periods are aligned to multiples of D since 1970-01-01 UTC (1h: on
  the hour, 10m: at :00, :10, ...). A ring file is never split: it belongs to the period in
  which its first packet was captured, so a period's last packets may lie up to a ring file
  (about a second) past its nominal end; summary.json gives the first and last packet times.
  A period with no packet still ends, by the wall clock, LATE_S after its end.
- By packets (--rotate-packets N): a period ends with the ring file in which its N-th packet
  was read (N packets, or up to a ring file more).
- The run's last period ends when the capture stops (signal, --duration, --packets, engine).

Directories are named after the period's start in UTC, `2026-12-04T10-00-00Z` (by time: the
nominal start, or the capture's start for the first period; by packets: the first packet's
time, to the microsecond: `2026-12-04T10-17-03.250113Z`), so that they sort in time order;
an existing name gets `-2`, `-3`, ... A period is written into `DIR/.NAME.partial/`, synced,
then renamed: a directory with a final name is complete. A run killed mid-period loses that
period only (its ring files, with --keep-pcap, are still in DIR/pcap/); a run killed while
writing leaves a `.partial` directory, which is not evidence.

Each period's summary.json has a `rotation` section (docs/live.md): its place in the run,
the flows carried in and out (carry.py) with their packets and bytes, so that
`packets = flow_packets_counted + carried_in.packets - carried_out.packets`, and the SHA-256
of the previous period's tables (flows, events, frames): the periods form a chain that
`flowscope verify DIR` checks together with every period's own hashes.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

from flowscope.report.manifest import file_sha256
from flowscope.report.names import MANIFEST

LATE_S = 3.0          # a period without packets ends this long after its end (ring files last 1 s)
PARTIAL = ".partial"


# -- names and times --------------------------------------------------------------------

def iso_ns(ns: int | None) -> str | None:
    """ns since the epoch -> ISO 8601 UTC to the microsecond."""
    if ns is None:
        return None
    t = dt.datetime.fromtimestamp(ns // 1_000_000_000, dt.timezone.utc).replace(microsecond=(ns // 1000) % 1_000_000)
    return t.isoformat(timespec="microseconds").replace("+00:00", "Z")


def iso_s(s: float | None) -> str | None:
    return None if s is None else iso_ns(int(round(s * 1e9)))


def period_name(start_ns: int, fraction: bool = False) -> str:
    """A directory name that sorts in time order: 2026-12-04T10-00-00Z (fraction: with
    microseconds, 2026-12-04T10-00-00.250113Z)."""
    t = dt.datetime.fromtimestamp(start_ns // 1_000_000_000, dt.timezone.utc)
    name = t.strftime("%Y-%m-%dT%H-%M-%S")
    return name + (f".{(start_ns // 1000) % 1_000_000:06d}Z" if fraction else "Z")


def is_period_name(name: str) -> bool:
    try:
        dt.datetime.strptime(name.split("Z")[0].split(".")[0], "%Y-%m-%dT%H-%M-%S")
    except ValueError:
        return False
    return "Z" in name


def unique_dir(parent: Path, name: str) -> str:
    """`name`, or name-2, name-3, ... if a directory (or its .partial) exists already."""
    candidate, k = name, 1
    while (parent / candidate).exists() or (parent / f".{candidate}{PARTIAL}").exists():
        k += 1
        candidate = f"{name}-{k}"
    return candidate


@dataclass(frozen=True)
class Schedule:
    """When periods end: every `every_s` seconds (aligned to the epoch) or `every_packets`."""
    every_s: float | None = None
    every_packets: int | None = None

    @property
    def by_time(self) -> bool:
        return self.every_s is not None

    def bounds_ns(self, t_ns: int) -> tuple[int, int]:
        """The nominal [start, end) of the time period holding t_ns."""
        every = int(round(self.every_s * 1e9))
        start = (t_ns // every) * every
        return start, start + every

    def describe(self) -> dict:
        if self.by_time:
            return {"by": "time", "every_s": self.every_s, "every_packets": None}
        return {"by": "packets", "every_s": None, "every_packets": self.every_packets}

    def text(self) -> str:
        if self.by_time:
            s = self.every_s
            return (f"{s / 3600:g}h" if s % 3600 == 0 else f"{s / 60:g}m" if s % 60 == 0 else f"{s:g}s")
        return f"{self.every_packets:,} packets"


# -- the first packet of a ring file -----------------------------------------------------

def first_packet_ns(path) -> int | None:
    """Time of the first packet in a pcap or pcapng file (None: no packet, or not readable);
    reads only up to that packet."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
            if len(head) < 4:
                return None
            if head == _SHB:
                return _pcapng_first(fh, head)
            return _pcap_first(fh, head)
    except (OSError, struct.error, ValueError):
        return None


_PCAP_MAGICS = {0xA1B2C3D4: ("<", 1000), 0xA1B23C4D: ("<", 1), 0xD4C3B2A1: (">", 1000), 0x4D3CB2A1: (">", 1)}


def _pcap_first(fh, head: bytes) -> int | None:
    got = _PCAP_MAGICS.get(struct.unpack("<I", head)[0])
    if got is None:
        return None
    order, ns_per_tick = got
    fh.read(20)
    rec = fh.read(16)
    if len(rec) < 16:
        return None
    sec, frac = struct.unpack(order + "II", rec[:8])
    return sec * 1_000_000_000 + frac * ns_per_tick


def _pcapng_first(fh, head: bytes) -> int | None:
    order, resol = "<", []
    hdr = head + fh.read(4)
    while len(hdr) == 8:
        if hdr[:4] == _SHB:   # the section's byte order follows its length
            bom = fh.read(4)
            order = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
            blen = struct.unpack(order + "I", hdr[4:])[0]
            body, resol = bom + fh.read(max(blen - 12, 0)), []
        else:
            blen = struct.unpack(order + "I", hdr[4:])[0]
            body = fh.read(max(blen - 8, 0))
        if blen < 12 or blen > 16 << 20 or len(body) < blen - 8:
            return None
        btype = struct.unpack(order + "I", hdr[:4])[0]
        if btype == 1:     # IDB: link type, reserved, snaplen, then options
            resol.append(_if_resolution(body[8:-4], order))
        elif btype in (6, 2) and len(body) >= 12:   # EPB (interface: u32), obsolete PB (u16)
            ifid = struct.unpack(order + "I", body[:4])[0] if btype == 6 else struct.unpack(order + "H", body[:2])[0]
            if ifid >= len(resol):
                return None
            hi, lo = struct.unpack(order + "II", body[4:12])
            mode, exp, offset_s = resol[ifid]
            ticks = (hi << 32) | lo
            if mode == 0:
                ns = ticks * 10 ** (9 - exp) if exp <= 9 else ticks // 10 ** (exp - 9)
            else:
                ns = (ticks * 1_000_000_000) >> exp
            return ns + offset_s * 1_000_000_000
        hdr = fh.read(8)
    return None


_SHB = b"\x0a\x0d\x0d\x0a"


def _if_resolution(opts: bytes, order: str) -> tuple[int, int, int]:
    """(mode, exponent, offset s) from IDB options: if_tsresol (9), if_tsoffset (14)."""
    mode, exp, offset = 0, 6, 0
    k = 0
    while k + 4 <= len(opts):
        code, ln = struct.unpack(order + "HH", opts[k:k + 4])
        if code == 0:
            break
        val = opts[k + 4:k + 4 + ln]
        if code == 9 and ln >= 1:
            mode, exp = val[0] >> 7, val[0] & 0x7F
        elif code == 14 and ln >= 8:
            offset = struct.unpack(order + "q", val[:8])[0]
        k += 4 + ((ln + 3) & ~3)
    return mode, exp, offset


# -- writing a period ----------------------------------------------------------------------

def write_period(result, out: Path, name: str, write_options: dict) -> Path:
    """Write `result` into out/.NAME.partial, sync it, rename it to out/NAME: the final name
    appears only on a complete, hashed directory."""
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{name}{PARTIAL}"
    if tmp.exists():
        shutil.rmtree(tmp)
    result.write(tmp, force=True, **write_options)
    _sync_tree(tmp)
    final = out / name
    os.rename(tmp, final)
    _sync_dir(out)
    return final


def _sync_tree(root: Path) -> None:
    for p in sorted(root.rglob("*"), reverse=True):
        if p.is_file():
            with open(p, "rb") as fh:
                os.fsync(fh.fileno())
        else:
            _sync_dir(p)
    _sync_dir(root)


def _sync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- a directory of periods -----------------------------------------------------------------

def period_dirs(out: Path) -> list[Path]:
    """The complete period directories in `out`, in time order."""
    out = Path(out)
    if not out.is_dir():
        return []
    return sorted((p for p in out.iterdir() if p.is_dir() and is_period_name(p.name)
                   and (p / MANIFEST).is_file()), key=lambda p: p.name)


def partial_dirs(out: Path) -> list[Path]:
    out = Path(out)
    if not out.is_dir():
        return []
    return sorted(p for p in out.iterdir() if p.is_dir() and p.name.startswith(".") and p.name.endswith(PARTIAL))


def is_rotated_run(out: Path) -> bool:
    """A directory `flowscope live --rotate` wrote into: periods, no analysis of its own."""
    out = Path(out)
    return not (out / MANIFEST).exists() and bool(period_dirs(out) or partial_dirs(out))


CHAINED = ("flows.parquet", "events.parquet", "frames.parquet")


def link_to(period: Path | None) -> dict | None:
    """How a period names the one before it: its directory and the SHA-256 of its tables
    (the rows of evidence: `flowscope report` may re-render a period, which rewrites its
    manifest, not these)."""
    if period is None:
        return None
    return {"name": period.name,
            "sha256": {t: file_sha256(period / t) for t in CHAINED if (period / t).is_file()}}


def verify_run(out: Path, captures: bool = True) -> tuple[list[str], list[str]]:
    """(problems, notes) for a directory of periods: every period's own hashes, and the chain
    (each period's summary.json names the manifest of the period before it). The ring files
    are checked where they were kept (--keep-pcap); otherwise they were deleted after
    analysis, and a note says so."""
    from flowscope.report.verifier import verify
    out = Path(out)
    problems: list[str] = []
    notes: list[str] = []
    periods = period_dirs(out)
    by_name = {p.name: p for p in periods}
    deleted = 0
    for p in periods:
        summary = _summary(p)
        kept = bool((summary.get("live") or {}).get("pcap_dir"))
        deleted += 0 if kept else 1
        problems += verify(p, captures=captures and kept)
        rot = summary.get("rotation") or {}
        prev = rot.get("previous")
        if prev:
            before = by_name.get(prev.get("name"))
            if before is None:
                problems.append(f"{p}: the period before it, {prev.get('name')}, is missing")
                continue
            for table, digest in sorted((prev.get("sha256") or {}).items()):
                if not (before / table).is_file() or file_sha256(before / table) != digest:
                    problems.append(f"{p}: {table} of the period before it ({before.name}) changed")
    if not periods:
        problems.append(f"{out}: no complete period directory")
    for p in partial_dirs(out):
        notes.append(f"{p}: an unfinished period (the run stopped while writing it): not evidence, not checked")
    if captures and deleted:
        notes.append(f"{deleted} of {len(periods)} periods were captured without --keep-pcap: their ring files "
                     "were deleted after analysis, so only their recorded hashes remain")
    return problems, notes


def _summary(period: Path) -> dict:
    try:
        return json.loads((period / "summary.json").read_text())
    except (OSError, ValueError):
        return {}
