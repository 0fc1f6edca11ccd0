"""Which flows get a frame walk, and their streams joined across the files they span.

A flow is walked when one of its records saw the stream start (first originator bytes:
the WhatsApp prologue, or a ClientHello naming web.whatsapp.com; flows/table.py) and the
classifier labelled it whatsapp.chat or whatsapp.web. Its records are joined in time
order, directions aligned to the merged flow's originator, exactly as the evidence of
split files is joined (dissect/evidence.for_flows). A later record whose packets were
not kept (its file was read before the file where the flow began) is read again.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from flowscope.flows.layout import (
    CAPTURE, D, ISN, ND, NONE, ORIG_IS_A, PART, PAYLOAD, SERIAL, STREAM, STREAM_WA, STREAM_WEB,
)
from flowscope.metadata.frames import client_version, reassemble, walk_tls, walk_wa

UNITS = {STREAM_WA: ("whatsapp.chat", "wa-frame"), STREAM_WEB: ("whatsapp.web", "tls-record")}


@dataclass
class Walked:
    """Frames of all walked flows as columns, and per-flow counts."""
    flow_id: list = field(default_factory=list)
    frame_index: list = field(default_factory=list)
    ts: list = field(default_factory=list)
    ts_first: list = field(default_factory=list)
    direction: list = field(default_factory=list)
    frame_bytes: list = field(default_factory=list)
    unit: list = field(default_factory=list)
    counts: dict = field(default_factory=dict)   # flow_id -> (frames_up, frames_down, gaps)
    notes: Counter = field(default_factory=Counter)


def _records_by_flow(records: np.ndarray, dest: np.ndarray) -> dict[int, list[int]]:
    """Merged row -> its record indices in time order (only merged rows with a walked record)."""
    wanted = set(dest[np.isin(records[:, STREAM], list(UNITS))].tolist())
    order = np.lexsort((records[:, SERIAL], records[:, PART], dest))
    out: dict[int, list[int]] = {}
    for k in order.tolist():
        m = int(dest[k])
        if m in wanted:
            out.setdefault(m, []).append(k)
    return out


def _has_payload(records, k) -> bool:
    return bool(records[k, D + PAYLOAD] or records[k, D + ND + PAYLOAD])


def walk_flows(records, dest, flow_of_merged, merged, store, reread, services, local_is_orig) -> Walked:
    """Walk every eligible flow. `services`: the flows' service column (Arrow); `local_is_orig`
    per flow; `reread(capture, {(capture, serial)})` gives a StreamStore."""
    out = Walked()
    plans = []  # (merged row, flow id, stream kind, record indices from the stream start)
    for m, ks in _records_by_flow(records, dest).items():
        starts = [j for j, k in enumerate(ks) if records[k, STREAM] in UNITS]
        j = starts[0]
        kind = int(records[ks[j], STREAM])
        fid = int(flow_of_merged[m])
        if any(_has_payload(records, k) for k in ks[:j]):
            out.notes["walk-skipped-no-stream-start"] += 1  # bytes before the detected start
            continue
        if services[fid].as_py() != UNITS[kind][0]:
            out.notes["walk-skipped-not-labelled"] += 1
            continue
        plans.append((m, fid, kind, ks[j:]))
    segments = store.segments() if plans else {}
    _read_missing(plans, records, segments, reread, out.notes)
    for m, fid, kind, ks in plans:
        _walk_one(out, records, merged, m, fid, kind, ks, segments, bool(local_is_orig[fid]))
    return out


def _read_missing(plans, records, segments, reread, notes) -> None:
    missing: dict[int, set] = {}
    for _m, _fid, _kind, ks in plans:
        for k in ks:
            key = (int(records[k, CAPTURE]), int(records[k, SERIAL]))
            if records[k, STREAM] <= 0 and _has_payload(records, k) and key not in segments:
                missing.setdefault(key[0], set()).add(key)
    for capture, keys in sorted(missing.items()):
        notes["walk-files-read-again"] += 1
        segments.update(reread(capture, keys).segments())


def _walk_one(out: Walked, records, merged, m, fid, kind, ks, segments, local_is_orig: bool) -> None:
    joined: tuple[list, list] = ([], [])
    for k in ks:
        got = segments.get((int(records[k, CAPTURE]), int(records[k, SERIAL])))
        if got is None:
            continue
        swap = records[k, ORIG_IS_A] != merged[m, ORIG_IS_A]
        for d in (0, 1):
            joined[d].extend(got[1 - d if swap else d])
    unit = UNITS[kind][1]
    up = down = gaps = 0
    version = None
    for d in (0, 1):
        isn = int(merged[m, D + d * ND + ISN])
        stream = reassemble(joined[d], None if isn == NONE else isn)
        if kind == STREAM_WA:
            version = client_version(stream) if d == 0 else version
            walk = walk_wa(stream, d == 0, version)
        else:
            walk = walk_tls(stream)
        if walk is None:
            out.notes["walk-no-prologue"] += 1
            return
        gaps += walk.gap
        out.notes["walk-desync"] += walk.desync
        direction = "up" if (d == 0) == local_is_orig else "down"
        for index, (first, n, last) in enumerate(walk.frames):
            out.flow_id.append(fid)
            out.frame_index.append(index)
            out.ts.append(stream.ts_at(last))
            out.ts_first.append(stream.ts_at(first))
            out.direction.append(direction)
            out.frame_bytes.append(n)
            out.unit.append(unit)
        if direction == "up":
            up = len(walk.frames)
        else:
            down = len(walk.frames)
    out.counts[fid] = (up, down, gaps)
