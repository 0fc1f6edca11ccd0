"""The frame walks of whole flows: each record's walk (dissect/streams.py), stitched in time
order across the parts (files, chunks, ring files) the flow spans.

A flow's first walked record decides how its walk began: from the stream start
("prologue": the WhatsApp prologue or the ClientHello), or by resynchronising on a
connection already open ("resync"). A later record continues the walk by replaying its
first segments on the walk so far (framewalk.stitch): no file is read twice.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from flowscope.dissect.streams import RESYNC
from flowscope.metadata.framewalk import TLS, UNIT, stitch

# The labels whose walks are reported, per unit: TLS records of the Business Platform flows
# (Cloud API calls, webhooks, solution providers: issue 13) too.
BUSINESS_SERVICES = ("whatsapp.business_api", "whatsapp.webhook", "whatsapp.bsp")
SERVICES_OF_UNIT = {"wa-frame": ("whatsapp.chat",), "tls-record": ("whatsapp.web", *BUSINESS_SERVICES)}


@dataclass
class FlowWalk:
    """The stitched walk of one flow, directions as the flow's (originator, responder)."""
    frames: tuple            # per direction [(frame bytes, ts of the first header byte, ts of the last byte)]
    unit: str | None         # "wa-frame" or "tls-record"; None: nothing locked
    sync: str | None         # "prologue" or "resync"
    kind: str                # the first walked record's kind: dissect/streams.py WA, WEB or RESYNC
    gaps: int = 0
    desync: int = 0
    locked: tuple = (False, False)  # per direction: the walk found frame boundaries
    notes: Counter = field(default_factory=Counter)  # what stitching it noticed


@dataclass
class Walks:
    """Walks by flow id, and what the stream walks counted while reading (records skipped)."""
    flows: dict = field(default_factory=dict)
    counts: Counter = field(default_factory=Counter)


def stitch_flows(flows, store) -> Walks:
    """One FlowWalk per flow with a walked record; `flows` is a flows/merge.MergedFlows,
    `store` a StreamWalks (left unchanged: a live snapshot stitches again later)."""
    out = Walks(counts=Counter(store.counts))
    keys = flows.keys()
    has = np.fromiter((store.get(key) is not None for key in keys), dtype=bool, count=len(keys))
    if not has.any():
        return out
    wanted = np.isin(flows.flow_of_record, flows.flow_of_record[has])
    current: dict[int, list] = {}
    unwalked: set[int] = set()  # flows whose first record was not walked: later ones are not either
    silent = flows.silent  # no bytes: nothing to walk or miss
    started = flows.flow_started[flows.flow_of_record]  # the record's flow had its SYN captured
    for k, fid, swap in zip(*(a.tolist() for a in flows.by_flow(wanted & ~silent))):
        if fid in unwalked:
            continue
        walk = store.get(keys[k])
        state = current.get(fid)
        if state is None and (walk is None or (walk.kind == RESYNC and started[k])):
            unwalked.add(fid)  # (a record without a SYN continues a flow whose SYN was seen: not open before)
            continue
        if walk is None:
            if state is not None:
                state[2] = True  # a record in between that was not walked: the next one starts afresh
            continue
        dirs = (walk.dirs[1], walk.dirs[0]) if swap else walk.dirs
        if state is None:
            current[fid] = [walk.kind, [d.clone() for d in dirs], False, Counter()]
            continue
        for d in (0, 1):
            if state[2]:
                fresh = dirs[d].clone()
                fresh.frames = state[1][d].frames + fresh.frames
                fresh.gaps += state[1][d].gaps + 1
                fresh.sync = state[1][d].sync or fresh.sync
                fresh.form = fresh.form or state[1][d].form  # the frames so far are of that form
                state[1][d] = fresh
            else:
                state[1][d] = stitch(state[1][d], dirs[d], state[3])
        state[2] = False
    for fid, (kind, dirs, _broken, notes) in current.items():
        for d in dirs:
            d.finish()
        forms = [d.form for d in dirs if d.sync is not None]
        unit = UNIT[TLS] if TLS in forms else (UNIT[forms[0]] if forms else None)
        sync = "prologue" if any(d.sync == "prologue" for d in dirs) else ("resync" if forms else None)
        out.flows[fid] = FlowWalk((dirs[0].frames, dirs[1].frames), unit, sync, kind,
                                  sum(d.gaps for d in dirs), sum(d.desync for d in dirs),
                                  tuple(d.sync is not None for d in dirs), notes)
    return out


@dataclass
class Walked:
    """Frames of the reported walks as columns, and per-flow counts."""
    flow_id: list = field(default_factory=list)
    frame_index: list = field(default_factory=list)
    ts: list = field(default_factory=list)
    ts_first: list = field(default_factory=list)
    direction: list = field(default_factory=list)
    frame_bytes: list = field(default_factory=list)
    unit: list = field(default_factory=list)
    counts: dict = field(default_factory=dict)   # flow_id -> (frames_up, frames_down, gaps)
    sync: dict = field(default_factory=dict)     # flow_id -> "prologue" | "resync"
    notes: Counter = field(default_factory=Counter)


def reported(walks: Walks, services, local_is_orig) -> Walked:
    """The walks whose unit fits the flow's label (WhatsApp frames of whatsapp.chat, TLS
    records of whatsapp.web and the Business Platform services), as frame columns; `services` the flows' service column."""
    out = Walked(notes=Counter(walks.counts))
    for fid, w in sorted(walks.flows.items()):
        if w.unit is None:  # no frame boundary found: not a framed stream
            continue
        if services[fid].as_py() not in SERVICES_OF_UNIT[w.unit]:
            out.notes["walk-skipped-not-labelled"] += 1
            continue
        out.notes["walk-desync"] += w.desync
        out.notes.update(w.notes)
        counts = [0, 0]
        for d in (0, 1):
            up = (d == 0) == bool(local_is_orig[fid])
            counts[0 if up else 1] = len(w.frames[d])
            for index, (size, ts_first, ts) in enumerate(w.frames[d]):
                out.flow_id.append(fid)
                out.frame_index.append(index)
                out.ts.append(ts)
                out.ts_first.append(ts_first)
                out.direction.append("up" if up else "down")
                out.frame_bytes.append(size)
                out.unit.append(w.unit)
        out.counts[fid] = (counts[0], counts[1], w.gaps)
        out.sync[fid] = w.sync
    return out
