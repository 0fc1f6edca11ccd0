"""The highest replay rate at which `flowscope live` loses nothing (run as root).

A private network namespace holds a veth pair; tcpreplay sends the sample capture, looped,
into one end at a fixed packet rate for --trial-s seconds (far longer than the 32 MiB capture
buffer can hide a shortfall) while `flowscope live` captures on the other end, then gets
SIGINT. A rate passes when the live summary reports zero drops (kernel, interface and
engine) and every packet tcpreplay sent was analysed. The search doubles the rate until a
trial fails, then bisects to --precision. tcpreplay's own ceiling (--topspeed) is measured
too: on a small machine it, dumpcap and flowscope share the cores.

    sudo .venv/bin/python benchmarks/live_rate.py                  # dumpcap
    sudo .venv/bin/python benchmarks/live_rate.py --engine scapy   # the fallback engine
"""
from __future__ import annotations

import argparse
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
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "captures" / "sample_session.pcap"
SAMPLE_PACKETS = 1037
SEND, CAPTURE = "lr-send", "lr-cap"


def sh(*cmd, check=True, **kw):
    return subprocess.run(list(map(str, cmd)), check=check, capture_output=True, text=True, **kw)


class Namespace:
    def __init__(self):
        self.name = f"flowscope-bench-{uuid.uuid4().hex[:8]}"

    def __enter__(self):
        sh("ip", "netns", "add", self.name)
        for key in ("all", "default"):   # no kernel IPv6 chatter on the pair
            sh(*self.cmd("sysctl", "-qw", f"net.ipv6.conf.{key}.disable_ipv6=1"), check=False)
        sh("ip", "-n", self.name, "link", "add", SEND, "type", "veth", "peer", "name", CAPTURE)
        for dev in (SEND, CAPTURE):
            sh("ip", "-n", self.name, "link", "set", dev, "mtu", "9000", "up")
        return self

    def __exit__(self, *exc):
        for pid in sh("ip", "netns", "pids", self.name, check=False).stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)   # only what this script started in it
            except ProcessLookupError:
                pass
        sh("ip", "netns", "del", self.name, check=False)

    def cmd(self, *args):
        return ["ip", "netns", "exec", self.name, *map(str, args)]


def replay(ns: Namespace, pps: int | None, loops: int) -> dict:
    rate = [f"--pps={pps}"] if pps else ["--topspeed"]
    # -K: the loops come from memory, so the sender is as fast as it can be
    r = sh(*ns.cmd("tcpreplay", "-K", "-i", SEND, *rate, f"--loop={loops}", SAMPLE), timeout=3600)
    sent = int(re.search(r"Successful packets:\s+(\d+)", r.stdout).group(1))
    m = re.search(r"Rated: ([\d.]+) Bps, ([\d.]+) Mbps, ([\d.]+) pps", r.stdout)
    return {"sent": sent, "rated_pps": float(m.group(3)), "rated_mbps": float(m.group(2))}


def trial(ns: Namespace, pps: int | None, loops: int, engine: str) -> dict:
    """One capture: start flowscope live, replay, stop, read its summary."""
    with tempfile.TemporaryDirectory(prefix="flowscope-live-rate-") as tmp:
        out = Path(tmp) / "out"
        hide = ["env", "PATH=/nonexistent"] if engine == "scapy" else []
        cmd = ns.cmd(*hide, sys.executable, "-m", "flowscope.cli", "live", "-i", CAPTURE,
                     "--bpf", "ip or ip6", "--out", out, "-q")
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_capturing(proc)
        sent = replay(ns, pps, loops)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise SystemExit(f"flowscope live failed ({proc.returncode}): {err.strip()}")
        live = json.loads((out / "summary.json").read_text())["live"]
    drops = sum(live[k] or 0 for k in ("dropped_kernel", "dropped_interface", "dropped_engine"))
    return {"pps": pps, **sent, "analysed": live["packets_analysed"], "dropped": drops,
            "dropped_kernel": live["dropped_kernel"], "engine": live["engine"],
            "lossless": drops == 0 and live["packets_analysed"] == sent["sent"]}


def wait_capturing(proc, timeout_s=60.0):
    """-q prints nothing on start: wait for dumpcap/scapy to hold the interface instead."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"flowscope live exited: {proc.stderr.read().strip()}")
        if _holds_packet_socket(proc.pid):
            time.sleep(0.3)
            return
        time.sleep(0.05)
    raise SystemExit("flowscope live did not start capturing")


def _holds_packet_socket(pid: int) -> bool:
    """A packet socket open in flowscope or one of its children (dumpcap)."""
    try:   # the process's own view: it lives in the namespace
        table = Path(f"/proc/{pid}/net/packet").read_text().splitlines()[1:]
    except OSError:
        return False
    inodes = {line.split()[8] for line in table}
    pids = [pid] + [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    for p in pids:
        try:
            fds = list(Path(f"/proc/{p}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(fd)
            except OSError:
                continue
            if link.startswith("socket:[") and link[8:-1] in inodes:
                return True
    return False


def loops_for(pps: int, trial_s: float) -> int:
    return max(1, round(pps * trial_s / SAMPLE_PACKETS))


def search(ns, engine, trial_s, start_pps, precision, log) -> tuple[int, int | None]:
    """(highest lossless pps seen, lowest lossy pps seen or None)."""
    good, bad = 0, None
    pps = start_pps
    while (bad is None or (bad - good) / bad > precision) and pps >= 100:
        result = trial(ns, pps, loops_for(pps, trial_s), engine)
        log(result)
        if result["lossless"]:
            good = max(good, pps)
        else:
            bad = pps if bad is None else min(bad, pps)
        if bad is None:
            pps *= 2
            if result["rated_pps"] < 0.9 * pps / 2:   # tcpreplay cannot send faster: stop doubling
                break
        else:
            pps = (good + bad) // 2 if good else bad // 2
    return good, bad


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--engine", choices=["dumpcap", "scapy"], default="dumpcap")
    ap.add_argument("--trial-s", type=float, default=10.0, help="seconds of traffic per trial at the asked rate")
    ap.add_argument("--top-loops", type=int, default=1000,
                    help="sample replays (1,037 packets each) in the --topspeed trial")
    ap.add_argument("--start-pps", type=int, default=10_000)
    ap.add_argument("--precision", type=float, default=0.1, help="stop bisecting within this fraction")
    ap.add_argument("--json", type=Path, help="write every trial and the result here")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("live_rate.py needs root (network namespace, capture)")
    for tool in ("ip", "tcpreplay") + (("dumpcap",) if args.engine == "dumpcap" else ()):
        if shutil.which(tool) is None:
            raise SystemExit(f"live_rate.py needs {tool} (scripts/setup-system.sh installs it)")
    trials = []

    def log(r):
        trials.append(r)
        print(f"  {r['pps'] or 'topspeed':>9} pps asked, {r['rated_pps']:>10,.0f} pps / {r['rated_mbps']:7.1f} Mbit/s "
              f"sent: {r['sent']:,} sent, {r['dropped']:,} dropped -> {'lossless' if r['lossless'] else 'LOSSY'}",
              flush=True)
    with Namespace() as ns:
        print(f"engine {args.engine}: {args.top_loops} x {SAMPLE.name} at tcpreplay's top speed, "
              f"then {args.trial_s:g} s of traffic per trial")
        top = trial(ns, None, args.top_loops, args.engine)
        log(top)
        bad = None
        if not top["lossless"]:   # else the engine keeps up with all tcpreplay can send
            _good, bad = search(ns, args.engine, args.trial_s, args.start_pps, args.precision, log)
    best = max((t for t in trials if t["lossless"]), key=lambda t: t["rated_pps"], default=None)
    print(f"highest lossless rate: {best['rated_pps']:,.0f} pps ({best['rated_mbps']:.1f} Mbit/s) with "
          f"{best['engine']}" if best else "no lossless rate found")
    if bad:
        print(f"lowest lossy rate asked: {bad:,} pps")
    if args.json:
        machine = {"cpus": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version()}
        args.json.write_text(json.dumps({"machine": machine, "trials": trials, "best": best}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
