"""Fold parts together: chunks that meet exactly, payload collectors of all parts,
statistics of a file's chunks; then hand them to pipeline.Analysis in part order.

Nothing here knows about dask: any engine that runs tasks.read somewhere can use it.

The collector is folded attribute by attribute, by the kind of value, not by name: other
stages add attributes to PayloadCollector, and each new one is merged without a change
here as long as it is a dict keyed by (part, flow serial), a set of such keys, a Counter
or a list; anything else, or a dict key two parts share, stops the run (a new attribute
that needs a rule of its own must not be merged wrongly in silence).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import fields

import numpy as np

from flowscope.engine.sweeps import last_sweep_ns
from flowscope.flows.layout import NF
from flowscope.flows.merge import NOT_CHUNKED
from flowscope.sources import CaptureStats


def exact_results(specs, results, reread) -> tuple[list, int]:
    """Results a part, checked in part order: a chunk that guessed its start other than
    where the chunk before it stopped (exact, since that one began exactly) is read again
    from there by `reread(spec, index)`. A file's chunks after its first failure are
    dropped (None), as the in-process read stops there. Returns (results, re-reads)."""
    out, failed, stop, rereads = [], set(), None, 0
    for k, (spec, res) in enumerate(zip(specs, results)):
        if spec.whole:
            out.append(res)
            continue
        if spec.file in failed:
            out.append(None)
            continue
        if not spec.exact and res.start != stop:
            res = reread(spec.exactly_at(stop), k)
            rereads += 1
        out.append(res)
        if res.capture.error is not None:
            failed.add(spec.file)
        stop = res.stop
    return out, rereads


def assemble(analysis, specs, results) -> None:
    """Parts in order into `analysis` (pipeline.Analysis); a file's chunks share one
    CaptureStats entry, each adding its share; every collector is folded into the run's;
    a chunk carries the time of its file's last one-pass sweep (sweeps.py), with which the
    merge gives flows that end in a chunk the end a one-pass read gives them."""
    runs: dict = {}  # chunked file -> its chunks' BufferRuns, in order
    for spec, res in zip(specs, results):
        if res is not None and res.runs is not None:
            runs.setdefault(spec.file, []).append(res.runs)
    batch = analysis.settings.batch_packets
    last_sweep = {f: last_sweep_ns(r, batch) for f, r in runs.items()}
    files: dict = {}
    for spec, res in zip(specs, results):
        sweep = NOT_CHUNKED if spec.whole else last_sweep.get(spec.file, NOT_CHUNKED)
        if res is None:
            analysis.add_part(np.zeros((0, NF), dtype=np.int64), files[spec.file], sweep)
            continue
        capture = files.get(spec.file)
        if capture is None:
            capture = files[spec.file] = res.capture
        else:
            merge_capture(capture, res.capture)
        analysis.add_part(res.records, capture, sweep)
        if res.collector is not None:
            merge_collector(analysis.collector, res.collector)


def merge_collector(into, part) -> None:
    """Add the state of `part` (a PayloadCollector of one part) to `into`."""
    for name, value in vars(part).items():
        have = getattr(into, name)
        if isinstance(value, Counter):
            have.update(value)  # adds counts
        elif isinstance(value, dict):
            shared = value.keys() & have.keys()
            if shared:
                raise ValueError(f"PayloadCollector.{name}: parts share keys {sorted(shared)[:3]}: "
                                 "not keyed by part, needs its own merge rule")
            have.update(value)
        elif isinstance(value, set):
            have |= value
        elif isinstance(value, list):
            have.extend(value)  # parts are folded in part order
        elif hasattr(value, "merge"):  # a store with a rule of its own (dissect/streams.py)
            have.merge(value)
        elif isinstance(value, (tuple, int, float, str, bytes, type(None))):
            if value != have:  # configuration: every part's must be the run's
                raise ValueError(f"PayloadCollector.{name}: part has {value!r}, run has {have!r}")
        else:
            raise TypeError(f"PayloadCollector.{name}: no rule to merge a {type(value).__name__}")


def _first(a, b):
    return a if a is not None else b


def _apps(a: dict, b: dict) -> dict:
    out = dict(a)
    for uid, name in b.items():
        if out.get(uid) is None:
            out[uid] = name
    return out


def _counts(a: dict, b: dict) -> dict:
    return {k: a.get(k, 0) + b.get(k, 0) for k in {**a, **b}}


def _min(a, b):
    return b if a is None else a if b is None else min(a, b)


def _max(a, b):
    return b if a is None else a if b is None else max(a, b)


# How each CaptureStats field of consecutive chunks of one file combines (a test checks
# that every field has a rule).
CAPTURE_RULES = {
    "path": _first, "sha256": _first, "format": _first, "compression": _first,
    "link_types": lambda a, b: a | b,
    "stats": lambda a, b: a + b,
    "duplicates": lambda a, b: a + b,
    "error": _first,          # the first failure ends the file (later chunks are dropped)
    "sections": lambda a, b: a + b, "interfaces": lambda a, b: a + b,
    "interface_stats": lambda a, b: {**a, **b},
    "name_records": lambda a, b: a + b,
    "blocks_skipped": _counts,
    "apps": _apps,
    "packages": lambda a, b: {**b, **a},
    "first_ts_ns": _min, "last_ts_ns": _max,
}


def merge_capture(into: CaptureStats, later: CaptureStats) -> None:
    """Fold the statistics of a file's later chunk into those of its earlier chunks."""
    for f in fields(CaptureStats):
        setattr(into, f.name, CAPTURE_RULES[f.name](getattr(into, f.name), getattr(later, f.name)))
