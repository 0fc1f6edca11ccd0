"""What the report (charts, report.html, report.pdf through Chromium) adds to `flowscope analyze`.

    python benchmarks/report_cost.py FILE [FILE ...] [--runs 7] [--json OUT]

For each capture, runs `flowscope analyze FILE --out DIR -q` with `--no-report` (A) and
without it (B), alternately (A B, then B A, ...: background load and cache state hit both
alike), after one warm-up run of each. Wall time is the whole CLI process, from just
before spawning it to the return of os.wait4 (interpreter start-up, imports, analysis,
tables, report, manifest); CPU time is user + system of the process and the children it
reaped (Chromium's included). Prints the median and best of each variant and the report's
cost: median(B) - median(A), best(B) - best(A), and the median of the paired differences.

The flowscope that runs is this checkout's (PYTHONPATH=its root), under the interpreter
running this script (`--python` for another). `--json OUT` writes every run and the
machine's facts (cores, load average, Python and Chromium versions).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARIANTS = {"no-report": ["--no-report"], "report": []}


def run_once(cmd: list[str], path: str, extra: list[str], env: dict) -> dict:
    out = tempfile.mkdtemp(prefix="flowscope-report-cost-")
    try:
        t = time.perf_counter()
        proc = subprocess.Popen([*cmd, "analyze", path, "--out", out, "-q", *extra], env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        code = os.waitstatus_to_exitcode(status)
        pdf = os.path.isfile(os.path.join(out, "report.pdf"))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    if code != 0:
        sys.exit(f"flowscope analyze {path} {' '.join(extra)} failed (exit {code})")
    return {"wall_s": round(wall, 4), "cpu_s": round(usage.ru_utime + usage.ru_stime, 4),
            "max_rss_mib": round(usage.ru_maxrss / 1024, 1), "pdf": pdf}


def measure(cmd: list[str], path: str, runs: int, env: dict) -> dict:
    with open(path, "rb") as f:  # into the page cache
        while f.read(8 << 20):
            pass
    for extra in VARIANTS.values():  # warm-up: compile caches, geo caches, the browser's files
        run_once(cmd, path, extra, env)
    rows: dict[str, list[dict]] = {name: [] for name in VARIANTS}
    for i in range(runs):
        order = list(VARIANTS) if i % 2 == 0 else list(reversed(VARIANTS))
        for name in order:
            rows[name].append(run_once(cmd, path, VARIANTS[name], env))
    if not all(r["pdf"] for r in rows["report"]):
        sys.exit(f"{path}: a run with the report wrote no report.pdf (is Chromium installed?)")
    walls = {name: [r["wall_s"] for r in rs] for name, rs in rows.items()}
    cpus = {name: [r["cpu_s"] for r in rs] for name, rs in rows.items()}
    paired = [b - a for a, b in zip(walls["no-report"], walls["report"])]
    return {
        "file": path, "runs": rows,
        "median_s": {k: round(statistics.median(v), 3) for k, v in walls.items()},
        "best_s": {k: round(min(v), 3) for k, v in walls.items()},
        "cpu_median_s": {k: round(statistics.median(v), 3) for k, v in cpus.items()},
        "report_adds_s": {
            "median": round(statistics.median(walls["report"]) - statistics.median(walls["no-report"]), 3),
            "best": round(min(walls["report"]) - min(walls["no-report"]), 3),
            "paired_median": round(statistics.median(paired), 3),
        },
    }


def machine(cmd: list[str], env: dict) -> dict:
    from_cli = subprocess.run([*cmd[:-1], "from flowscope.report.pdf import chromium_version as v; print(v())"],
                              env=env, capture_output=True, text=True)
    return {"cores": os.cpu_count(), "load_average": os.getloadavg(), "platform": platform.platform(),
            "python": platform.python_version(), "chromium": from_cli.stdout.strip() or None,
            "command": shlex.join(cmd)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", help="capture files")
    ap.add_argument("--runs", type=int, default=7, help="runs of each variant, after one warm-up run of each")
    ap.add_argument("--python", default=sys.executable, help="the interpreter that runs flowscope")
    ap.add_argument("--json", help="write every run and the machine's facts to this file")
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))}
    cmd = [args.python, "-c", "from flowscope.cli import entry; entry()"]
    facts = machine(cmd, env)
    results = []
    for path in args.files:
        r = measure(cmd, path, args.runs, env)
        results.append(r)
        print(f"{path}: {args.runs} interleaved runs each")
        for name in VARIANTS:
            print(f"  {name:9s} wall median {r['median_s'][name]:.3f} s  best {r['best_s'][name]:.3f} s  "
                  f"cpu median {r['cpu_median_s'][name]:.3f} s")
        a = r["report_adds_s"]
        print(f"  the report adds {a['median']:+.3f} s (medians), {a['best']:+.3f} s (best runs), "
              f"{a['paired_median']:+.3f} s (median of paired differences)")
    facts["load_average_after"] = os.getloadavg()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": facts, "results": results}, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
