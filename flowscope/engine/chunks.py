"""Large classic pcaps as byte ranges: planned on the client, read exactly by tasks.

A chunk owns the records that *start* in its range [start, limit): it reads on past its
limit to finish its last record and stops before the first record starting at or after
it. Where that record starts (`stop`) is exactly where the next chunk must begin.

A task cannot know that place without walking every record before it, so a chunk that
does not begin the file guesses it: the first offset from which a chain of record
headers looks right (sub-second field in range, lengths sane, seconds near the file's
first packet). The client then checks the guess against the previous chunk's `stop`,
which is exact because that chunk began at an exact place, and re-reads a chunk from the
exact place where they differ. So the result never rests on the guess; a bad guess (a
pcap inside a payload, say) costs one re-read.

A chunk also reads through buffers that end where the one-pass read's end, and reports
its records by buffer (sweeps.py), so the client can tell which flows the one-pass read
would have expired as idle.

Compressed files and pcapng are read whole (one part a file): a compressed stream cannot
be entered in the middle, and a pcapng chunk would need the interface blocks and the
byte order of its section, and SPB timestamps from the packet before.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass

import numpy as np

from flowscope.decode.layout import OK, STATUS, TS
from flowscope.engine.sweeps import BufferRuns, buffer_end_after
from flowscope.errors import CaptureError
from flowscope.sources import open_capture
from flowscope.sources.pcap import MAGICS, MAX_RECORD, PcapReader

PCAP_HEADER_BYTES = 24
SYNC_WINDOW_BYTES = 4 << 20     # > MAX_RECORD: the first record start after any offset is in it
SYNC_CHAIN = 8                  # headers in a row that must look right
SYNC_SECONDS = 366 * 86400      # a record's seconds lie within a year of the first packet's
END = 1 << 62                   # "to the end of the file"


@dataclass(frozen=True)
class PartSpec:
    """One task's input: a whole file (start 0, limit END) or a byte range of a pcap."""
    path: str
    file: int                 # index of the input file in the run
    start: int = 0            # offset of the first byte (0: the whole file, any format)
    limit: int = END          # records starting at or past this offset belong to the next chunk
    exact: bool = True        # `start` is known to be a record boundary

    @property
    def whole(self) -> bool:
        return self.start == 0

    def exactly_at(self, start: int) -> "PartSpec":
        return PartSpec(self.path, self.file, start, self.limit, True)


def plan(paths: list[str], chunk_bytes: int | None) -> list[PartSpec]:
    """Parts in input order: uncompressed classic pcaps larger than `chunk_bytes` in ranges of
    about that size, everything else (and anything the client cannot read) whole."""
    parts: list[PartSpec] = []
    for k, path in enumerate(paths):
        size = _pcap_size(path)
        if not chunk_bytes or size is None or size - PCAP_HEADER_BYTES <= chunk_bytes:
            parts.append(PartSpec(path, k))
            continue
        n = -(-(size - PCAP_HEADER_BYTES) // chunk_bytes)
        step = -(-(size - PCAP_HEADER_BYTES) // n)
        starts = [PCAP_HEADER_BYTES + j * step for j in range(n)]
        for j, start in enumerate(starts):
            limit = starts[j + 1] if j + 1 < n else END
            parts.append(PartSpec(path, k, start, limit, exact=(j == 0)))
    return parts


def _pcap_size(path: str) -> int | None:
    """File size if `path` is an uncompressed classic pcap, else None."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
            size = os.fstat(f.fileno()).st_size
    except OSError:
        return None
    if len(head) < 4 or int.from_bytes(head, "little") not in MAGICS:
        return None
    return size


class PcapChunk:
    """A reader (as open_capture returns) over the records that start in one chunk."""
    format = "pcap"

    def __init__(self, spec: PartSpec, capture):
        reader = open_capture(spec.path, capture)  # validates the file, reads its header
        if not isinstance(reader, PcapReader) or capture.compression:
            reader.stream.close()
            raise CaptureError(spec.path, "changed while being read: no longer an uncompressed pcap")
        self.reader, self.stream, self.limit = reader, reader.stream, spec.limit
        self.format = reader.format
        raw = self.stream._raw
        self.start = spec.start if spec.exact else _sync(raw, spec.start, reader)
        self.stop: int | None = None   # where the next chunk begins, once read to the limit
        self.runs = BufferRuns()
        self._first_fill(raw, self.start)

    def _first_fill(self, raw, start: int) -> None:
        """Read from `start` to the end of the one-pass read's buffer there: ByteStream
        then moves each buffer end on by CHUNK_BYTES, so this chunk's buffers end where
        the one-pass read's do and its reads stop at the same records (sweeps.py)."""
        s = self.stream
        s.start = s.end = 0
        s.offset, s.eof = start, False
        raw.seek(start)
        target = buffer_end_after(start) - start
        view = memoryview(s.buf)
        while s.end < target:
            got = raw.readinto(view[s.end:target])
            if not got:
                s.eof = True
                break
            s.end += got

    def batches(self, P: np.ndarray):
        """PcapReader.batches, stopping before the first record at or past the limit."""
        def note(end: int, n: int) -> None:
            self.runs.add(end, P[:n, TS], P[:n, STATUS] == OK, len(P))
        yield from self.reader.batches(P, limit=self.limit, on_batch=note)
        self.stop = self.stream.offset + self.stream.start


def _sync(raw, start: int, reader: PcapReader) -> int:
    """The first offset >= start from which SYNC_CHAIN record headers in a row look right
    (or run to the exact end of the file); past the window if none does (the client then
    finds it differs from the previous chunk's stop and re-reads this chunk)."""
    fd = raw.fileno()
    size = os.fstat(fd).st_size
    first = os.pread(fd, 16, PCAP_HEADER_BYTES)
    window = os.pread(fd, SYNC_WINDOW_BYTES, start)
    if len(first) < 16:
        return size
    order = ">I" if reader.big else "<I"
    check = _Plausible(struct.unpack_from(order, first, 0)[0],
                       1_000_000 if reader.ns_per_tick == 1000 else 1_000_000_000, order)
    # Any record is at most hdr + MAX_RECORD bytes long, so the true first start is this near.
    reach = min(len(window) - 16, reader.hdr_len + MAX_RECORD)
    for k in check.candidates(window, reach).tolist():
        if _chain(window, k, check, reader.hdr_len, size - start):
            return start + k
    return start + len(window)


class _Plausible:
    """Does a record header look right? Sub-second field below one second, lengths sane,
    seconds within a year of the file's first packet: random bytes pass ~1 in 10^10."""

    def __init__(self, first_sec: int, frac_max: int, order: str):
        self.first_sec, self.frac_max, self.order = first_sec, frac_max, order

    def at(self, b: bytes, k: int) -> bool:
        sec, frac, incl, orig = struct.unpack_from(self.order[0] + "IIII", b, k)
        return (abs(sec - self.first_sec) <= SYNC_SECONDS and frac < self.frac_max
                and incl <= MAX_RECORD and incl <= orig)

    def candidates(self, b: bytes, reach: int) -> np.ndarray:
        """Offsets in [0, reach) whose header looks right, all at once (numpy)."""
        if reach <= 0:
            return np.zeros(0, dtype=np.int64)
        u = np.frombuffer(b, dtype=np.uint8, count=reach + 16).astype(np.int64)
        big = self.order[0] == ">"

        def u32(off):
            x = [u[off + j:off + j + reach] for j in range(4)]
            return ((x[0] << 24) | (x[1] << 16) | (x[2] << 8) | x[3]) if big else \
                (x[0] | (x[1] << 8) | (x[2] << 16) | (x[3] << 24))
        incl = u32(8)
        ok = (np.abs(u32(0) - self.first_sec) <= SYNC_SECONDS) & (u32(4) < self.frac_max) \
            & (incl <= MAX_RECORD) & (incl <= u32(12))
        return np.flatnonzero(ok)


def _chain(window: bytes, k: int, check: _Plausible, hdr_len: int, to_eof: int) -> bool:
    """Do SYNC_CHAIN headers in a row from k look right (fewer if they end the file exactly)?"""
    for seen in range(SYNC_CHAIN):
        if k == to_eof:
            return seen > 0        # ran exactly to the end of the file
        if k + 16 > len(window):   # past the window: believe 3 in a row, never a jump past the end
            return seen >= 3 and len(window) < to_eof
        if not check.at(window, k):
            return False
        k += hdr_len + struct.unpack_from(check.order, window, k + 8)[0]
    return True
