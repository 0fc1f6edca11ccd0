"""Flows open when a period ends, carried into the next period the way the merge carries
them across ring files: each flow is counted once, in the period where it ends.

At a rotation the period's parts are merged exactly as `Analysis.finish` merges them
(flows/merge.py). Every flow still open at the end of its last part is then either

- carried: a later packet could still continue it, because its last packet lies within its
  idle timeout of the newest packet captured (the merge's own continuation rule; packets
  come in time order, so no later one can be nearer). Its records leave this period and
  become one record of the next period (two where its frame walk was broken, below), with
  what the later stages would have read from the records it replaces: the payload evidence
  and kept bytes that dissect/evidence.for_flows joins, in its order and to its limits, and
  the frame walk stitched so far as metadata/walked.stitch_flows stitches it;
- or ended here as idle: no later packet can continue it (the single-pass table's sweep
  ends such a flow the same way). Its last record says so (END_REASON, OPEN_AT_END = 0),
  so that the period's own merge ends it there.
A flow that a carried flow of the same key followed was ended by the merge when the carried
one began; its last record is marked the same way, so it keeps that end once the carried
records have left.

What crosses a rotation is bounded by the flows still open: one or two records a flow (not
one a ring file), its evidence (bounded per flow: dissect/evidence.py; the DNS answers of a
carried flow are cut to the newest MAX_FLOW_ANSWERS, counted), its kept bytes (the first
packets only) and its walk's bounded state and frames, one CaptureStats entry per file the
carried flows began in, the webhook receivers seen (a handful of hosts) and the DNS
context (one answer per address, at most DNS_CONTEXT_MAX addresses: the oldest answers go
first, counted). Everything else of the period is written and dropped.
"""
from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from flowscope.dissect.evidence import KEEP_TCP, KEEP_UDP, MAX_FLOW_ANSWERS, Evidence, FlowBytes, extract, merged
from flowscope.dissect.streams import RESYNC, RecordWalk
from flowscope.flows.layout import (
    BYTES, CAPTURE, D, END_IDLE, END_REASON, FIRST_ANY, ISN, K_AHI, K_ALO, K_BHI, K_BLO, K_PORTS, K_PROTO,
    LAST_ANY, ND, NF, NONE, OPEN_AT_END, ORIG_IS_A, PART, PAYLOAD, PKTS, SERIAL,
)
from flowscope.flows.merge import absorb, merge_parts
from flowscope.flows.table import end_reason_of, timeout_of
from flowscope.flows.timeouts import timeouts_ns
from flowscope.metadata.framewalk import stitch
from flowscope.sources import CaptureStats

_KEY = (K_PROTO, K_AHI, K_ALO, K_BHI, K_BLO, K_PORTS)
CARRIED_FIRST_NS = -(1 << 62)
DNS_CONTEXT_MAX = 1 << 17   # addresses whose latest answer a rotation hands on (~25 MiB at most)


@dataclass
class Payload:
    """What the collectors hold for one carried record."""
    evidence: object | None = None    # dissect.evidence.Evidence of the records it replaces
    decided: bool = False             # one of them was dissected from its SYN: later bytes add nothing
    pending: FlowBytes | None = None  # their kept bytes, joined and cut as for_flows cuts them
    walk: RecordWalk | None = None    # their frame walk, stitched, unfinished


@dataclass
class CarriedPart:
    """Carried records that become one part of the next period's analysis."""
    capture: CaptureStats             # the file the flows began in (its name and hash); not an input
    records: list = field(default_factory=list)
    payloads: list = field(default_factory=list)


@dataclass
class Carry:
    """What a rotation hands to the next period, and what it counted doing so."""
    heads: dict = field(default_factory=dict)   # id(origin capture) -> CarriedPart
    tail: CarriedPart | None = None             # second records of flows whose walk broke
    flows: int = 0
    first_time: int = 0                          # of them, flows no rotation had carried before
    packets: int = 0
    bytes: int = 0
    ended_at_rotation: int = 0
    origins: list = field(default_factory=list)  # [{path, sha256, flows}]
    platform: set = field(default_factory=set)    # webhook receivers (dissect/streams.PlatformAddresses)
    walk_notes: Counter = field(default_factory=Counter)  # what stitching the carried walks noticed
    counts: Counter = field(default_factory=Counter)      # carry-* counters for summary.json
    dns_flows: list = field(default_factory=list)         # (flow identity, responder address, start ns)

    @property
    def parts(self) -> list[CarriedPart]:
        return list(self.heads.values()) + ([self.tail] if self.tail is not None else [])


def split(analysis, now_ns: int, first_own_part: int = 0) -> Carry:
    """Take the flows that may still continue out of `analysis` (its parts and collector
    lose them) and end the others that are open as idle; `now_ns`: the newest packet time
    captured so far. Call before `analysis.finish()`; every part must be one file, the
    first `first_own_part` of them those seed() added."""
    from flowscope.pipeline import _time_ranks   # the order finish() merges the parts in
    carry = Carry()
    coll = analysis.collector
    if coll is not None:
        carry.platform = set(coll.streams.platform.receivers)
    parts, caps = analysis.parts, analysis.captures
    if not parts or not sum(len(p) for p in parts):
        return carry
    if len(parts) != len(caps):
        raise ValueError("carry.split: every part must be a file of its own")
    starts = np.cumsum([0] + [len(p) for p in parts])
    R = np.concatenate(parts)
    R[:, PART] = _time_ranks(caps, np.arange(len(parts)))[R[:, PART]]
    timeouts = timeouts_ns(analysis.settings)
    M, dest = merge_parts(R, timeouts)
    order = np.lexsort((R[:, SERIAL], R[:, PART], dest))   # by flow, then in time order
    lo = np.searchsorted(dest[order], np.arange(len(M)))
    hi = np.searchsorted(dest[order], np.arange(len(M)), side="right")

    def mark_ended(m: int, reason: int) -> None:
        k = int(order[hi[m] - 1])             # the flow's last record
        row = parts[int(R[k, CAPTURE])][k - starts[int(R[k, CAPTURE])]]
        row[OPEN_AT_END], row[END_REASON] = 0, reason

    carried = []
    for m in np.flatnonzero(M[:, OPEN_AT_END] == 1).tolist():
        if now_ns - M[m, LAST_ANY] > timeout_of(M, m, timeouts):
            mark_ended(m, end_reason_of(M, m, END_IDLE))
            carry.ended_at_rotation += 1
            continue
        carried.append(m)
        if m > 0 and all(M[m - 1, f] == M[m, f] for f in _KEY):
            mark_ended(m - 1, int(M[m - 1, END_REASON]))   # as the merge ended it
    if not carried:
        return carry
    gone = np.zeros(len(R), dtype=bool)
    silent = (R[:, D + PAYLOAD] == 0) & (R[:, D + ND + PAYLOAD] == 0)
    origins: dict[int, dict] = {}
    for m in carried:
        recs = order[lo[m]:hi[m]]
        gone[recs] = True
        swap = (R[recs, ORIG_IS_A] != M[m, ORIG_IS_A]).tolist()
        keys = list(zip(R[recs, CAPTURE].tolist(), R[recs, SERIAL].tolist()))
        walk, cut = None, None
        pay = Payload()
        if coll is not None:
            pay = _evidence(coll, keys, swap, carry.counts)
            started = M[m, D + ISN] != NONE or M[m, D + ND + ISN] != NONE
            walk, cut = _walk(coll.streams, keys, swap, silent[recs].tolist(), started, carry.walk_notes)
            pay.walk = walk
        origin = caps[int(M[m, CAPTURE])]
        head = carry.heads.get(id(origin))
        if head is None:
            head = carry.heads[id(origin)] = CarriedPart(_carried_capture(origin))
            origins[id(origin)] = {"path": origin.path, "sha256": origin.sha256, "flows": 0}
        origins[id(origin)]["flows"] += 1
        if cut is None:
            head.records.append(M[m].copy())
            head.payloads.append(pay)
        else:   # the walk broke after record `cut - 1`: a second record lets the next walk start afresh
            first, rest = _combined(R, recs[:cut]), _combined(R, recs[cut:])
            head.records.append(first)
            head.payloads.append(pay)
            if carry.tail is None:
                carry.tail = CarriedPart(CaptureStats(path="(carried: walk continuations)"))
            carry.tail.records.append(rest)
            carry.tail.payloads.append(Payload())
            carry.counts["carry-two-records"] += 1
        carry.dns_flows.append((tuple(int(M[m, f]) for f in (*_KEY, FIRST_ANY)), responder(M[m]),
                                int(M[m, FIRST_ANY])))
        carry.flows += 1
        carry.first_time += int(M[m, CAPTURE] >= first_own_part)
        carry.packets += int(M[m, D + PKTS] + M[m, D + ND + PKTS])
        carry.bytes += int(M[m, D + BYTES] + M[m, D + ND + BYTES])
    carry.origins = list(origins.values())
    for p in range(len(parts)):
        keep = ~gone[starts[p]:starts[p + 1]]
        if not keep.all():
            parts[p] = parts[p][keep]
    return carry


def seed(analysis, carry: Carry) -> list[CaptureStats]:
    """Add the carried records to a new period's `analysis` (before its first ring file) with
    their collector state; returns the CaptureStats entries they came with (not inputs of
    the period: the caller leaves them out of what it writes)."""
    coll = analysis.collector
    if coll is not None:
        coll.streams.platform.receivers |= carry.platform
        coll.streams.counts.update(carry.walk_notes)
    added = []
    parts = carry.parts
    if not parts:
        return added
    for part in parts:
        index = len(analysis.parts)
        recs = np.array(part.records, dtype=np.int64).reshape(-1, NF)
        recs[:, CAPTURE] = recs[:, PART] = index
        recs[:, SERIAL] = np.arange(len(recs))
        # One start time for all, before any: they rank before every ring file of the period
        # (even after the clock was set back), in the order added (heads before the tail),
        # as finish() breaks ties by part index. Only the ranking reads it.
        part.capture.first_ts_ns = CARRIED_FIRST_NS
        analysis.add_part(recs, part.capture)
        added.append(part.capture)
        if coll is None:
            continue
        for serial, pay in enumerate(part.payloads):
            key = (index, serial)
            if pay.evidence is not None:
                coll.evidence[key] = pay.evidence
                if pay.decided:
                    coll.decided.add(key)
            if pay.pending is not None:
                coll.pending[key] = pay.pending
            if pay.walk is not None:
                coll.streams.walks[key] = pay.walk
    return added


def _carried_capture(origin: CaptureStats) -> CaptureStats:
    """The origin file's entry as the next period needs it: its name and hash for the
    flows' `capture` column, its PCAPdroid apps and counters (geo trusts no handshake RTT
    from a PCAPdroid file). Its packets were counted where it was read."""
    return CaptureStats(path=origin.path, sha256=origin.sha256, format=origin.format,
                        compression=origin.compression, link_types=set(origin.link_types),
                        stats=origin.stats.copy(), apps=dict(origin.apps), packages=dict(origin.packages))


def _combined(R: np.ndarray, recs: np.ndarray) -> np.ndarray:
    """Consecutive records of one flow combined as the merge combines them (its continuation
    test was passed already, with the whole flow's state: not repeated on a part of it)."""
    out = R[recs[:1]].copy()
    for k in recs[1:].tolist():
        absorb(out, 0, R, k)
    return out[0]


def _evidence(coll, keys, swap, counts: Counter) -> Payload:
    """for_flows' view of one flow's records so far (dissect/evidence.for_flows): decided
    evidence in time order, kept bytes joined in the flow's orientation and cut to the
    first packets it dissects, not joined after a record dissected from its SYN."""
    items, closed, into = [], False, None
    for key, sw in zip(keys, swap):
        ev = coll.evidence.pop(key, None)
        if ev is not None:
            items.append(ev)
            if key in coll.decided:
                closed = True
        coll.decided.discard(key)
        kept = coll.pending.pop(key, None)
        if kept is not None and not closed:
            into = into or FlowBytes(kept.l4)
            for d in (0, 1):
                src = 1 - d if sw else d
                into.segments[d].extend(kept.segments[src])
                into.datagrams[d].extend(kept.datagrams[src])
    if into is not None:
        keep = KEEP_TCP if into.l4 == 6 else KEEP_UDP
        for d in (0, 1):
            del into.segments[d][keep[d]:]
            del into.datagrams[d][keep[d]:]
        if closed:
            # bytes kept before a record dissected from its SYN (a SYN on a 5-tuple still
            # open): for_flows dissects them last; doing it now differs only if yet another
            # record of the flow is dissected from a SYN later
            items.append(extract(into, coll.counts))
            into = None
            counts["carry-bytes-dissected-early"] += 1
    ev = merged(items) if items else None
    if ev is not None and len(ev.dns_answers) > MAX_FLOW_ANSWERS:
        ev = copy.copy(ev)
        ev.dns_answers = sorted(ev.dns_answers, key=lambda a: a[0])[-MAX_FLOW_ANSWERS:]
        counts["carry-dns-answers-cut"] += 1
    return Payload(ev, closed, into)


def _walk(store, keys, swap, silent, started: bool, notes: Counter) -> tuple[RecordWalk | None, int | None]:
    """The flow's walk as metadata/walked.stitch_flows stitches it, stopped before finishing:
    (walk or None, where to cut the records in two or None). The walks leave `store`."""
    walks = []
    for key in keys:
        w = store.walks.pop(key, None)
        t = store.tentative.pop(key, None)
        walks.append(w or t)
    if all(w is None for w in walks):
        return None, None
    kind, dirs, broken, last = None, None, False, -1
    for i, (w, sw) in enumerate(zip(walks, swap)):
        if silent[i]:
            continue
        if dirs is None and (w is None or (w.kind == RESYNC and started)):
            return None, None   # not walked: the next period sees the same first record
        if w is None:
            broken = True
            continue
        pair = (w.dirs[1], w.dirs[0]) if sw else w.dirs
        if dirs is None:
            kind, dirs = w.kind, [d.clone() for d in pair]
        else:
            for d in (0, 1):
                if broken:
                    fresh = pair[d].clone()
                    fresh.frames = dirs[d].frames + fresh.frames
                    fresh.gaps += dirs[d].gaps + 1
                    fresh.sync = dirs[d].sync or fresh.sync
                    fresh.form = fresh.form or dirs[d].form
                    dirs[d] = fresh
                else:
                    dirs[d] = stitch(dirs[d], pair[d], notes)
        broken, last = False, i
    if dirs is None:
        return None, None
    walk = RecordWalk.__new__(RecordWalk)
    walk.kind, walk.dirs = kind, tuple(dirs)
    return walk, (last + 1 if broken else None)


def responder(row: np.ndarray) -> str:
    """A flow record's responder address as the flows table writes it (IPv4-mapped: IPv4)."""
    import ipaddress
    a_orig = row[ORIG_IS_A] == 1
    hi, lo = (int(row[K_BHI]), int(row[K_BLO])) if a_orig else (int(row[K_AHI]), int(row[K_ALO]))
    hi, lo = hi & 0xFFFFFFFFFFFFFFFF, lo & 0xFFFFFFFFFFFFFFFF
    if hi == 0 and lo >> 32 == 0xFFFF:
        return str(ipaddress.IPv4Address(lo & 0xFFFFFFFF))
    return str(ipaddress.IPv6Address((hi << 64) | lo))


def dns_answers(analysis) -> list:
    """Every DNS answer (ts, address, name) the analysis' collector holds."""
    coll = analysis.collector
    if coll is None:
        return []
    return [a for ev in coll.evidence.values() for a in ev.dns_answers]


class DnsContext:
    """The DNS answers a period needs from the periods before it (see the module doc)."""

    def __init__(self, limit: int = DNS_CONTEXT_MAX):
        self.latest: dict[str, tuple[int, str]] = {}   # address -> (ts, name) of its latest answer
        self.pins: dict[tuple, tuple] = {}              # carried flow -> the answer it picks
        self.limit = limit
        self.evicted = 0

    def answers(self) -> list:
        """What a period's DNS index needs on top of its own flows' answers."""
        return [(ts, addr, name) for addr, (ts, name) in self.latest.items()] + list(self.pins.values())

    def rotate(self, period_answers: list, carried: list) -> None:
        """After a period: pin the carried flows not pinned yet (from the answers before and
        of this period), then take this period's answers in."""
        by_addr: dict[str, list] = {}
        for ts, addr, name in period_answers:
            by_addr.setdefault(addr, []).append((ts, name))
        pins = {}
        for ident, addr, start in carried:
            pin = self.pins.get(ident)
            if pin is None:
                options = [a for a in by_addr.get(addr, ()) if a[0] <= start]
                before = self.latest.get(addr)
                if before is not None and before[0] <= start:
                    options.append(before)
                if options:
                    ts, name = max(options)
                    pin = (ts, addr, name)
            if pin is not None:
                pins[ident] = pin
        self.pins = pins
        for addr, items in by_addr.items():
            best = max(items)
            if addr not in self.latest or best > self.latest[addr]:
                self.latest[addr] = best
        if len(self.latest) > self.limit:
            keep = sorted(self.latest.items(), key=lambda kv: kv[1])[-(self.limit * 9 // 10):]
            self.evicted += len(self.latest) - len(keep)
            self.latest = dict(keep)


def attach_context(analysis, answers: list) -> None:
    """Give `analysis`'s DNS index the earlier periods' answers: the classify stage pools the
    answers of all flows' evidence into one index and reads them nowhere else, so they
    join the evidence of the analysis' first record (its own fields unchanged)."""
    coll = analysis.collector
    if coll is None or not answers:
        return
    for p, part in enumerate(analysis.parts):
        if len(part):
            key = (p, int(part[0, SERIAL]))
            break
    else:
        return   # no flow to name
    ctx = Evidence()
    ctx.dns_answers = list(answers)
    prev = coll.evidence.get(key)
    coll.evidence[key] = ctx if prev is None else merged([prev, ctx])
