"""The live loop's side of rotation: the current period's analysis, when it ends, what is
written, what the next period starts with (periods.py says what a period is, carry.py
what crosses from one to the next)."""
from __future__ import annotations

import datetime as dt
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flowscope.live.carry import Carry, DnsContext, attach_context, dns_answers, seed, split
from flowscope.live.engines import Drops
from flowscope.live.options import LiveError
from flowscope.live.periods import (
    LATE_S, Schedule, first_packet_ns, iso_ns, link_to, period_dirs, period_name, unique_dir, write_period,
)


@dataclass
class Period:
    index: int                      # 1, 2, ... within the run
    start_ns: int                   # what the name is made of (time: nominal start, or the run's)
    end_ns: int | None              # nominal end (time periods)
    analysis: object                # pipeline.Analysis
    feeder: object                  # session._Feeder
    carried_caps: list              # CaptureStats of the carried-in records: not inputs
    carried_in: dict
    opened_s: float                 # wall clock when it began (packet periods: their start)
    dns_context: list               # earlier periods' DNS answers its flows may be named by
    packets: int = 0                # read from this period's ring files
    files: int = 0

    def own_parts(self) -> list[np.ndarray]:
        return self.analysis.parts[len(self.carried_caps):]


@dataclass
class Written:
    """What this run has written so far (counters only: a run may write periods for days)."""
    periods: int = 0
    first: Path | None = None
    last: Path | None = None
    flows: int = 0                  # summed over the periods' flows.parquet
    packets: int = 0                # summed over their summary.json "packets"
    flows_carried: int = 0          # flows that crossed at least one rotation (counted where they ended)


class Rotation:
    """Feeds ring files into the current period and rotates: `add(path)` for each closed
    file, `tick()` between them, `finish(...)` once the engine has stopped."""

    def __init__(self, options, settings, write_options: dict, engine, started_s: float, new_feeder):
        self.options, self.settings, self.engine = options, settings, engine
        self.write_options = dict(write_options or {})
        self.schedule = Schedule(options.rotate_s, options.rotate_packets)
        self.started_s = started_s
        self.new_feeder = new_feeder
        self.written = Written()
        existing = period_dirs(options.out)
        self.last_dir: Path | None = existing[-1] if existing else None   # the chain goes on across runs
        self.newest_ns: int | None = None
        self.drops_at = Drops(kernel=0, interface=0, engine=0, received=0)
        self.packets_total = 0
        self.dns = DnsContext()
        start_ns = int(started_s * 1e9)
        self.current = self._open(start_ns, Carry())

    # -- the loop's calls -----------------------------------------------------------------

    @property
    def analysis(self):
        return self.current.analysis

    def add(self, path: str) -> None:
        if self.schedule.by_time:
            # a file's time: its first packet's, or for a file without packets when it was
            # last written (dumpcap closes one a second, traffic or not)
            first = first_packet_ns(path)
            t = first if first is not None else _mtime_ns(path)
            if t is not None and t >= self.current.end_ns:
                # the newest packet time decides which flows may still continue (carry.py)
                newest = max(x for x in (self.newest_ns, first, 0) if x is not None)
                self._rotate(newest, self.schedule.bounds_ns(t)[0])
        cap = self.current.feeder.add(path)
        from flowscope.decode.layout import REASONS
        n = int(cap.stats[:len(REASONS)].sum())
        self.current.packets += n
        self.current.files += 1
        self.packets_total += n
        if cap.last_ts_ns is not None:
            self.newest_ns = max(self.newest_ns or cap.last_ts_ns, cap.last_ts_ns)
        if not self.schedule.by_time and self.current.packets >= self.schedule.every_packets:
            self._rotate(self.newest_ns, None)

    def tick(self) -> None:
        """A time period with no packet after its end still ends, by the wall clock."""
        if not self.schedule.by_time:
            return
        now = time.time_ns()
        late = int(LATE_S * 1e9)
        if now >= self.current.end_ns + late:
            self._rotate(self.newest_ns, self.schedule.bounds_ns(max(self.current.end_ns, now - late))[0])

    def finish(self, reason: str, error: str | None, drops: Drops):
        """Write the run's last period (open flows end there, as in `analyze`); returns its
        AnalysisResult."""
        return self._write(self.current, Carry(), reason, error, drops, final=True)

    # -- periods ----------------------------------------------------------------------------

    def _open(self, start_ns: int, carry: Carry) -> Period:
        from flowscope.pipeline import Analysis
        analysis = Analysis(self.settings, parts=None)
        caps = seed(analysis, carry)
        end = self.schedule.bounds_ns(start_ns)[1] if self.schedule.by_time else None
        carried_in = {"flows": carry.flows, "packets": carry.packets, "bytes": carry.bytes, "from": carry.origins}
        return Period(self.written.periods + 1, start_ns, end, analysis, self.new_feeder(analysis), caps,
                      carried_in, time.time(), self.dns.answers())

    def _rotate(self, now_ns: int | None, next_start_ns: int | None) -> None:
        cur = self.current
        counted = _counted(cur)
        self._resolve_hashes(cur)
        answers = dns_answers(cur.analysis)
        carry = split(cur.analysis, now_ns if now_ns is not None else 0, first_own_part=len(cur.carried_caps))
        self._write(cur, carry, "rotated", None, self.engine.drops(), final=False, counted=counted)
        self.dns.rotate(answers, carry.dns_flows)
        self.current = self._open(next_start_ns if next_start_ns is not None else time.time_ns(), carry)

    def _resolve_hashes(self, period: Period) -> None:
        """The ring files' SHA-256 now: a carried flow names the file it began in by hash."""
        for cap in period.analysis.captures[len(period.carried_caps):]:
            digest = period.feeder.hashes.get(cap.path)
            if digest is not None and cap.sha256 is None:
                cap.sha256 = digest.result()

    def _write(self, period: Period, carry: Carry, reason: str, error, drops: Drops, final: bool,
               counted: tuple[int, int] | None = None):
        from flowscope import AnalysisResult
        counted = counted or _counted(period)
        # the answers of earlier periods, and those of the flows carried out of this one
        carried_answers = [a for part in carry.parts for pay in part.payloads if pay.evidence is not None
                           for a in pay.evidence.dns_answers]
        attach_context(period.analysis, period.dns_context + carried_answers)
        finished = period.analysis.finish(period.feeder.hashes)
        carried = {id(c) for c in period.carried_caps}
        own = [c for c in finished.captures if id(c) not in carried]
        finished = finished._replace(captures=own)
        ended_s = time.time()
        if self.schedule.by_time:   # a time period lasts from its start to its end, or to the stop
            started_s = max(period.start_ns / 1e9, self.started_s)
            ended_s = min(ended_s, period.end_ns / 1e9) if final else period.end_ns / 1e9
        else:
            started_s = period.opened_s
        first = min((c.first_ts_ns for c in own if c.first_ts_ns is not None), default=None)
        last = max((c.last_ts_ns for c in own if c.last_ts_ns is not None), default=None)
        if self.schedule.by_time:
            name = period_name(period.start_ns)
        else:
            name = period_name(first if first is not None else int(period.opened_s * 1e9), fraction=True)
        name = unique_dir(self.options.out, name)
        drop_fields, scope = self._period_drops(drops, final)
        finished.notes["live"] = {
            "interface": self.options.interface, "bpf": self.options.bpf,
            "local_nets": self.options.local_net_strings(), "engine": self.engine.label,
            "started_utc": _utc(started_s), "ended_utc": _utc(ended_s),
            "duration_s": round(ended_s - started_s, 3),
            "stop_reason": reason, "error": error,
            "packets_captured": period.packets, "packets_analysed": period.packets,
            **drop_fields,
            "capture_files": len(own),
            "pcap_dir": str(self.options.pcap_dir) if self.options.keep_pcap else None,
        }
        rotation = {
            **self.schedule.describe(),
            "period": period.index, "name": name, "final": final,
            "run_started_utc": _utc(self.started_s),
            "nominal_start_utc": iso_ns(self.schedule.bounds_ns(period.start_ns)[0]) if self.schedule.by_time else None,
            "nominal_end_utc": iso_ns(period.end_ns),
            "first_packet_utc": iso_ns(first), "last_packet_utc": iso_ns(last),
            "ring_files": len(own),
            "flow_packets_counted": counted[0], "flow_bytes_counted": counted[1],
            "carried_in": period.carried_in,
            "carried_out": {"flows": carry.flows, "packets": carry.packets, "bytes": carry.bytes},
            "ended_at_rotation": carry.ended_at_rotation,
            "drops_scope": scope,
            "previous": link_to(self.last_dir),
            "counts": dict(sorted({**carry.counts, "dns-context-evicted": self.dns.evicted}.items())),
        }
        if final:
            rotation["run"] = {
                "periods": self.written.periods + 1,
                "first_period": self.written.first.name if self.written.first else name,
                "packets_captured": self.engine.packets_seen, "packets_analysed": self.packets_total,
                "drops": drops.as_notes(),
            }
        finished.notes["rotation"] = rotation
        result = AnalysisResult.from_finished(finished, self.settings)
        try:
            path = write_period(result, self.options.out, name, self.write_options)
        except OSError as exc:   # a full disk: the periods written stay, this one cannot be
            raise LiveError(f"cannot write period {name} into {self.options.out}: "
                            f"{exc.strerror or exc}; the capture stopped") from None
        w = self.written
        w.periods += 1
        w.first = w.first or path
        w.last = path
        w.flows += result.table.num_rows
        w.packets += int(summary_packets(result))
        w.flows_carried += carry.first_time
        self.last_dir = path
        return result

    def _period_drops(self, now: Drops, final: bool) -> tuple[dict, str | None]:
        """This period's drops where the engine counts them while running (scapy); dumpcap
        counts them only when it stops: unknown in every period but the last, which has the
        run's totals (drops_scope "run")."""
        if not getattr(self.engine, "counts_drops_live", False):
            if final and now.known:
                return now.as_notes(), "run"
            return Drops(received=None, source=None).as_notes(), None
        if not now.known:
            return Drops(received=None, source=None).as_notes(), None
        prev = self.drops_at
        delta = Drops(kernel=now.kernel - prev.kernel, interface=now.interface - prev.interface,
                      engine=now.engine - prev.engine,
                      received=None if now.received is None or prev.received is None else now.received - prev.received,
                      source=now.source)
        self.drops_at = now
        return delta.as_notes(), "period"


def summary_packets(result) -> int:
    import pyarrow.compute as pc
    t = result.table
    return int(sum(pc.sum(t[n]).as_py() or 0 for n in ("pkts_orig", "pkts_resp")))


def _counted(period: Period) -> tuple[int, int]:
    """Packets and bytes this period's own ring files added to flows (carried-in flows'
    earlier packets are in carried_in)."""
    from flowscope.flows.layout import BYTES, D, ND, PKTS
    parts = period.own_parts()
    if not parts:
        return 0, 0
    R = np.concatenate(parts)
    return int(R[:, D + PKTS].sum() + R[:, D + ND + PKTS].sum()), int(R[:, D + BYTES].sum() + R[:, D + ND + BYTES].sum())


def _mtime_ns(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def _utc(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
