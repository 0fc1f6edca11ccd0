"""Walked streams: frames found as the segments of a record arrive, not bytes kept.

The flow table marks (KEEP bits) every payload packet of three kinds of TCP record:
- WhatsApp chat from its prologue (KEEP_STREAM), WhatsApp Web from a ClientHello naming
  web.whatsapp.com (KEEP_STREAM | KEEP_WEB), and a ClientHello whose name is still to come
  (KEEP_HELLO: walked tentatively until the next segment decides);
- connections already open when the part began, on ports 5222/443/80 (KEEP_STREAM |
  KEEP_RESYNC): walked only where the responder is a WhatsApp or Meta address of the
  catalog (or on 5222), searching for frame boundaries (metadata/framewalk.py);
- Business Platform records (issue 13), walked like WhatsApp Web (KEEP_WEB): a ClientHello
  naming a solution provider; one from a webhook-source network (KEEP_HOOK: its responder is
  a platform host from then on); one naming a Cloud API host (KEEP_CLOUD), walked only from a
  platform host (given, or one that received a webhook earlier in the part): the same name
  from any other host is another Graph API product, whose walk would be dropped anyway.

Each record gets a RecordWalk: two framewalk.Direction objects, fed here in capture order.
Their state is bounded (pending and search bytes, a continuation's first segments), so a
walked flow costs memory by frames, not bytes, and payload never leaves memory. A record
open at the end of its part keeps its state: the merge stitches it to the record that
continues it in the next part, wherever that part was read.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from flowscope.decode.layout import (
    ACK, DIR, DPORT, DST_HI, DST_LO, FLAGS, FLOW, KEEP, KEEP_CLOUD, KEEP_HELLO, KEEP_HOOK, KEEP_RESYNC, KEEP_STREAM,
    KEEP_WEB, NTH, PCAP, PLEN, POFF, SEQ, SPORT, SRC_HI, SRC_LO, TS,
)
from flowscope.metadata.framewalk import HEAD_LIMIT, LEGACY, LOCKED, NOISE, OFF, PROLOGUE, SEARCH, TLS, Direction

_COLS = [FLOW, DIR, SEQ, ACK, TS, PLEN, PCAP, POFF, NTH, KEEP, FLAGS, SRC_HI, SRC_LO, DST_HI, DST_LO]
ACK_FLAG = 0x10
CHAT_PORT = 5222
# An open connection to a server that is not a candidate is not walked; with several parts
# it keeps this much of its first bytes, in case it continues a walked flow (a chat server
# missing from the catalog) of the part before.
HEAD_LIMIT_OTHER = 16 << 10
WA, WEB, RESYNC = "wa", "web", "resync"


class PlatformAddresses:
    """Business Platform hosts as the walk meets them: the networks given (--platform-host)
    and the responders of webhook records seen so far (packet-batch halves, IPv4 mapped)."""

    def __init__(self, networks=()):
        import ipaddress
        self.networks = tuple(ipaddress.ip_network(n) for n in networks)
        self.receivers: set[tuple[int, int]] = set()

    def __contains__(self, halves: tuple[int, int]) -> bool:
        if halves in self.receivers:
            return True
        if not self.networks:
            return False
        import ipaddress
        value = ((halves[0] & (2**64 - 1)) << 64) | (halves[1] & (2**64 - 1))
        addr = ipaddress.IPv6Address(value)
        addr = addr.ipv4_mapped or addr
        return any(addr.version == n.version and addr in n for n in self.networks)

    def merge(self, other: "PlatformAddresses") -> None:
        self.receivers |= other.receivers


class RecordWalk:
    """The walk of one flow record: (originator, responder) directions."""
    __slots__ = ("kind", "dirs")

    def __init__(self, kind: str, keep_head: bool = False, walk: bool = True):
        """`walk` False: only the first segments are kept, in case the record continues a
        walked flow of the part before (an open connection to another server)."""
        self.kind = kind
        if kind == WA:
            self.dirs = (Direction(PROLOGUE), Direction(LOCKED, NOISE))
        elif kind == WEB:
            self.dirs = (Direction(LOCKED, TLS), Direction(LOCKED, TLS))
        else:
            mode, limit = (SEARCH, HEAD_LIMIT) if walk else (OFF, HEAD_LIMIT_OTHER)
            self.dirs = tuple(Direction(mode, keep_head=keep_head, head_limit=limit) for _ in range(2))

    def feed(self, d: int, seq: int, ack: int | None, ts: int, plen: int, data) -> None:
        server = self.dirs[1]
        if d == 0 and ack is not None and self.kind != RESYNC and server.next is None and not server.frames:
            server.next = server.frame_end = ack  # the client's first bytes acknowledge the server's ISN
        self.dirs[d].feed(seq, ts, plen, data)
        client = self.dirs[0]
        if d == 0 and self.kind == WA and client.version is not None and client.version[0] <= 1:
            server.form = LEGACY

    def finish(self) -> None:
        for d in self.dirs:
            d.finish()

    @property
    def empty(self) -> bool:
        return all(d.sync is None and not d.frames for d in self.dirs)


class StreamWalks:
    """RecordWalks per (part, flow serial). `candidates(hi, lo)` says which responder
    addresses (128-bit halves, IPv4-mapped) may be WhatsApp chat endpoints (None: all);
    `keep_head`: records may continue an earlier part (several parts, or live)."""

    def __init__(self, candidates=None, keep_head: bool = False):
        self.walks: dict[tuple[int, int], RecordWalk] = {}
        self.tentative: dict[tuple[int, int], RecordWalk] = {}  # ClientHellos awaiting their name
        self.ignored: set[tuple[int, int]] = set()              # open connections to other servers
        self.candidates = candidates
        self.keep_head = keep_head
        self.counts: Counter = Counter()
        self.packets = 0
        self.platform = PlatformAddresses()  # pipeline.new_collector sets the given networks

    def __call__(self, buf: np.ndarray, P: np.ndarray, part: int, kept: np.ndarray) -> None:
        bits = P[kept, KEEP]
        rows = kept[(bits & (KEEP_STREAM | KEEP_HELLO)) != 0]
        if self.tentative:
            self._decide_hellos(P, kept, part)
        if not len(rows):
            return
        self._screen(P, rows, part)
        mem = memoryview(buf)
        for f, d, seq, ack, ts, plen, cap, off, nth, keep, flags, *ends in P[rows][:, _COLS].tolist():
            key = (part, f)
            walk = self.walks.get(key)
            if walk is None:
                if key in self.ignored:
                    continue
                walk = self._start(key, keep, ends)
                if walk is None:
                    continue
            ack = ack if d == 0 and nth == 0 and flags & ACK_FLAG else None
            walk.feed(d, seq, ack, ts, plen, mem[off:off + max(cap, 0)])
            self.packets += 1

    def _start(self, key, keep: int, ends) -> RecordWalk | None:
        """A new record's walk, or None (added to `ignored`): a Cloud API hello not from a
        platform host. `ends`: the packet's (src hi, lo, dst hi, lo); the first packet of a
        Business Platform record is its originator's hello."""
        if keep & KEEP_HELLO:
            walk = self.tentative[key] = RecordWalk(WEB)
            return walk
        if keep & KEEP_HOOK:
            self.platform.receivers.add((ends[2], ends[3]))
        elif keep & KEEP_CLOUD and (ends[0], ends[1]) not in self.platform:
            self.tentative.pop(key, None)
            self.ignored.add(key)
            self.counts["walk-skipped-cloud-not-platform"] += 1
            return None
        got = self.tentative.pop(key, None)
        if got is not None and keep & KEEP_WEB:
            self.walks[key] = got
            return got
        kind = RESYNC if keep & KEEP_RESYNC else WEB if keep & KEEP_WEB else WA
        walk = self.walks[key] = RecordWalk(kind, keep_head=self.keep_head and kind == RESYNC)
        return walk

    def _decide_hellos(self, P, kept, part) -> None:
        """A hello's next originator segment was judged: not WhatsApp Web, drop its walk."""
        rows = P[kept]
        judged = rows[(rows[:, NTH] >= 1) & (rows[:, DIR] == 0) & ((rows[:, KEEP] & KEEP_STREAM) == 0), FLOW]
        for f in np.unique(judged).tolist():
            self.tentative.pop((part, f), None)

    def _screen(self, P, rows, part) -> None:
        """Open connections (KEEP_RESYNC) are walked only towards candidate servers."""
        if self.candidates is None:
            return
        sel = P[rows]
        res = sel[(sel[:, KEEP] & KEEP_RESYNC) != 0]
        if not len(res):
            return
        flows, first = np.unique(res[:, FLOW], return_index=True)
        new = [k for k, f in enumerate(flows.tolist()) if (part, f) not in self.walks and (part, f) not in self.ignored]
        if not new:
            return
        s = res[first[new]]
        up = s[:, DIR] == 0
        hi = np.where(up, s[:, DST_HI], s[:, SRC_HI])
        lo = np.where(up, s[:, DST_LO], s[:, SRC_LO])
        port = np.where(up, s[:, DPORT], s[:, SPORT])
        ok = (port == CHAT_PORT) | self.candidates(hi, lo)
        for f, good in zip(s[:, FLOW].tolist(), ok.tolist()):
            if good:
                continue
            if self.keep_head:
                self.walks[(part, f)] = RecordWalk(RESYNC, keep_head=True, walk=False)
            else:
                self.ignored.add((part, f))

    def end_records(self, part: int, serials) -> None:
        """Records of `part` that ended (the flow table emitted them): their walks are
        finished now, as close_part would at the end of the part, so that the search state
        of connections that never locked is freed while the part is still read."""
        for store in (self.walks, self.tentative):
            for serial in serials:
                walk = store.get((part, serial))
                if walk is not None:
                    walk.finish()
                    if walk.empty:
                        del store[(part, serial)]

    def close_part(self, part: int, open_serials) -> None:
        """End of a part: records that ended are finished (their bounded buffers freed);
        those open at the end (`open_serials`) keep their state for the next part."""
        still = set(open_serials)
        for store in (self.walks, self.tentative):
            for key in [k for k in store if k[0] == part]:
                if key[1] in still:
                    continue
                walk = store[key]
                walk.finish()
                if walk.empty:
                    del store[key]
        self.ignored = {k for k in self.ignored if k[0] != part}

    def merge(self, other: "StreamWalks") -> None:
        """Add the walks of a part read elsewhere (keys carry the part index)."""
        for name in ("walks", "tentative"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine.keys() & theirs.keys():
                raise ValueError(f"StreamWalks.{name}: parts share keys")
            mine.update(theirs)
        self.counts.update(other.counts)
        self.packets += other.packets
        self.platform.merge(other.platform)

    def get(self, key) -> RecordWalk | None:
        return self.walks.get(key) or self.tentative.get(key)


__all__ = ["RecordWalk", "StreamWalks", "WA", "WEB", "RESYNC", "NOISE", "LEGACY", "TLS"]
