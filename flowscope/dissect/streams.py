"""The TCP segments of walked streams: every payload packet of WhatsApp chat and Web flows.

The flow table marks them (KEEP_STREAM); this store copies their bytes out of the read
buffer into one bytes object per batch, with their columns as one numpy array (no Python
object per packet is kept while reading), and hands them out per flow record and
direction at the end, in capture order. Bytes stay in memory only: the frame walk reads
the 3-byte frame headers (or TLS record headers) and nothing is ever written.
"""
from __future__ import annotations

import numpy as np

from flowscope.decode.layout import DIR, FLOW, KEEP, KEEP_HELLO, KEEP_STREAM, NTH, PCAP, PLEN, POFF, SEQ, TS

_COLS = [FLOW, DIR, SEQ, TS, PLEN, PCAP, POFF, NTH]


def _gather(buf: np.ndarray, offsets: list, lengths: list) -> tuple[bytes, list]:
    """The captured payloads concatenated (one copy), and where each starts in the result."""
    mv = memoryview(buf)
    starts, pos = [], 0
    for n in lengths:
        starts.append(pos)
        pos += n
    return b"".join([mv[o:o + n] for o, n in zip(offsets, lengths)]), starts


class StreamStore:
    """Segments per flow record (part, serial) and direction, in capture order."""

    def __init__(self, only: set | None = None):
        self.chunks: list[tuple] = []            # (part, columns array, blob, starts)
        self.hello: dict[tuple, tuple] = {}      # ClientHello first segments awaiting a decision
        self.extra: dict[tuple, list] = {}       # decided hello segments, placed before the rest
        self.only = only                         # keep only these records (a second reading)
        self.packets = 0

    def __call__(self, buf: np.ndarray, P: np.ndarray, part: int, kept: np.ndarray | None = None) -> None:
        """Take the batch's stream packets. `kept`: the rows with any KEEP bit, if the
        caller already has them (one scan of the column a batch, not three)."""
        if kept is None:
            kept = np.flatnonzero(P[:, KEEP])
        if not len(kept):
            return
        bits = P[kept, KEEP]
        for i in kept[(bits & KEEP_HELLO) != 0].tolist():
            f, _d, seq, ts, plen, cap, off, _n = P[i, _COLS].tolist()
            self.hello[(part, f)] = (seq, ts, plen, bytes(buf[off:off + max(cap, 0)]))
        rows = kept[(bits & KEEP_STREAM) != 0]
        if len(rows):
            self._take(buf, P[rows][:, _COLS], part)
        if self.hello:  # a hello's next segment has been judged: if not Web, drop the first
            later = P[kept][:, _COLS]
            for f in np.unique(later[(later[:, 7] >= 1) & (later[:, 1] == 0), 0]).tolist():
                self.hello.pop((part, f), None)

    def merge(self, other: "StreamStore") -> None:
        """Add the store of a part read elsewhere (engine/combine.py folds parts in order);
        keys carry the part index, so two parts never share one."""
        for name in ("hello", "extra"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine.keys() & theirs.keys():
                raise ValueError(f"StreamStore.{name}: parts share keys")
            mine.update(theirs)
        self.chunks.extend(other.chunks)
        self.packets += other.packets

    def _take(self, buf: np.ndarray, cols: np.ndarray, part: int) -> None:
        if self.only is not None:
            cols = cols[np.array([(part, f) in self.only for f in cols[:, 0].tolist()], dtype=bool)]
        if self.hello:
            for f in np.unique(cols[(cols[:, 1] == 0) & (cols[:, 7] == 1), 0]).tolist():
                got = self.hello.pop((part, f), None)
                if got is not None:
                    self.extra[(part, f)] = [got]
        if len(cols):
            blob, starts = _gather(buf, cols[:, 6].tolist(), np.maximum(cols[:, 5], 0).tolist())
            self.chunks.append((part, cols[:, :6].copy(), blob, starts))
            self.packets += len(cols)

    def segments(self) -> dict[tuple, tuple[list, list]]:
        """(part, serial) -> per direction [(seq, ts_ns, payload bytes on the wire, captured
        bytes)] in capture order (a segment cut by the snaplen holds fewer bytes than it says).
        The captured bytes are memoryviews into the stored chunks: no copy."""
        out: dict[tuple, tuple[list, list]] = {}
        for key, segs in self.extra.items():
            out.setdefault(key, ([], []))[0].extend(segs)
        for part, cols, blob, starts in self.chunks:
            mv = memoryview(blob)
            for (f, d, seq, ts, plen, cap), s in zip(cols.tolist(), starts):
                out.setdefault((part, f), ([], []))[d].append((seq, ts, plen, mv[s:s + max(cap, 0)]))
        return out

    def merge(self, other: "StreamStore") -> None:
        self.chunks += other.chunks
        self.extra.update(other.extra)
        self.packets += other.packets
