"""Where flowscope's time goes on one capture: a phase-by-phase breakdown, in one process.

    .venv/bin/python benchmarks/phases.py [benchmarks/data/bench.pcap]

Phases: imports; loading the compiled (cached) code; the read + decode + flow-table loop;
merge and the Arrow table; and, separately, SHA-256 of the file alone (the CLI computes it
on the second core while the first one parses). The compiled code must already be cached
(run the CLI once first).
"""
from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path


def main() -> None:
    path = sys.argv[1] if len(sys.argv) > 1 else "benchmarks/data/bench.pcap"
    t = [time.perf_counter()]

    def lap():
        t.append(time.perf_counter())
        return t[-1] - t[-2]

    import numpy  # noqa: F401
    import numba  # noqa: F401
    from flowscope.decode.layout import REASONS, new_batch
    from flowscope.flows.finalize import flow_order, to_table
    from flowscope.flows.merge import merge_parts
    from flowscope.flows.table import FlowTable
    from flowscope.flows.timeouts import timeouts_ns
    from flowscope.settings import Settings
    from flowscope.sources import CaptureStats, open_capture
    imports = lap()
    s = Settings()
    cap = CaptureStats(path=path)
    reader = open_capture(path, cap)
    P = new_batch(s.batch_packets)
    table = FlowTable(timeouts_ns(s), s.dedup_ns())
    batches = reader.batches(P)
    buf, n = next(batches)
    table.add(P, n, 0, 0)
    load = lap()
    for buf, n in batches:
        table.add(P, n, 0, 0)
    table.flush()
    loop = lap()
    merged, _dest = merge_parts(table.records(), timeouts_ns(s))
    flows = to_table(merged[flow_order(merged)], [path], {})
    finish = lap()
    h = hashlib.sha256()
    buf8 = bytearray(8 << 20)
    view = memoryview(buf8)
    with open(path, "rb", buffering=0) as f:
        while k := f.readinto(buf8):
            h.update(view[:k])
    sha = lap()
    packets = int(cap.stats[:len(REASONS)].sum())
    size = Path(path).stat().st_size
    print(f"{path}: {packets:,} packets, {size / 1e9:.2f} GB, {flows.num_rows:,} flows")
    print(f"  imports                      {imports:6.3f} s")
    print(f"  load compiled code           {load:6.3f} s")
    print(f"  read+decode+flow table loop  {loop:6.3f} s  = {packets / loop / 1e6:.2f} M packets/s")
    print(f"  merge + Arrow table          {finish:6.3f} s")
    print(f"  SHA-256 of the file alone    {sha:6.3f} s  = {size / sha / 1e9:.2f} GB/s")


if __name__ == "__main__":
    main()
