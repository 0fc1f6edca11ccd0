"""What a person watching a live capture sees: a terminal panel refreshed about once a
second, and the closing lines (the first of which always says whether packets were lost)."""
from __future__ import annotations

import ipaddress
import time
from pathlib import Path

import pyarrow.compute as pc

from flowscope.live.engines import interface_drops
from flowscope.terminal import markup

REFRESH_S = 1.0
SNAPSHOT_COST_FACTOR = 4   # a snapshot re-merges every part: never spend over 1/4 of the time on it
TOP_ROWS = 8


def snapshot_stats(table, local_nets=()) -> dict:
    """Flow-table figures for the view: totals, Meta totals, Meta by region (once the geo
    stage provides `region`) else by service, and how many local devices were seen."""
    def total(t, *names):
        return int(sum(pc.sum(t[n]).as_py() or 0 for n in names))
    stats = {"flows": table.num_rows, "bytes": total(table, "bytes_orig", "bytes_resp"),
             "meta_flows": 0, "meta_bytes": 0, "by": "service", "breakdown": [], "devices": 0}
    if table.num_rows and "is_meta" in table.column_names and table["is_meta"].null_count < table.num_rows:
        meta = table.filter(pc.fill_null(table["is_meta"], False))
        stats["meta_flows"], stats["meta_bytes"] = meta.num_rows, total(meta, "bytes_orig", "bytes_resp")
        key = "region" if "region" in table.column_names else "service"
        stats["by"] = key
        groups = meta.group_by(key).aggregate([("bytes_orig", "sum"), ("bytes_resp", "sum"),
                                               (key, "count", pc.CountOptions(mode="all"))])  # nulls too
        rows = [(g[key] or "unknown", g[f"{key}_count"], (g["bytes_orig_sum"] or 0) + (g["bytes_resp_sum"] or 0))
                for g in groups.to_pylist()]
        stats["breakdown"] = sorted(rows, key=lambda r: -r[2])[:TOP_ROWS]
    if table.num_rows and local_nets:
        addrs = set(table["orig_ip"].unique().to_pylist()) | set(table["resp_ip"].unique().to_pylist())
        stats["devices"] = sum(1 for a in addrs if a and _in_nets(a, local_nets))
    return stats


def _in_nets(addr: str, nets) -> bool:
    ip = ipaddress.ip_address(addr)
    return any(ip.version == n.version and ip in n for n in nets)


class LiveView:
    """A rich Live panel on stderr; `tick` is cheap between refreshes."""

    def __init__(self, interface: str, out: Path, local_nets=(), console=None):
        from rich.console import Console
        from rich.live import Live
        self.interface, self.out, self.local_nets = interface, out, local_nets
        self.console = console or Console(stderr=True)
        self.live = Live(console=self.console, auto_refresh=False, transient=True)
        self.ifdrops_at_start = interface_drops(interface)
        self.last_render = 0.0
        self.next_snapshot = 0.0
        self.parts_in_snapshot = -1
        self.stats = snapshot_stats_empty()
        self.rotation = None   # rotation.Rotation of a rotated run

    def __enter__(self):
        self.live.__enter__()
        return self

    def __exit__(self, *exc):
        return self.live.__exit__(*exc)

    def tick(self, elapsed_s: float, engine, analysis) -> None:
        now = time.monotonic()
        if now - self.last_render < REFRESH_S:
            return
        self.last_render = now
        if len(analysis.parts) != self.parts_in_snapshot and now >= self.next_snapshot:
            table = analysis.finish(final=False).flows
            cost_s = time.monotonic() - now
            self.next_snapshot = now + max(REFRESH_S, SNAPSHOT_COST_FACTOR * cost_s)
            self.parts_in_snapshot = len(analysis.parts)
            self.stats = snapshot_stats(table, self.local_nets)
        self.live.update(self.render(elapsed_s, engine), refresh=True)

    def render(self, elapsed_s: float, engine):
        from rich.table import Table
        s = self.stats
        grid = Table.grid(padding=(0, 2))
        grid.add_column(justify="right", style="bold")
        grid.add_column()
        h, rem = divmod(int(elapsed_s), 3600)
        grid.add_row("capturing", markup(f"{self.interface} with {engine.label}, {h:d}:{rem // 60:02d}:{rem % 60:02d} "
                                         f"(Ctrl-C stops and writes {self.out})"))
        grid.add_row("packets", f"{engine.packets_seen:,}")
        if self.rotation is not None:
            w, cur = self.rotation.written, self.rotation.current
            last = f", last {w.last.name}" if w.last else ""
            grid.add_row("periods", f"{w.periods:,} written{last}; period {cur.index:,}: {cur.packets:,} packets, "
                                    f"{cur.carried_in['flows']:,} flows carried in")
        grid.add_row("dropped", self._drops_text(engine))
        grid.add_row("flows", f"{s['flows']:,} ({s['bytes']:,} IP bytes), local devices {s['devices']}")
        grid.add_row("Meta flows", f"{s['meta_flows']:,} ({s['meta_bytes']:,} IP bytes)")
        for name, flows, nbytes in s["breakdown"]:
            grid.add_row(markup(f"{s['by']} {name}"), f"{flows:,} flows, {nbytes:,} IP bytes")
        return grid

    def _drops_text(self, engine) -> str:
        now = interface_drops(self.interface)
        parts = []
        if None not in (now, self.ifdrops_at_start):
            parts.append(f"interface {now - self.ifdrops_at_start:,}")
        so_far = getattr(engine, "kernel_drops", None)
        parts.append(f"kernel {so_far:,}" if so_far is not None else "kernel/engine: counted when capture stops")
        return ", ".join(parts)


def snapshot_stats_empty() -> dict:
    return {"flows": 0, "bytes": 0, "meta_flows": 0, "meta_bytes": 0, "by": "service", "breakdown": [], "devices": 0}


def first_line(run, interface: str) -> str:
    """Whether anything was lost comes first: a run that dropped packets must say so."""
    live = run.result.notes["live"]
    rotation = run.result.notes.get("rotation")
    if rotation and rotation.get("run"):   # the run's figures, not the last period's
        started = rotation["run_started_utc"]
        live = {**live, "packets_captured": rotation["run"]["packets_captured"],
                "duration_s": _seconds_between(started, live["ended_utc"])}
    return _first_line(run.drops, live, interface)


def _seconds_between(a: str, b: str) -> float:
    import datetime as dt

    def parse(text: str):
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (parse(b) - parse(a)).total_seconds()


def _first_line(d, live: dict, interface: str) -> str:
    engine = live["engine"].split()[0]
    captured = live["packets_captured"]
    if d.known and d.total:
        seen = (d.received if d.received is not None else captured) + d.total
        return (f"DROPPED {d.total:,} packets on {interface} (kernel {d.kernel:,}, interface {d.interface:,}, "
                f"{engine} {d.engine:,}) of {seen:,}: the flow table is incomplete")
    how = f"captured {captured:,} packets on {interface} in {live['duration_s']:.1f} s with {live['engine']}"
    if not d.known:
        return f"{how}; drops unknown ({engine} did not report them) - stopped: {live['stop_reason']}"
    return f"{how}, none dropped - stopped: {live['stop_reason']}"


def summary_lines(run, out: Path) -> list[str]:
    s = run.result.summary
    live = s["live"]
    read = sum(c["packets_read"] for c in s["captures"])
    undecodable = sum(sum(c["packets_undecodable"].values()) for c in s["captures"])
    dups = sum(c["duplicates"] for c in s["captures"])
    lines = [first_line(run, live["interface"]),
             f"{read:,} packets analysed ({undecodable:,} undecodable, {dups:,} duplicates) from "
             f"{len(s['captures'])} capture files, {s['flows']:,} flows, {s['bytes']:,} IP bytes"]
    meta = s.get("meta")
    if meta:
        lines.append(f"{meta['flows']:,} flows ({meta['bytes']:,} IP bytes) reach WhatsApp/Meta: "
                     + ", ".join(f"{k} {v:,}" for k, v in meta["flows_by_service"].items()))
    wrote = f"wrote {out / 'flows.parquet'} and {out / 'summary.json'}"
    if live["pcap_dir"]:
        wrote += f"; capture files in {live['pcap_dir']}"
    return lines + [wrote]


def rotation_lines(run, out: Path) -> list[str]:
    """The closing lines of a rotated run: drops first, then the periods written."""
    w = run.rotation
    rotation = run.result.notes["rotation"]
    from flowscope.live.periods import Schedule
    every = "every " + Schedule(rotation["every_s"], rotation["every_packets"]).text()
    lines = [first_line(run, run.result.notes["live"]["interface"]),
             f"{w.periods:,} period directories ({every}) in {out}: {w.first.name} to {w.last.name}",
             f"{w.flows:,} flows, {w.packets:,} packets in them; {w.flows_carried:,} flows ran across a period "
             f"boundary (each counted once, in the period where it ended)"]
    live = run.result.notes["live"]
    if live["pcap_dir"]:
        lines.append(f"capture files in {live['pcap_dir']}")
    return lines
