"""Speed and memory at many flows, paired against nfstream (issue 14's targets).

    .venv/bin/python benchmarks/many_flows.py [--repeat 3] [--json OUT]

Three captures from make_capture.py (generated into benchmarks/data/ when missing): 2 M
packets with 20k flows, the same 20k flows over 4 M packets, and 2 M packets with 100k flows.
On each, round-robin (so background load hits all alike), each a fresh child process started
by run.py's spawner: flowscope's flow table only (`--no-classify --no-geo --no-report`), the
default analysis (`--no-report`), and nfstream (one meter, no dissection: run.py's worker).

Reported per capture: best-of and median wall time, peak RSS, the speed ratio to nfstream
(best against best), and the per-flow cost of the stages after the flow table:
(default - flow table only) / flows, from the medians. Memory flat in packets: the 4 M
capture's peak RSS against the 2 M one's (same flows). nfstream is skipped on the 4 M capture
unless --nfstream-4m.

The 4x budget: nfstream's best / 4, against flowscope's flow table only (best). What is left
of it is all the stages after the table could spend, dissection to writing, to reach 4x.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from types import SimpleNamespace

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run  # noqa: E402  (benchmarks/run.py: spawner, tools, facts)

CAPTURES = [("2M-20k", 2_000_000, 20_000), ("4M-20k", 4_000_000, 20_000), ("2M-100k", 2_000_000, 100_000)]
TOOLS = ["flowscope", "flowscope-geo", "nfstream"]
LABEL = {"flowscope": "flow table only", "flowscope-geo": "default --no-report", "nfstream": "nfstream"}


def capture_path(name: str, packets: int, flows: int, folder: str) -> str:
    path = os.path.join(folder, f"bench-{name}.pcap")
    if not os.path.exists(path):
        print(f"{path} missing: generating it ({packets:,} packets, {flows:,} flows)", flush=True)
        subprocess.run([sys.executable, os.path.join(HERE, "make_capture.py"), "--packets", str(packets),
                        "--flows", str(flows), "--out", path], check=True)
    return path


def measure(path: str, tools: list[str], repeat: int, spawner) -> dict:
    args = SimpleNamespace(timeout=3600.0, nf_idle=3600, nf_active=7200)
    run.page_cache(path)
    runs: dict[str, list] = {t: [] for t in tools}
    for i in range(repeat):
        for tool in tools:
            r = run.run_once(spawner, tool, path, args)
            runs[tool].append(r)
            print(f"  {LABEL[tool]:22s} run {i + 1}/{repeat}: {r['wall_s']:.2f} s, "
                  f"{r['peak_rss_mib']:.0f} MiB" + (f"  ERROR {r['error']}" if r.get("error") else ""), flush=True)
    out = {}
    for tool, rs in runs.items():
        good = [r for r in rs if not r.get("error")]
        if not good:
            out[tool] = {"error": rs[-1].get("error")}
            continue
        walls = [r["wall_s"] for r in good]
        out[tool] = {"best_s": min(walls), "median_s": statistics.median(walls), "walls_s": walls,
                     "peak_rss_mib": max(r["peak_rss_mib"] for r in good), "flows": good[0].get("flows"),
                     "user_s": [r["user_s"] for r in good]}
    return out


def summarise(name: str, flows: int, res: dict) -> dict:
    table, full, nf = res.get("flowscope", {}), res.get("flowscope-geo", {}), res.get("nfstream", {})
    s = {"capture": name, "flows": flows}
    if "median_s" in table and "median_s" in full:
        s["after_table_us_per_flow"] = round((full["median_s"] - table["median_s"]) / flows * 1e6, 1)
    if "best_s" in nf and "best_s" in full:
        s["x_nfstream"] = round(nf["best_s"] / full["best_s"], 2)
    if "best_s" in nf and "best_s" in table:
        budget = nf["best_s"] / 4
        s["budget_4x_s"] = round(budget, 2)
        s["budget_4x_left_s"] = round(budget - table["best_s"], 2)
        s["budget_4x_left_us_per_flow"] = round((budget - table["best_s"]) / flows * 1e6, 1)
    return s


def budget_lines(summary: list[dict], results: dict) -> list[str]:
    """The 4x budget against the flow table alone, a capture a row."""
    rows = [s for s in summary if "budget_4x_s" in s]
    if not rows:
        return []
    lines = ["", "| capture | 4x budget (nfstream best / 4) | flow table only (best) | left for the stages after the "
             "table | a flow |", "|---|---|---|---|---|"]
    for s in rows:
        table_s = results[s["capture"]]["flowscope"]["best_s"]
        lines.append(f"| {s['capture']} | {s['budget_4x_s']:.2f} s | {table_s:.2f} s | {s['budget_4x_left_s']:.2f} s | "
                     f"{s['budget_4x_left_us_per_flow']} us |")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", metavar="OUT")
    ap.add_argument("--data", default=os.path.join(HERE, "data"), help="folder of the captures")
    ap.add_argument("--only", help="comma-separated capture names (2M-20k,4M-20k,2M-100k)")
    ap.add_argument("--nfstream-4m", action="store_true", help="run nfstream on the 4 M capture too")
    args = ap.parse_args(argv)
    os.makedirs(args.data, exist_ok=True)
    machine = run.machine_facts()
    print(f"machine: {machine['nproc']} CPUs, load average {machine['loadavg_at_start']}", flush=True)
    spawner = run.Spawner()
    results, summary = {}, []
    wanted = set(args.only.split(",")) if args.only else None
    for name, packets, flows in CAPTURES:
        if wanted and name not in wanted:
            continue
        path = capture_path(name, packets, flows, args.data)
        tools = [t for t in TOOLS if t != "nfstream" or name != "4M-20k" or args.nfstream_4m]
        print(f"{name}: {path}", flush=True)
        results[name] = measure(path, tools, args.repeat, spawner)
        summary.append(summarise(name, flows, results[name]))
    spawner.close()
    print("\n| capture | flow table only | default --no-report | nfstream | x nfstream | after the table, per flow |")
    print("|---|---|---|---|---|---|")
    for s in summary:
        r = results[s["capture"]]

        def cell(tool):
            x = r.get(tool)
            if not x:
                return "-"
            if "error" in x:
                return f"error: {x['error']}"
            return f"{x['best_s']:.2f} s (median {x['median_s']:.2f}), {x['peak_rss_mib']:.0f} MiB"
        print(f"| {s['capture']} | {cell('flowscope')} | {cell('flowscope-geo')} | {cell('nfstream')} | "
              f"{s.get('x_nfstream', '-')} | {s.get('after_table_us_per_flow', '-')} us |")
    for line in budget_lines(summary, results):
        print(line)
    if "2M-20k" in results and "4M-20k" in results:
        a = results["2M-20k"].get("flowscope-geo", {}).get("peak_rss_mib")
        b = results["4M-20k"].get("flowscope-geo", {}).get("peak_rss_mib")
        if a and b:
            print(f"\nmemory flat in packets: 4 M / 2 M packets, same 20k flows: {b:.0f} / {a:.0f} MiB = {b / a:.3f}")
    machine["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": machine, "results": results, "summary": summary}, fh, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
