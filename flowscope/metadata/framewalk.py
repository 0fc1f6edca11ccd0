"""The frame walk of one TCP direction, streamed: segments in, frames out, bounded state.

A direction is walked in one of three ways:
- from the stream start: the client's WhatsApp prologue ("ED"/"WA"), then 3-byte headers;
  the server's bytes from its first one; WhatsApp Web's TLS records from the ClientHello;
- resynchronised: a connection already open when the capture began (or after a lost
  segment) has no anchor, so candidate offsets are chained until a chain is too long and
  too well aligned with segment ends to be chance (LOCK_BITS), then walked as above;
- not at all: nothing locked within SEARCH_GIVEUP_BYTES (not a framed stream).

Reassembly keeps every byte once, from the packet that first carried it in capture order;
out-of-order segments wait (at most PENDING_LIMIT bytes) for the bytes before them. A hole
(a snaplen cut, a segment the capture lost) is counted as a gap; a hole inside a frame
whose header was read keeps the walk in step, any other puts it back to searching. Every
header is checked after a lock, and an impossible one starts a new search.

Only the bytes a search or a pending segment needs are copied; frames are (bytes, ts of
the first header byte, ts of the last byte). Positions are sequence numbers unwrapped to
64 bits, so that a walk of a later part can be compared with the walk it continues
(stitch).
"""
from __future__ import annotations

import copy

from flowscope.dissect.whatsapp import parse_prologue
from flowscope.metadata import framesearch
from flowscope.metadata.framesearch import Search

WA_HEADER, TLS_HEADER = 3, 5
NOISE, LEGACY, TLS = "noise", "legacy", "tls"
UNIT = {NOISE: "wa-frame", LEGACY: "wa-frame", TLS: "tls-record"}
# Noise transport frames carry a 16-byte AES-GCM tag and a flag byte: never fewer than 17
# bytes (whatsapp-business-and-frames.md §3.1). Pre-Noise WA 1.x frames: 4-bit flag + 20 bits.
NOISE_MIN, NOISE_MAX = 17, (1 << 24) - 1
LEGACY_MASK = 0x0FFFFF
LEGACY_FLAGS = (0x0, 0x4, 0x8, 0xC)  # yowsup: 0x8 encrypted, 0x4 compressed
RESYNC_MAX = 1 << 20          # after a resync lock, a longer "frame" means the lock was wrong
TLS_RECORD_MAX = framesearch.TLS_RECORD_MAX
TLS_TYPES = range(20, 25)     # change_cipher_spec, alert, handshake, application_data, heartbeat
# A search (framesearch.py) locks at 34 bits: with SEARCH_GIVEUP_BYTES searched, a random
# stream locks with p < 2^18 * 2^-34 = 2^-16; a real chat stream locks within a few frames.
SEARCH_WINDOW = 64 << 10      # bytes a search looks at (older ones slide out)
SEARCH_GIVEUP_BYTES = 256 << 10  # then the direction is not walked further
PENDING_LIMIT = 256 << 10     # out-of-order bytes held before the hole before them is a gap
HEAD_LIMIT = 256 << 10        # segments a continuation keeps until its own walk is in step

PROLOGUE, LOCKED, SEARCH, OFF = "prologue", "locked", "search", "off"


def _signed32(x: int) -> int:
    return ((x + 2**31) % 2**32) - 2**31


class Direction:
    """One direction's walk; `feed` segments in capture order, `finish` at the flow's end."""

    def __init__(self, mode: str, form: str | None = None, base: int | None = None, keep_head: bool = False,
                 head_limit: int = HEAD_LIMIT):
        self.mode, self.form = mode, form
        self.sync = "prologue" if mode in (PROLOGUE, LOCKED) else None
        self.next = base            # unwrapped position of the next in-order byte
        self.pending: dict[int, tuple] = {}
        self.pending_bytes = 0
        self.frame_end = base       # where the next header starts (LOCKED)
        self.hdr = bytearray()
        self.hdr_ts = 0
        self.cur = None             # (bytes, ts_first) of the frame whose header was read
        self.buf = bytearray()      # PROLOGUE or SEARCH bytes from self.buf_at
        self.buf_at = base
        self.spans: list[tuple[int, int]] = []  # (position, ts) where each buffered piece starts
        self.search = Search() if mode == SEARCH else None
        self.searched = 0
        self.version = None         # the client's "WA" version (PROLOGUE)
        self.frames: list[tuple[int, int, int]] = []
        self.gaps = self.desync = 0
        self.head: list | None = [] if keep_head else None
        self.head_bytes, self.head_limit = 0, head_limit
        self.snap = None            # (state signature, frames, gaps, desync) when the own walk fell in step

    # -- reassembly ---------------------------------------------------------------------

    def feed(self, seq: int, ts: int, plen: int, data) -> None:
        if self.head is not None and self.snap is None:
            self._keep_head(seq, ts, plen, data)
        if self.mode == OFF:
            return
        if self.next is None:
            self.next = self.frame_end = self.buf_at = seq
        pos = self.next + _signed32(seq - (self.next & 0xFFFFFFFF))
        if pos + plen <= self.next:
            return  # a retransmission of bytes placed already
        if pos > self.next:
            if pos not in self.pending or len(self.pending[pos][2]) < len(data):
                self.pending_bytes += len(data) - (len(self.pending[pos][2]) if pos in self.pending else 0)
                self.pending[pos] = (ts, plen, bytes(data))
            if self.pending_bytes > PENDING_LIMIT:
                self._hole(min(self.pending))
            return
        self._place(pos, ts, plen, data)
        self._drain()
        self._check_step()

    def _place(self, pos: int, ts: int, plen: int, data) -> None:
        skip = self.next - pos
        if skip < len(data):
            self._consume(ts, memoryview(data)[skip:], pos + len(data))
        if len(data) < plen:  # cut by the snaplen: those bytes will not come
            self._hole(pos + plen)

    def _drain(self) -> None:
        while self.pending and self.mode != OFF:
            pos = min(self.pending)
            if pos > self.next:
                return
            ts, plen, data = self.pending.pop(pos)
            self.pending_bytes -= len(data)
            if pos + plen > self.next:
                self._place(pos, ts, plen, data)

    def _hole(self, to: int) -> None:
        """Bytes up to `to` will never be seen: count a gap, keep step if the hole lies in
        the body of a frame whose header was read, else search again after it."""
        if to <= self.next:
            return
        self.gaps += 1
        if self.mode == LOCKED and self.cur is not None and not self.hdr and to <= self.frame_end:
            self.next = to
        elif self.mode == LOCKED and self.cur is None and not self.hdr and to < self.frame_end:
            self.next = to
        else:
            self.cur, self.hdr = None, bytearray()
            self._search_from(to)
        self._drain()

    def _search_from(self, pos: int) -> None:
        if self.mode != OFF:
            self.mode = SEARCH
        self.next = self.buf_at = self.frame_end = pos
        self.buf, self.spans, self.search = bytearray(), [], Search()

    # -- bytes in order -----------------------------------------------------------------

    def _consume(self, ts: int, chunk, end: int) -> None:
        """`chunk` starts at self.next; `end` is where its segment's captured bytes end."""
        if self.mode == LOCKED:
            self._walk(ts, chunk)
        elif self.mode == SEARCH:
            self._buffer(ts, chunk)
            self._try_lock()
        elif self.mode == PROLOGUE:
            self._buffer(ts, chunk)
            self._prologue()

    def _buffer(self, ts: int, chunk) -> None:
        self.spans.append((self.next, ts))
        self.buf += chunk
        self.next += len(chunk)

    def _walk(self, ts: int, chunk) -> None:
        n, k = len(chunk), 0
        while k < n:
            pos = self.next
            if pos < self.frame_end:
                step = min(self.frame_end - pos, n - k)
                k += step
                self.next += step
                if self.next == self.frame_end and self.cur is not None:
                    self.frames.append((self.cur[0], self.cur[1], ts))
                    self.cur = None
                continue
            if not self.hdr:
                self.hdr_ts = ts
            need = (TLS_HEADER if self.form == TLS else WA_HEADER) - len(self.hdr)
            take = min(need, n - k)
            self.hdr += chunk[k:k + take]
            k += take
            self.next += take
            if take < need:
                return
            size = self._frame_size(bytes(self.hdr))
            if size is None:
                self.desync += 1
                rest = bytes(self.hdr) + bytes(chunk[k:])
                start, hdr_ts = self.frame_end, self.hdr_ts
                self.hdr = bytearray()
                self._search_from(start)
                self.spans.append((start, hdr_ts))
                self.buf += rest
                self.next = start + len(rest)
                self._try_lock()
                return
            self.frame_end = self.next + size
            self.cur = (size, self.hdr_ts)
            self.hdr = bytearray()
            if size == 0:
                self.frames.append((0, self.hdr_ts, ts))
                self.cur = None

    def _frame_size(self, h: bytes) -> int | None:
        if self.form == TLS:
            n = (h[3] << 8) | h[4]
            return n if h[0] in TLS_TYPES and h[1] == 3 and n <= TLS_RECORD_MAX else None
        if self.form == LEGACY:
            n = int.from_bytes(h, "big") & LEGACY_MASK
            return n if (h[0] >> 4) in LEGACY_FLAGS and n >= 1 else None
        n = int.from_bytes(h, "big")
        top = NOISE_MAX if self.sync == "prologue" else RESYNC_MAX
        return n if NOISE_MIN <= n <= top else None

    def _prologue(self) -> None:
        status, pro = parse_prologue(bytes(self.buf))
        if status in ("need-more", "cut"):
            return
        data, at = bytes(self.buf), self.buf_at
        ts = self.spans[-1][1]
        self.buf, self.spans = bytearray(), []
        if status != "ok":
            self.sync = None
            self._search_from(at)
            self.next = at
            self._buffer(ts, data)
            self._try_lock()
            return
        self.version = pro.version
        self.form = LEGACY if pro.version[0] <= 1 else NOISE
        self.mode = LOCKED
        self.frame_end = self.next = at + pro.header_bytes
        if len(data) > pro.header_bytes:
            self._walk(ts, memoryview(data)[pro.header_bytes:])

    # -- search -------------------------------------------------------------------------

    def _try_lock(self) -> None:
        """The buffer grew by a segment's bytes (it ends where that segment ended)."""
        got = self.search.extend(self.buf)
        if got is None:
            if len(self.buf) > SEARCH_WINDOW:  # the oldest half slides out of the search
                self._slide(len(self.buf) - SEARCH_WINDOW // 2)
            if self.searched + len(self.buf) > SEARCH_GIVEUP_BYTES:
                self.mode = OFF
                self.buf, self.spans, self.search, self.pending = bytearray(), [], None, {}
            return
        offset, kind, legacy = got
        form = TLS if kind == framesearch.TLS else (LEGACY if legacy else NOISE)
        data, at, spans = bytes(self.buf), self.buf_at, self.spans
        self.buf, self.spans, self.search = bytearray(), [], None
        self.searched = 0
        self.mode, self.form = LOCKED, form
        if self.sync is None:
            self.sync = "resync"
        self.frame_end = self.next = at + offset
        self.cur, self.hdr = None, bytearray()
        for k, (p, ts) in enumerate(spans):  # walk the buffered bytes with their own times
            stop = spans[k + 1][0] if k + 1 < len(spans) else at + len(data)
            lo = max(p, at + offset)
            if lo < stop and self.mode == LOCKED:
                self._walk(ts, memoryview(data)[lo - at:stop - at])
            elif self.mode != LOCKED:  # an impossible header on the way: that search took the rest
                break

    def _slide(self, drop: int) -> None:
        self.searched += drop
        self.buf_at += drop
        del self.buf[:drop]
        while len(self.spans) > 1 and self.spans[1][0] <= self.buf_at:
            self.spans.pop(0)
        if self.spans:
            self.spans[0] = (self.buf_at, self.spans[0][1])
        self.search.slide(drop)

    # -- continuation of an earlier part (stitch) ----------------------------------------

    def _keep_head(self, seq, ts, plen, data) -> None:
        self.head.append((seq, ts, plen, bytes(data)))
        self.head_bytes += len(data)
        if self.head_bytes > self.head_limit:
            self.head = None  # never in step: a continuation is stitched only as far as this

    def _check_step(self) -> None:
        if self.head is not None and self.snap is None and self.in_step():
            self.snap = (self.signature(), len(self.frames), self.gaps, self.desync)
            self.head_done = len(self.head)

    def in_step(self) -> bool:
        return self.mode == LOCKED and not self.pending and not self.hdr

    def signature(self) -> tuple:
        return (self.next & 0xFFFFFFFF, self.frame_end - self.next, self.form, self.cur is not None)

    def finish(self) -> None:
        """The flow ended: out-of-order bytes after a hole are walked after it."""
        while self.pending and self.mode != OFF:
            self._hole(min(self.pending))
        self.pending, self.pending_bytes = {}, 0
        self.buf, self.spans, self.search = bytearray(), [], None  # the head stays: the record may continue a flow

    def clone(self) -> "Direction":
        c = copy.copy(self)
        c.pending, c.frames, c.hdr, c.buf = dict(self.pending), list(self.frames), bytearray(self.hdr), bytearray(self.buf)
        c.spans, c.search = list(self.spans), copy.deepcopy(self.search)
        c.head = None
        return c


def stitch(prev: Direction, later: Direction, notes) -> Direction:
    """`prev`'s walk continued by a later part's record of the same flow direction: the
    later part's first segments are replayed on `prev`; once the replay is in the state the
    later part's own walk reached when it fell in step, the rest of its frames are the ones
    a single pass gives. Returns a new Direction (neither argument changes)."""
    out = prev.clone()
    if later.head is None and later.snap is None:
        notes["walk-continuation-not-kept"] += 1
        return _adopt(out, later, 0, 0, 0, gap=True)
    upto = later.head_done if later.snap is not None else len(later.head)
    for seg in later.head[:upto]:
        out.feed(*seg)
    if later.snap is None:
        return out  # the whole part was replayed
    sig, nframes, gaps, desync = later.snap
    while out.pending and out.mode != OFF and not out.in_step():
        # bytes missing between the parts: a single pass waits for them (PENDING_LIMIT) and
        # then searches after the hole, as the later part's own walk did from its start
        out._hole(min(out.pending))
    same = out.in_step() and out.signature() == sig
    if not same:
        notes["walk-stitch-mismatch"] += 1
    return _adopt(out, later, nframes, gaps, desync, gap=not same)


def _adopt(out: Direction, later: Direction, nframes: int, gaps: int, desync: int, gap: bool) -> Direction:
    frames, sync = out.frames + later.frames[nframes:], out.sync or later.sync
    total_gaps, total_desync = out.gaps + later.gaps - gaps + int(gap), out.desync + later.desync - desync
    out = later.clone()
    out.frames, out.sync, out.gaps, out.desync = frames, sync, total_gaps, total_desync
    return out
