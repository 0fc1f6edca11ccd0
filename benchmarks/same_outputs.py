"""Are two evidence directories (or folders of them) the same analysis? For speed work.

    .venv/bin/python benchmarks/same_outputs.py BEFORE AFTER

BEFORE and AFTER are `flowscope analyze --out` directories, or folders holding several of
them with the same names. Compared: flows, frames, events and actions tables column by
column (schemas without their metadata), summary.json key by key, transfers.json byte by
byte. Exit 1 and one line per difference when they differ.

A change to the hot path is checked by analysing the same inputs before and after (the
benchmark captures, the sample, the company capture, the corpus) and running this.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow.parquet as pq

TABLES = ("flows", "frames", "events", "actions")


def _dirs(root: Path) -> list[Path]:
    return [root] if (root / "summary.json").exists() else sorted(p for p in root.iterdir() if p.is_dir())


def differences(a: Path, b: Path) -> list[str]:
    out = []
    for t in TABLES:
        fa, fb = a / f"{t}.parquet", b / f"{t}.parquet"
        if not fa.exists():
            continue
        if not fb.exists():
            out.append(f"{b.name}: {t}.parquet missing")
            continue
        ta, tb = pq.read_table(fa), pq.read_table(fb)
        if ta.schema.remove_metadata() != tb.schema.remove_metadata():
            out.append(f"{a.name}: {t} schema differs")
            continue
        out += [f"{a.name}: {t}.{c} differs" for c in ta.column_names if not ta[c].equals(tb[c])]
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    out += [f"{a.name}: summary.json {k} differs" for k in sorted(set(sa) | set(sb)) if sa.get(k) != sb.get(k)]
    ta_, tb_ = a / "transfers.json", b / "transfers.json"
    if ta_.exists() and (not tb_.exists() or ta_.read_bytes() != tb_.read_bytes()):
        out.append(f"{a.name}: transfers.json differs")
    return out


def main(argv=None) -> int:
    before, after = (Path(x) for x in (argv or sys.argv[1:]))
    found = []
    for a in _dirs(before):
        b = after / a.name if a != before else after
        found += differences(a, b)
    for line in found:
        print(line)
    print(f"{len(found)} differences")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
