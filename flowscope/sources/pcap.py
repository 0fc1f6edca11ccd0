"""Classic libpcap files: both byte orders, micro- and nanosecond timestamps.

Record headers are walked in a compiled loop (`walk_pcap`) that decodes each frame into
the packet batch; Python only refills the buffer and hands out full batches.
"""
from __future__ import annotations

import struct
from typing import Callable, Iterator

import numpy as np
from numba import njit

from flowscope.decode.frame import decode_frame
from flowscope.decode.layout import STATUS, TS
from flowscope.errors import CaptureError
from flowscope.sources.stream import ByteStream

MAGICS = {  # magic as read little-endian -> (big_endian, ns_per_tick, record header bytes)
    0xA1B2C3D4: (False, 1000, 16),
    0xD4C3B2A1: (True, 1000, 16),
    0xA1B23C4D: (False, 1, 16),
    0x4D3CB2A1: (True, 1, 16),
    0xA1B2CD34: (False, 1000, 24),  # Kuznetzov's patched libpcap (extra record fields)
    0x34CDB2A1: (True, 1000, 24),
}
MAX_RECORD = 1 << 20   # larger captured lengths are corrupt (libpcap's own limit is 256 KiB)
NEED_MORE, FULL, BAD_RECORD = 0, 1, 2


@njit(cache=True, inline="always")
def rd32(b, o, big):
    if big:
        return (np.int64(b[o]) << 24) | (np.int64(b[o + 1]) << 16) | (np.int64(b[o + 2]) << 8) | np.int64(b[o + 3])
    return (np.int64(b[o + 3]) << 24) | (np.int64(b[o + 2]) << 16) | (np.int64(b[o + 1]) << 8) | np.int64(b[o])


@njit(cache=True, nogil=True)
def walk_pcap(b, pos, end, big, ns_per_tick, hdr_len, linktype, P, cap, stats):
    n = 0
    while n < cap:
        if pos + hdr_len > end:
            return pos, n, NEED_MORE
        incl = rd32(b, pos + 8, big)
        orig = rd32(b, pos + 12, big)
        if incl > MAX_RECORD:
            return pos, n, BAD_RECORD
        if pos + hdr_len + incl > end:
            return pos, n, NEED_MORE
        P[n, TS] = rd32(b, pos, big) * 1_000_000_000 + rd32(b, pos + 4, big) * ns_per_tick
        decode_frame(b, pos + hdr_len, incl, orig if orig > incl else incl, linktype, P, n, stats)
        stats[P[n, STATUS]] += 1
        n += 1
        pos += hdr_len + incl
    return pos, n, FULL


class PcapReader:
    format = "pcap"

    def __init__(self, path: str, stream: ByteStream, capture):
        self.path = path
        self.stream = stream
        self.capture = capture  # CaptureStats to fill
        s = stream
        s.fill(24)
        if s.end < 24:
            raise CaptureError(path, f"truncated pcap header ({s.end} of 24 bytes)")
        magic = struct.unpack_from("<I", s.buf, 0)[0]
        self.big, self.ns_per_tick, self.hdr_len = MAGICS[magic]
        order = ">" if self.big else "<"
        _vmaj, _vmin, _zone, _sig, self.snaplen, link = struct.unpack_from(order + "HHiIII", s.buf, 4)
        self.linktype = link & 0x0FFFFFFF  # upper bits: FCS length flags (pcap-linktype(7))
        capture.link_types.add(self.linktype)
        capture.format = "pcap-ns" if self.ns_per_tick == 1 else "pcap"
        s.start = 24

    def batches(self, P: np.ndarray, limit: int | None = None,
                on_batch: Callable[[int, int], None] | None = None) -> Iterator[tuple[np.ndarray, int]]:
        """Batches of decoded records. `limit`: stop before the first record that starts at
        or past this file offset (a chunk of the file, engine/chunks.py); `on_batch(end, n)`
        sees the file offset the buffer reaches and the records of each batch."""
        s, stats = self.stream, self.capture.stats
        while limit is None or s.offset + s.start < limit:
            cap = len(P)
            if limit is not None and s.offset + s.end > limit:
                before = records_before(s, limit, self.big, self.hdr_len)
                if before is not None:
                    cap = min(cap, before)
            pos, n, status = walk_pcap(s.buf, s.start, s.end, self.big, self.ns_per_tick,
                                       self.hdr_len, self.linktype, P, cap, stats)
            s.start = pos
            if n:
                if on_batch is not None:
                    on_batch(s.offset + s.end, n)
                yield s.buf, n
            if status == FULL:
                continue
            if status == BAD_RECORD:
                incl = struct.unpack_from(">I" if self.big else "<I", s.buf, pos + 8)[0]
                raise CaptureError(self.path, f"absurd record length {incl} bytes at offset {s.offset + pos}")
            if s.eof:
                s.end_of_input(self.path, "record")
                return
            need = self.hdr_len
            if s.end - s.start >= self.hdr_len:
                need += struct.unpack_from(">I" if self.big else "<I", s.buf, s.start + 8)[0]
            s.fill(need)


def records_before(s: ByteStream, limit: int, big: bool, hdr_len: int) -> int | None:
    """How many records in the buffer start before file offset `limit`; None if the walk
    cannot reach the limit within the buffer (then every record walk_pcap can parse there
    starts before it). Runs only on a chunk's last buffer: about a thousand headers."""
    order = ">I" if big else "<I"
    pos, n, stop = s.start, 0, limit - s.offset
    while pos < stop:
        if pos + hdr_len > s.end:
            return None
        incl = struct.unpack_from(order, s.buf, pos + 8)[0]
        if incl > MAX_RECORD:
            return None  # walk_pcap reports it
        n += 1
        pos += hdr_len + incl
    return n
