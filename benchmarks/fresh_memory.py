"""How long this machine takes to hand a process memory it has not touched before.

    .venv/bin/python benchmarks/fresh_memory.py [--runs 8] [--mib 39]

Each run is a fresh child process that copies a MIB-sized array (a 100k-flow record table
is 39 MiB) into freshly allocated memory six times: the first copy pays the first touch of
new pages, the later ones reuse pages the process already freed. On a VM, the first touch
can stall while the host backs the guest's memory; such stalls are one source of the
run-to-run spread of the other benchmarks (benchmarks/README.md, "Fifth pass").
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = """
import json, resource, sys, time
import numpy as np
src = np.ones(int(sys.argv[1]) << 17, np.int64)
out = []
for _ in range(6):
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t = time.perf_counter(); a = np.empty_like(src); a[:] = src; t = time.perf_counter() - t
    out.append([round(t * 1e3, 1), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0])
    del a
print(json.dumps(out))
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--mib", type=int, default=39)
    args = ap.parse_args(argv)
    firsts, laters = [], []
    for k in range(args.runs):
        got = json.loads(subprocess.run([sys.executable, "-c", CHILD, str(args.mib)], check=True,
                                        capture_output=True, text=True).stdout)
        firsts.append(got[0][0])
        laters += [ms for ms, _faults in got[1:]]
        print(f"run {k + 1}: first copy {got[0][0]} ms ({got[0][1]} page faults), "
              f"later copies {min(ms for ms, _ in got[1:])}-{max(ms for ms, _ in got[1:])} ms", flush=True)
    print(f"\n{args.mib} MiB into fresh memory: first copy {min(firsts)}-{max(firsts)} ms, "
          f"later copies {min(laters)}-{max(laters)} ms ({args.runs} processes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
