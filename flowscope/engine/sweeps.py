"""Which flows a one-pass read of a chunked file would have ended as idle.

A one-pass read expires idle flows every EXPIRE_EVERY_BATCHES batches (to keep memory
flat), and a flow expired that way ends `idle`, one still open at the end of the file
`eof`. Chunks sweep at other moments, so for the last flow of each key in a chunked file
the client decides again, as the one-pass read would: `idle` if, at its last sweep,
the latest timestamp seen was more than the flow's timeout + EXPIRE_SLACK_NS past the
flow's last packet (sweeps only look later in time, so the last one decides).

Where that sweep fell depends on the read's batches: a batch ends where a record does not
fit in the read buffer, or after batch_packets records. Buffers of a classic pcap end at
fixed file offsets (2 MiB, then every CHUNK_BYTES: stream.ByteStream moves a buffer's end
on by exactly CHUNK_BYTES at each refill), and chunks read through buffers that end at the
same offsets, so each chunk reports its records grouped by buffer end (`BufferRuns`) and
the client replays the batches of the whole file from those groups.
"""
from __future__ import annotations

import numpy as np

from flowscope.flows.merge import NO_SWEEP as NO_TS  # "the read never swept"
from flowscope.flows.table import EXPIRE_EVERY_BATCHES
from flowscope.sources.stream import CHUNK_BYTES

FIRST_BUFFER_END = 2 * CHUNK_BYTES  # open_capture fills once, the pcap header read once more


def buffer_end_after(offset: int) -> int:
    """End offset of the one-pass read's first buffer that ends after `offset`."""
    return max(FIRST_BUFFER_END, (offset // CHUNK_BYTES + 1) * CHUNK_BYTES)


class BufferRuns:
    """A chunk's records grouped by the end of the buffer they were read from: per group
    the count and the latest timestamp of a decoded packet; the timestamps themselves only
    where a batch may end inside the group (first and last group, groups longer than a
    batch)."""

    def __init__(self):
        self.ends: list[int] = []
        self.counts: list[int] = []
        self.max_ts: list[int] = []
        self.ts: list[list[np.ndarray]] = []
        self._batch = 0

    def add(self, buffer_end: int, ts: np.ndarray, ok: np.ndarray, batch_packets: int) -> None:
        ts = np.where(ok, ts, NO_TS)
        if not self.ends or self.ends[-1] != buffer_end:
            self._settle_last()
            self.ends.append(buffer_end)
            self.counts.append(0)
            self.max_ts.append(NO_TS)
            self.ts.append([])
        self._batch = batch_packets
        self.counts[-1] += len(ts)
        self.max_ts[-1] = max(self.max_ts[-1], int(ts.max()))
        self.ts[-1].append(ts)

    def _settle_last(self) -> None:
        """Drop the timestamps of a closed middle group that fits in one batch."""
        if len(self.ends) > 1 and self.counts[-1] <= self._batch:
            self.ts[-1] = []


def last_sweep_ns(runs: list[BufferRuns], batch_packets: int) -> int:
    """The latest decoded timestamp at the one-pass read's last sweep of a file read as
    these chunks (in order), or NO_TS if it never swept."""
    ends, counts, max_ts, ts = [], [], [], []
    for r in runs:  # a buffer read by two chunks is one group
        for k, end in enumerate(r.ends):
            if ends and ends[-1] == end:
                counts[-1] += r.counts[k]
                max_ts[-1] = max(max_ts[-1], r.max_ts[k])
                ts[-1] = ts[-1] + r.ts[k]
            else:
                ends.append(end)
                counts.append(r.counts[k])
                max_ts.append(r.max_ts[k])
                ts.append(list(r.ts[k]))
    batches = [-(-c // batch_packets) for c in counts]   # a full batch ends inside a long group
    total = sum(batches)
    if total < EXPIRE_EVERY_BATCHES:
        return NO_TS
    last = (total - EXPIRE_EVERY_BATCHES) // EXPIRE_EVERY_BATCHES * EXPIRE_EVERY_BATCHES + EXPIRE_EVERY_BATCHES - 1
    done = 0
    for g, n in enumerate(batches):
        if last < done + n:
            upto = min((last - done + 1) * batch_packets, counts[g])
            before = max(max_ts[:g], default=NO_TS)
            if upto == counts[g]:
                return max(before, max_ts[g])
            return max(before, int(np.concatenate(ts[g])[:upto].max()))
        done += n
    raise AssertionError("unreachable: the last sweep lies within the batches")
