"""Soak run of rotated live capture: memory must stay flat over many periods (run as root).

A private network namespace holds a veth pair (as benchmarks/live_rate.py); tcpreplay sends
the sample capture in a loop at a fixed packet rate into one end, with new IP addresses
every loop (--unique-ip: new flows all the time, which must end, be written and be
dropped), paced with nanosleep (-T nano: the default timer spins a core), while `flowscope live --rotate ...` captures on the other end. The resident set
of the flowscope process and of its dumpcap child is sampled every --every-s seconds
(psutil) into a CSV; at the end flowscope gets SIGINT, every period directory is verified
(hashes and the chain: `flowscope verify DIR`) and the periods' packets are added up.

The state a rotation hands on is bounded by the flows still open, which lasts as long as
the idle timeouts: with the defaults (TCP 1 h) memory levels off after an hour, so the run
uses shorter ones (--tcp-idle/--udp-idle, default 60 s/30 s) to reach that level in a
minute or two and then show whether anything else grows.

    sudo .venv/bin/python benchmarks/soak.py --minutes 12 --pps 2000 --rotate 1m \\
        --csv benchmarks/data/soak.csv --json benchmarks/data/soak.json
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from live_rate import CAPTURE, ROOT, SAMPLE, SEND, Namespace, wait_capturing  # noqa: E402

MIB = 1 << 20


def mib(x: float) -> float:
    return round(x / MIB, 1)


def slope_per_hour(ts: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over ts, per hour."""
    n = len(ts)
    if n < 2:
        return 0.0
    mt, my = sum(ts) / n, sum(ys) / n
    var = sum((t - mt) ** 2 for t in ts)
    return 0.0 if var == 0 else sum((t - mt) * (y - my) for t, y in zip(ts, ys)) / var * 3600


def sample(proc) -> dict:
    """RSS of flowscope and of its capture engine (children), bytes; None once gone."""
    import psutil
    try:
        p = psutil.Process(proc.pid)
        rss = p.memory_info().rss
        kids = p.children(recursive=True)
        engine = sum(k.memory_info().rss for k in kids if k.name() == "dumpcap")
        cpu = p.cpu_times()
        return {"rss": rss, "rss_engine": engine, "cpu_s": cpu.user + cpu.system}
    except psutil.Error:
        return {}


def summarise(rows: list[dict], key: str, warmup_s: float) -> dict:
    """RSS at start, middle and end, its extremes and least-squares slope; the same after
    the warm-up (the first periods load pandas, pyarrow, the geo databases, and the flows
    open within the idle timeouts build up)."""
    ts = [r["t_s"] for r in rows]
    ys = [r[key] for r in rows]
    half = len(rows) // 2
    warm = [k for k, t in enumerate(ts) if t >= warmup_s] or [len(rows) - 1]
    wt, wy = [ts[k] for k in warm], [ys[k] for k in warm]
    return {
        "start_mib": mib(ys[0]), "middle_mib": mib(ys[half]), "end_mib": mib(ys[-1]),
        "max_mib": mib(max(ys)), "min_mib": mib(min(ys)),
        "slope_mib_per_h": round(slope_per_hour(ts, ys) / MIB, 2),
        "slope_second_half_mib_per_h": round(slope_per_hour(ts[half:], ys[half:]) / MIB, 2),
        "after_warmup": {"from_s": warmup_s, "min_mib": mib(min(wy)), "max_mib": mib(max(wy)),
                         "slope_mib_per_h": round(slope_per_hour(wt, wy) / MIB, 2)},
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=12.0, help="how long tcpreplay sends (default 12)")
    ap.add_argument("--pps", type=int, default=2000, help="tcpreplay's packet rate (default 2000)")
    ap.add_argument("--rotate", default="1m", help="flowscope live --rotate (default 1m)")
    ap.add_argument("--tcp-idle", type=float, default=60.0)
    ap.add_argument("--udp-idle", type=float, default=30.0)
    ap.add_argument("--every-s", type=float, default=1.0, help="RSS sampling interval (default 1 s)")
    ap.add_argument("--warmup-s", type=float, default=180.0,
                    help="summarise RSS also from this time on (default 180 s: imports, then the idle timeouts)")
    ap.add_argument("--report", action="store_true", help="render each period's report too (charts, HTML, PDF)")
    ap.add_argument("--out", type=Path, help="where the periods go (default: a temporary directory, removed)")
    ap.add_argument("--csv", type=Path, help="write every RSS sample here")
    ap.add_argument("--json", type=Path, help="write the summary here")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("soak.py needs root (network namespace, capture)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))   # clean up the namespace on kill
    signal.signal(signal.SIGINT, signal.default_int_handler)   # also when started in the background
    for tool in ("ip", "tcpreplay", "dumpcap"):
        if shutil.which(tool) is None:
            raise SystemExit(f"soak.py needs {tool} (scripts/setup-system.sh installs it)")
    tmp = None
    if args.out is None:
        tmp = tempfile.mkdtemp(prefix="flowscope-soak-")
        args.out = Path(tmp) / "out"
    live_cmd = ["live", "-i", CAPTURE, "--bpf", "ip or ip6", "--out", str(args.out), "--rotate", args.rotate,
                "--tcp-idle", str(args.tcp_idle), "--udp-idle", str(args.udp_idle), "-q"]
    if not args.report:
        live_cmd.append("--no-report")
    rows: list[dict] = []
    try:
        with Namespace() as ns:
            proc = subprocess.Popen(ns.cmd(sys.executable, "-m", "flowscope.cli", *live_cmd), cwd=ROOT,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            wait_capturing(proc)
            duration = max(1, round(args.minutes * 60))
            sender = subprocess.Popen(ns.cmd("tcpreplay", "-K", "-T", "nano", "-i", SEND, f"--pps={args.pps}", "--loop=0",
                                             "--unique-ip", f"--duration={duration}", SAMPLE),
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            t0 = time.monotonic()
            print(f"soak: {args.minutes:g} min at {args.pps:,} pps, --rotate {args.rotate}, "
                  f"idle timeouts TCP {args.tcp_idle:g} s / UDP {args.udp_idle:g} s; out {args.out}", flush=True)
            next_print = 0.0
            while sender.poll() is None:
                got = sample(proc)
                if not got or proc.poll() is not None:
                    sender.kill()
                    raise SystemExit(f"flowscope live exited early: {proc.stderr.read().strip()}")
                t = time.monotonic() - t0
                periods = sum(1 for p in args.out.iterdir() if p.is_dir() and not p.name.startswith(".")) \
                    if args.out.exists() else 0
                rows.append({"t_s": round(t, 2), **got, "periods": periods})
                if t >= next_print:
                    print(f"  {t:7.0f} s  flowscope {mib(got['rss']):7.1f} MiB  dumpcap {mib(got['rss_engine']):5.1f} MiB"
                          f"  cpu {got['cpu_s']:7.1f} s  periods {periods}", flush=True)
                    next_print += 60
                time.sleep(args.every_s)
            sent_out, _ = sender.communicate()
            sent = int(re.search(r"Successful packets:\s+(\d+)", sent_out).group(1))
            time.sleep(1.0)
            proc.send_signal(signal.SIGINT)
            _out, err = proc.communicate(timeout=600)
            if proc.returncode != 0:
                raise SystemExit(f"flowscope live failed ({proc.returncode}): {err.strip()}")
        from flowscope.live.periods import period_dirs, verify_run
        problems, notes = verify_run(args.out, captures=False)
        periods = period_dirs(args.out)
        summaries = [json.loads((d / "summary.json").read_text()) for d in periods]
        analysed = sum(s["rotation"]["flow_packets_counted"] for s in summaries)
        read = sum(c["packets_read"] for s in summaries for c in s["captures"])
        run = summaries[-1]["rotation"]["run"]
        result = {
            "machine": {"cpus": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version()},
            "command": "flowscope " + " ".join(live_cmd),
            "minutes": args.minutes, "pps": args.pps, "samples": len(rows),
            "packets_sent": sent, "packets_read": read, "packets_in_flows": analysed,
            "dropped": run["drops"],
            "periods": len(periods), "verify_problems": problems, "verify_notes": notes,
            "flows": sum(s["flows"] for s in summaries),
            "flows_carried_max": max(s["rotation"]["carried_out"]["flows"] for s in summaries),
            "cpu_s": rows[-1]["cpu_s"],
            "flowscope_rss": summarise(rows, "rss", args.warmup_s),
            "dumpcap_rss": summarise(rows, "rss_engine", args.warmup_s),
        }
    finally:
        if args.csv and rows:
            args.csv.parent.mkdir(parents=True, exist_ok=True)
            with open(args.csv, "w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=list(rows[0]))
                w.writeheader()
                w.writerows(rows)
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
