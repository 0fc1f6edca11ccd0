"""Throughput of `--engine dask` with 1 and 2 local workers against the in-process run.

    PYTHONPATH=. .venv/bin/python benchmarks/dask_scaling.py [--file benchmarks/data/bench.pcap]
        [--runs 3] [--chunk-mb 256] [--workers 1 2] [--json OUT]

Each configuration runs in a fresh child process (imports, cluster start-up and exit
included, as a user pays them), round-robin over the configurations so background load
hits all alike; the table shows each one's best wall time. Dask children also report
where their time went (cluster start, the distributed read, the client's merge and later
stages) and the flow records sent back. A last measurement reads one chunk in this process
and pickles its result: what serialising one part costs.
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def child(config: dict) -> None:
    """Run one analysis as the CLI would and print what it cost (JSON, last line)."""
    t0 = time.perf_counter()
    from flowscope import AnalysisResult, Settings
    settings = Settings()
    info: dict = {}
    if config["engine"] == "local":
        from flowscope.pipeline import run
        finished = run([config["file"]], settings)
    else:
        from flowscope.engine.dask import run
        finished = run([config["file"]], settings, workers=config["workers"],
                       chunk_bytes=config["chunk_mb"] << 20, info=info)
    result = AnalysisResult.from_finished(finished, settings)
    with tempfile.TemporaryDirectory() as out:
        result.write(out)
    info.update(flows=result.table.num_rows, packets=result.summary["packets"], in_child_s=time.perf_counter() - t0)
    print(json.dumps(info))


def run_child(config: dict) -> dict:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        proc = subprocess.Popen([sys.executable, __file__, "--child", json.dumps(config)], stdout=out, stderr=err,
                                env={**os.environ, "PYTHONPATH": ROOT})
        _, status, usage = os.wait4(proc.pid, 0)  # CPU of the child and the workers it reaped
        wall = time.perf_counter() - t
        out.seek(0)
        err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"{config}: failed\n{err.read().decode()}")
        return {**json.loads(out.read().decode().strip().splitlines()[-1]), "wall_s": wall,
                "cpu_s": usage.ru_utime + usage.ru_stime}


def serialisation_cost(path: str, chunk_mb: int) -> dict:
    """Read the first chunk here and pickle its result, as a worker sends it."""
    from flowscope import Settings
    from flowscope.engine import chunks, tasks
    specs = chunks.plan([path], chunk_mb << 20)
    res = tasks.read(specs[0], 0, Settings(), len(specs))
    t = time.perf_counter()
    blob = pickle.dumps(res, protocol=5)
    dumped = time.perf_counter() - t
    t = time.perf_counter()
    pickle.loads(blob)
    return {"parts": len(specs), "part_pickle_bytes": len(blob), "records_bytes": int(res.records.nbytes),
            "collector_pickle_bytes": len(pickle.dumps(res.collector, protocol=5)),
            "dumps_s": dumped, "loads_s": time.perf_counter() - t}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", default=os.path.join(ROOT, "benchmarks", "data", "bench.pcap"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--chunk-mb", type=int, default=256)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--json", help="write every run here")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(json.loads(args.child))
    with open(args.file, "rb") as f:  # into the page cache
        while f.read(8 << 20):
            pass
    configs = {"local": {"engine": "local", "file": args.file}}
    for n in args.workers:
        configs[f"dask {n}w"] = {"engine": "dask", "file": args.file, "workers": n, "chunk_mb": args.chunk_mb}
    run_child(configs["local"])  # warm-up: compiled code and geo caches
    runs: dict[str, list[dict]] = {k: [] for k in configs}
    for _ in range(args.runs):
        for name, config in configs.items():
            runs[name].append(run_child(config))
    size = os.path.getsize(args.file)
    print(f"{args.file}: {size / 1e9:.2f} GB, {args.runs} runs each, chunks of {args.chunk_mb} MiB, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    print(f"{'engine':10s} {'best wall s':>11s} {'cpu s':>6s} {'M pkt/s':>8s} {'MB/s':>7s} {'cluster s':>9s} "
          f"{'read s':>7s} {'merge+stages s':>14s} {'records MB':>10s} {'flows':>6s}")
    for name, rows in runs.items():
        best = min(rows, key=lambda r: r["wall_s"])
        print(f"{name:10s} {best['wall_s']:11.2f} {best['cpu_s']:6.1f} {best['packets'] / best['wall_s'] / 1e6:8.2f} "
              f"{size / best['wall_s'] / 1e6:7.0f} {best.get('connect_s', 0):9.2f} {best.get('read_s', 0):7.2f} "
              f"{best.get('finish_s', 0):14.2f} {best.get('result_bytes', 0) / 1e6:10.1f} {best['flows']:6d}")
    cost = serialisation_cost(args.file, args.chunk_mb)
    print(f"one part's result: {cost['part_pickle_bytes'] / 1e6:.1f} MB pickled (flow records "
          f"{cost['records_bytes'] / 1e6:.1f} MB, payload collector {cost['collector_pickle_bytes'] / 1e6:.1f} MB), "
          f"dumps {cost['dumps_s'] * 1e3:.0f} ms, loads {cost['loads_s'] * 1e3:.0f} ms; {cost['parts']} parts")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"runs": runs, "serialisation": cost, "file_bytes": size}, f, indent=1)


if __name__ == "__main__":
    main()
