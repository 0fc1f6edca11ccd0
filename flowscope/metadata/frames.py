"""The whole-stream reference walk: reassemble a TCP direction first, then walk its frames
(WhatsApp 3-byte length headers, or TLS record headers for WhatsApp Web). The analysis
walks streams as they arrive (framewalk.py); the tests hold that walk to this plain one.

Reassembly takes every byte once, from the packet that first carried it in capture order
(a retransmission repeats bytes already placed; an overlap adds only what is new;
out-of-order segments fall into place by sequence number). The walk runs over the
contiguous bytes from the stream start and stops at the first byte that was never
captured: frames after a hole are not guessed, the stop is reported as a gap.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass

from flowscope.dissect.whatsapp import parse_prologue

WA_HEADER_BYTES = 3
# Before the Noise protocol (prologue "WA" 1.x, 2015 and earlier) the 3-byte header was a
# 4-bit flag (0x8: encrypted) + a 20-bit length (yowsup's stanza regulator); since "WA" 2.x
# the whole 24 bits are the length (whatsmeow socket/framesocket.go).
LEGACY_MAJOR_MAX = 1
LEGACY_LENGTH_MASK = 0x0FFFFF
TLS_HEADER_BYTES = 5
TLS_CONTENT_TYPES = range(20, 25)  # change_cipher_spec, alert, handshake, application_data, heartbeat


@dataclass
class Stream:
    """One direction's bytes from the stream start up to the first hole."""
    data: bytes
    starts: list[int]         # sorted starts of the pieces the bytes came from
    ts_ns: list[int]          # capture time of the packet that carried each piece
    known_end: int            # end of every byte the capture knows of (captured or not)

    def ts_at(self, offset: int) -> int:
        return self.ts_ns[bisect.bisect_right(self.starts, offset) - 1]

    @property
    def holed(self) -> bool:
        """Bytes are missing after the contiguous part (a capture gap or a snaplen cut)."""
        return self.known_end > len(self.data)


class _Cover:
    """Disjoint sorted byte ranges taken so far; `take` returns the new parts of a range."""

    def __init__(self):
        self.starts: list[int] = []
        self.ends: list[int] = []

    def take(self, a: int, b: int) -> list[tuple[int, int]]:
        s, e = self.starts, self.ends
        if not s or a >= e[-1]:  # the common case: in order, past everything so far
            if s and a == e[-1]:
                e[-1] = b
            else:
                s.append(a)
                e.append(b)
            return [(a, b)]
        new, pos = [], a
        for j in range(max(bisect.bisect_right(s, a) - 1, 0), len(s)):
            if s[j] >= b:
                break
            if e[j] <= pos:
                continue
            if s[j] > pos:
                new.append((pos, s[j]))
            pos = max(pos, e[j])
        if pos < b:
            new.append((pos, b))
        lo, hi = bisect.bisect_left(e, a), bisect.bisect_right(s, b)
        if lo < hi:
            a, b = min(a, s[lo]), max(b, e[hi - 1])
        s[lo:hi], e[lo:hi] = [a], [b]
        return new


def _signed32(x: int) -> int:
    return ((x + 2**31) % 2**32) - 2**31


def reassemble(segments: list[tuple], isn: int | None = None) -> Stream:
    """Segments (seq, ts_ns, payload bytes on the wire, captured bytes) in capture order.

    `isn` is the sequence number of the first stream byte (SYN + 1); without it the stream
    starts at the lowest sequence number captured. Sequence numbers wrap at 2^32: each
    segment is placed relative to the highest byte seen so far."""
    if not segments:
        return Stream(b"", [0], [0], 0)
    ref = segments[0][0] if isn is None else isn
    placed, top = [], 0
    for seq, ts, plen, data in segments:
        off = top + _signed32(seq - ref - top)
        placed.append((off, ts, plen, data))
        top = max(top, off + plen)
    shift = 0 if isn is not None else min(p[0] for p in placed)
    cover, pieces, known_end = _Cover(), [], 0
    for off, ts, plen, data in placed:
        off -= shift
        a, b = max(off, 0), off + len(data)
        known_end = max(known_end, off + plen)
        if b <= a:
            continue
        for x, y in cover.take(a, b):
            pieces.append((x, ts, data[x - off:y - off]))
    pieces.sort(key=lambda p: p[0])
    out, starts, times, pos = [], [], [], 0
    for x, ts, chunk in pieces:
        if x != pos:
            break  # a hole: nothing beyond it is placed
        out.append(chunk)
        starts.append(x)
        times.append(ts)
        pos += len(chunk)
    return Stream(b"".join(out), starts or [0], times or [0], known_end)


@dataclass
class Walk:
    """Frames of one direction: (first header byte offset, body bytes, last byte offset)."""
    frames: list[tuple[int, int, int]]
    gap: bool       # stopped at bytes the capture does not hold
    desync: bool    # a header that cannot be one (TLS walk only)


def client_version(stream: Stream) -> tuple[int, int] | None:
    """The "WA" version bytes of the client's prologue, None if it does not start with one."""
    status, pro = parse_prologue(stream.data)
    return pro.version if status == "ok" else None


def walk_wa(stream: Stream, client: bool, version: tuple[int, int] | None) -> Walk | None:
    """WhatsApp frames: 3-byte big-endian body length + body. The client's stream starts
    with the prologue ("ED" routing header, "WA" + version), which is not a frame; None if
    the client stream does not start with it. `version` is the client's (None: unknown)."""
    data, pos = stream.data, 0
    if client:
        status, pro = parse_prologue(data)
        if status == "no":
            return None
        if status != "ok":  # cut short: by a hole, or by the end of the capture
            return Walk([], stream.holed, False)
        pos = pro.header_bytes
    mask = LEGACY_LENGTH_MASK if version is not None and version[0] <= LEGACY_MAJOR_MAX else 0xFFFFFF
    frames = []
    while pos + WA_HEADER_BYTES <= len(data):
        n = int.from_bytes(data[pos:pos + 3], "big") & mask
        end = pos + WA_HEADER_BYTES + n
        if end > len(data):
            break
        frames.append((pos, n, end - 1))
        pos = end
    return Walk(frames, stream.holed, False)


def walk_tls(stream: Stream) -> Walk:
    """TLS records: type, version 3.x, 2-byte length + body; the length stands in for a
    WhatsApp frame (WhatsApp Web sends one WebSocket message per frame)."""
    data, pos, frames = stream.data, 0, []
    while pos + TLS_HEADER_BYTES <= len(data):
        if data[pos] not in TLS_CONTENT_TYPES or data[pos + 1] != 3:
            return Walk(frames, False, True)
        n = int.from_bytes(data[pos + 3:pos + 5], "big")
        end = pos + TLS_HEADER_BYTES + n
        if end > len(data):
            break
        frames.append((pos, n, end - 1))
        pos = end
    return Walk(frames, stream.holed, False)
