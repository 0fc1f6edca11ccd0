"""Keep payload only where it pays: a batch consumer that copies the evidence-bearing bytes.

Selected per batch with one vectorised mask: the first few payload packets of each flow
direction (TLS/QUIC ClientHello, the WhatsApp prologue, STUN, HTTP request heads) and every
DNS packet. Nothing else leaves the read buffer, and nothing is ever written to disk:
the bytes live in memory until the flow's evidence is extracted (evidence.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from flowscope.decode.layout import DIR, DPORT, DUP, FLOW, NTH, PCAP, POFF, PROTO, SEQ, SPORT, TS

# Payload packets kept per flow direction (originator, responder). TCP: the client's first
# segments hold a ClientHello split over records and segments, the WhatsApp prologue or an
# HTTP request head; UDP: QUIC Initials and STUN requests, STUN responses (mapped addresses).
KEEP_TCP = (8, 0)
KEEP_UDP = (4, 2)
STREAM_BYTES = 16 << 10    # per TCP direction: enough for any ClientHello
DNS_PORT = 53


@dataclass
class FlowBytes:
    """What one partial flow record kept: TCP segments or datagrams per direction."""
    segments: tuple = field(default_factory=lambda: ([], []))   # (seq, bytes) per direction
    datagrams: tuple = field(default_factory=lambda: ([], []))  # (ts, bytes) per direction
    stream_bytes: list = field(default_factory=lambda: [0, 0])


class PayloadCollector:
    """Batch consumer for pipeline.read_part: (buffer, P[:n], part) -> kept bytes."""

    def __init__(self):
        self.flows: dict[tuple[int, int], FlowBytes] = {}

    def __call__(self, buf: np.ndarray, P: np.ndarray, part: int) -> None:
        nth, proto, d = P[:, NTH], P[:, PROTO], P[:, DIR]
        limit = np.where(proto == 6, np.where(d == 0, KEEP_TCP[0], KEEP_TCP[1]),
                         np.where(d == 0, KEEP_UDP[0], KEEP_UDP[1]))
        dns = (P[:, SPORT] == DNS_PORT) | (P[:, DPORT] == DNS_PORT)
        keep = (P[:, PCAP] > 0) & (P[:, DUP] == 0) & (P[:, FLOW] >= 0) & (((nth >= 0) & (nth < limit)) | dns)
        rows = np.flatnonzero(keep)
        if not len(rows):
            return
        for flow, d, l4, seq, off, cap, ts in P[rows][:, [FLOW, DIR, PROTO, SEQ, POFF, PCAP, TS]].tolist():
            kept = self.flows.get((part, flow))
            if kept is None:
                kept = self.flows[(part, flow)] = FlowBytes()
            if l4 == 6:
                if kept.stream_bytes[d] < STREAM_BYTES:
                    kept.segments[d].append((seq, bytes(buf[off:off + cap])))
                    kept.stream_bytes[d] += cap
            else:
                kept.datagrams[d].append((ts, bytes(buf[off:off + cap])))
