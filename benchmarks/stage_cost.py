"""What one stage adds to `flowscope analyze`: A/B runs, interleaved, medians.

    .venv/bin/python benchmarks/stage_cost.py [--file benchmarks/data/bench.pcap]
        [--runs 11] [--base "--no-geo --no-report"] [--with "--no-report"]

Runs `flowscope analyze FILE` with the base options and with the stage's options
alternately (so background load hits both alike), and prints the median and best wall
time and CPU time (user + system of the process tree, from os.wait4) of each, and the
stage's share. The default compares classification without and with geolocation
(issue 4's "< 10% of the benchmark's time"), both without the report; the report's own
cost: --base "--no-report" --with "".
"""
from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXE = os.path.join(ROOT, ".venv", "bin", "flowscope")


def run_once(path: str, extra: list[str]) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        proc = subprocess.Popen([EXE, "analyze", path, "--out", out, "-q", *extra])
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"flowscope failed with options {extra}")
        return wall, usage.ru_utime + usage.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", default=os.path.join(ROOT, "benchmarks", "data", "bench.pcap"))
    ap.add_argument("--runs", type=int, default=11)
    ap.add_argument("--base", default="--no-geo --no-report", help="options of the run without the stage")
    ap.add_argument("--with", dest="with_", default="--no-report", help="options of the run with the stage")
    args = ap.parse_args()
    with open(args.file, "rb") as f:  # into the page cache
        while f.read(8 << 20):
            pass
    variants = {"base": shlex.split(args.base), "with": shlex.split(args.with_)}
    run_once(args.file, variants["with"])  # warm-up: compile caches, geo caches
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in variants}
    for _ in range(args.runs):
        for name, extra in variants.items():
            times[name].append(run_once(args.file, extra))
    print(f"{args.file}: {args.runs} interleaved runs each")
    med = {}
    for name, rows in times.items():
        walls, cpus = [w for w, _ in rows], [c for _, c in rows]
        med[name] = (statistics.median(walls), statistics.median(cpus))
        print(f"  {name:5s} {' '.join(variants[name]) or '(defaults)':12s} wall median {med[name][0]:.3f} s "
              f"best {min(walls):.3f} s | cpu median {med[name][1]:.3f} s")
    print(f"  stage adds {med['with'][0] - med['base'][0]:+.3f} s wall "
          f"({(med['with'][0] / med['base'][0] - 1) * 100:+.1f}%), "
          f"{med['with'][1] - med['base'][1]:+.3f} s cpu ({(med['with'][1] / med['base'][1] - 1) * 100:+.1f}%)")


if __name__ == "__main__":
    main()
