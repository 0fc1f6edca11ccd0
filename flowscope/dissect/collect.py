"""Keep payload only where it pays, and only until it has spoken.

The compiled flow table marks (column KEEP) the packets that can carry evidence: the first
payload packets of each flow direction whose first originator bytes look like TLS, the
WhatsApp prologue, an HTTP request, STUN or a QUIC long header (decode's HINT), and every
DNS packet. Only their bytes leave the read buffer; nothing is ever written to disk.

A TCP record that began with its SYN is dissected as soon as its originator has sent the
kept packets, and its bytes are dropped. Other records (UDP, mid-stream TCP) may continue a
record of the previous file, so their bytes wait until the parts are merged; combined in
time order and cut to the same limits, they give exactly the single-file result.

Separately, every payload packet of a walked record (KEEP_STREAM: WhatsApp chat and Web,
and connections already open towards WhatsApp/Meta servers) is walked for frames as it
comes (dissect/streams.py); only the frames and a bounded state are kept.
"""
from __future__ import annotations

import copy
from collections import Counter

import numpy as np

from flowscope.decode.layout import (
    DIR, DPORT, FLOW, FSYN, KEEP, KEEP_EVIDENCE, KEEP_HELLO, KEEP_STREAM, NTH, PCAP, POFF, PROTO, SEQ, SPORT, TS,
)
from flowscope.dissect import evidence as ev
from flowscope.dissect.evidence import KEEP_TCP, KEEP_UDP
from flowscope.dissect.streams import StreamWalks

KEEP_DATAGRAM_BYTES = 1500
DNS_PORTS = (53, 5353, 5355)  # DNS, mDNS, LLMNR: every packet is kept (flows/table.py _name_port)
DHCP_PORTS = (67, 68)
NAME_PORTS = np.array(DNS_PORTS + DHCP_PORTS)


def _name_port(ports: np.ndarray) -> np.ndarray:
    """np.isin(ports, NAME_PORTS) without its per-call set-up (~0.2 ms a batch)."""
    hit = ports == NAME_PORTS[0]
    for port in NAME_PORTS[1:].tolist():
        hit |= ports == port
    return hit


class PayloadCollector:
    """Batch consumer for pipeline.read_part: copies the packets the flow table marked KEEP.

    `keep` is what the flow table needs to mark them: per-direction limits and, with
    several parts, the window in which a record may continue the previous part's flow.
    """

    def __init__(self, parts: int = 1, continuation_ns: int = 0, candidates=None):
        self.pending: dict[tuple[int, int], ev.FlowBytes] = {}
        self.evidence: dict[tuple[int, int], ev.Evidence] = {}
        self.decided: set[tuple[int, int]] = set()  # TCP records dissected from their SYN on
        self.counts: Counter = Counter()
        # frame walks of WhatsApp chat/Web records; a record of a later part may continue one
        self.streams = StreamWalks(candidates, keep_head=parts > 1)
        # With several parts, a record starting within the longest timeout of its part's
        # first packet may continue a flow of the previous part: the table keeps its bytes
        # whatever they look like, so that joining parts reproduces the single-file result.
        self.keep = (*KEEP_TCP, *KEEP_UDP, continuation_ns if parts > 1 else -1)
        self.business = None  # flows/table.BusinessWalks: Business Platform records walked (pipeline sets it)
        # one part: a record the flow table emitted continues nothing, so its kept bytes are
        # dissected at once (end_records) instead of waiting for the merge
        self.single = parts == 1

    def end_records(self, part: int, serials: list[int]) -> None:
        """Records of `part` that ended: free their walks' search state and, with one part,
        dissect their kept bytes now (evidence.for_flows would give the same evidence later;
        holding the bytes until then made memory grow with flows)."""
        self.streams.end_records(part, serials)
        if not self.single:
            return
        for serial in serials:
            kept = self.pending.pop((part, serial), None)
            if kept is not None:
                self.evidence[(part, serial)] = ev.extract(kept, self.counts)

    def snapshot(self) -> "PayloadCollector":
        """A copy that evidence.for_flows may consume while this one keeps collecting."""
        c = copy.copy(self)
        c.pending, c.counts = dict(self.pending), Counter(self.counts)
        return c

    def __call__(self, buf: np.ndarray, P: np.ndarray, part: int) -> None:
        kept = np.flatnonzero(P[:, KEEP])
        if not len(kept):
            return
        bits = P[kept, KEEP]
        if self.streams.tentative or (bits & (KEEP_STREAM | KEEP_HELLO)).any():
            self.streams(buf, P, part, kept)
        rows = kept[(bits & KEEP_EVIDENCE) != 0]
        if not len(rows):
            return
        self.counts["payload-packets-kept"] += len(rows)
        sel = P[rows]
        mem = memoryview(buf)
        l4 = sel[:, PROTO]
        sp, dp = sel[:, SPORT], sel[:, DPORT]
        named = np.where(_name_port(dp), dp, np.where(_name_port(sp), sp, 0)).tolist()
        done = ((sel[:, NTH] == KEEP_TCP[0] - 1) & (sel[:, DIR] == 0) & (l4 == 6) & (sel[:, FSYN] == 1)).tolist()
        for k, (f, dk, proto, seq, off, cap, ts) in enumerate(sel[:, [FLOW, DIR, PROTO, SEQ, POFF, PCAP, TS]].tolist()):
            key = (part, f)
            port = named[k]
            if port in DNS_PORTS:
                ev.add_dns(self.evidence.setdefault(key, ev.Evidence()), proto, ts, mem[off:off + cap].tobytes(),
                           self.counts, port)
                continue
            if port in DHCP_PORTS:
                ev.add_dhcp(self.evidence.setdefault(key, ev.Evidence()), mem[off:off + cap].tobytes(), self.counts)
                continue
            kept = self.pending.get(key)
            if kept is None:
                kept = self.pending[key] = ev.FlowBytes(proto)
            if not kept.add(dk, seq, ts, mem[off:off + (cap if proto == 6 else min(cap, KEEP_DATAGRAM_BYTES))].tobytes()):
                self.counts["payload-bytes-cut"] += 1  # the record's byte budget (evidence.KEEP_FLOW_BYTES)
            if done[k]:  # a TCP record from its SYN: its originator has said what it will say here
                self.evidence[key] = ev.extract(self.pending.pop(key), self.counts)
                self.decided.add(key)
