"""The bidirectional flow table: a compiled open-addressing hash over flow rows.

One key for both directions (layout.py). The originator is the SYN sender for TCP (the
receiver of a SYN-ACK, or for a mid-stream start the side on a service port), else the
first sender. A flow ends when it has been idle longer than its timeout, or when a new
pure SYN arrives after it closed (port reuse); FIN/RST alone only mark it closed, so
the teardown's last ACKs stay in the flow. Mirror-port duplicates (same signature in the
same direction within the dedup window) are suppressed and counted.
"""
from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np
from numba import njit

from flowscope.decode import layout as pk
from flowscope.flows.layout import (
    ACK_TS, TCP_ACK, APP_UID, BYTES, CAPTURE, D, DSIG0, DSIG1, DTS0, DTS1, DUPS, END_EOF, END_FIN,
    END_IDLE, END_REASON, END_RST, TCP_FIN, FIRST, FIRST_ANY, FIRST_PURE_SYN, FRAME, HASH, K_AHI,
    K_ALO, K_BHI, K_BLO, K_PORTS, K_PROTO, ISN, LAST, LAST_ANY, ND, NF, NONE, NPAY, OPEN_AT_END,
    ORIG_IS_A, PART, PAYLOAD, PKTS, TCP_RST, SERIAL, STREAM, STREAM_RESYNC, STREAM_HELLO_PENDING,
    STREAM_CLOUD, STREAM_HOOK, STREAM_NONE, STREAM_WA, STREAM_WEB, TCP_SYN, SYN_TS, SYNACK_TS, TCPFLAGS, TO_OTHER,
    TO_TCP,
    TO_TCP_CLOSED, TO_UDP, USEFUL, WEB_WHATSAPP,
)

S_USED, S_FREE_TOP, S_SERIAL, S_MAXTS, S_MINTS = 0, 1, 2, 3, 4
# keep[]: payload packets handed to the dissectors per flow direction, and the window in
# which a record not starting with a SYN may continue the previous part's flow (-1: none)
KEEP_TCP0, KEEP_TCP1, KEEP_UDP0, KEEP_UDP1, KEEP_CONTINUATION_NS = 0, 1, 2, 3, 4
NEEDLE = np.frombuffer(WEB_WHATSAPP, dtype=np.uint8).copy()
UPDATE_DONE, UPDATE_GROW = 0, 1  # update()'s status
# A read sweeps idle flows out every EXPIRE_EVERY_BATCHES batches (flat memory); a flow
# counts as idle there when its timeout + EXPIRE_SLACK_NS has passed (timestamps may run
# backwards a little). The merge applies the same rule to flows that end in a chunk.
EXPIRE_EVERY_BATCHES = 64
EXPIRE_SLACK_NS = 60 * 1_000_000_000
_TS_FIELDS = (FIRST, LAST, SYN_TS, SYNACK_TS, ACK_TS, DTS0, DTS1, ISN)  # start as NONE


@njit(cache=True, inline="always")
def _mix(h, v):
    h ^= v
    h *= np.int64(-7046029254386353131)  # 0x9E3779B97F4A7C15
    return h ^ (h >> 29)


@njit(cache=True, inline="always")
def key_hash(proto, ahi, alo, bhi, blo, ports):
    h = _mix(np.int64(0x2545F4914F6CDD1D), proto)
    h = _mix(h, ahi)
    h = _mix(h, alo)
    h = _mix(h, bhi)
    h = _mix(h, blo)
    h = _mix(h, ports)
    return h & np.int64(0x7FFFFFFFFFFFFFFF)


@njit(cache=True, inline="always")
def _service_port(p):
    return p < 1024 or p == 5222 or p == 5223 or p == 5228 or p == 3478 or p == 8080 or p == 8443


@njit(cache=True, inline="always")
def _name_port(p):
    """DNS, mDNS, LLMNR and DHCP: every packet may carry names (dissect/collect.py)."""
    return p == 53 or p == 5353 or p == 5355 or p == 67 or p == 68


@njit(cache=True)
def is_closed(T, r):
    fo = T[r, D + TCPFLAGS]
    fr = T[r, D + ND + TCPFLAGS]
    return ((fo | fr) & TCP_RST) != 0 or ((fo & TCP_FIN) != 0 and (fr & TCP_FIN) != 0)


@njit(cache=True)
def timeout_of(T, r, timeouts):
    proto = T[r, K_PROTO] & 0xFF
    if proto == 6:
        return timeouts[TO_TCP_CLOSED] if is_closed(T, r) else timeouts[TO_TCP]
    if proto == 17:
        return timeouts[TO_UDP]
    return timeouts[TO_OTHER]


@njit(cache=True)
def end_reason_of(T, r, forced):
    if (T[r, D + TCPFLAGS] | T[r, D + ND + TCPFLAGS]) & TCP_RST:
        return END_RST
    if is_closed(T, r):
        return END_FIN
    return forced


@njit(cache=True)
def _find(T, index, proto, ahi, alo, bhi, blo, ports, h):
    """Return (index position, row or -1)."""
    m = len(index) - 1
    j = h & m
    while True:
        e = index[j]
        if e == 0:
            return j, -1
        r = e - 1
        if (T[r, HASH] == h and T[r, K_PROTO] == proto and T[r, K_ALO] == alo and T[r, K_BLO] == blo
                and T[r, K_PORTS] == ports and T[r, K_AHI] == ahi and T[r, K_BHI] == bhi):
            return j, r
        j = (j + 1) & m


@njit(cache=True)
def _index_remove(T, index, r):
    """Backward-shift deletion for linear probing (no tombstones)."""
    m = len(index) - 1
    j = T[r, HASH] & m
    while index[j] != r + 1:
        j = (j + 1) & m
    index[j] = 0
    k = (j + 1) & m
    while index[k] != 0:
        home = T[index[k] - 1, HASH] & m
        # move entry k to the hole j unless its home lies cyclically in (j, k]
        if (j <= k and (home <= j or home > k)) or (j > k and (home <= j and home > k)):
            index[j] = index[k]
            index[k] = 0
            j = k
        k = (k + 1) & m


@njit(cache=True)
def _init_row(T, r, P, i, proto, ahi, alo, bhi, blo, ports, h, src_is_a, S, part, capture):
    for f in range(NF):
        T[r, f] = 0
    T[r, K_PROTO] = proto
    T[r, K_AHI] = ahi
    T[r, K_ALO] = alo
    T[r, K_BHI] = bhi
    T[r, K_BLO] = blo
    T[r, K_PORTS] = ports
    T[r, HASH] = h
    for d in range(2):
        for f in _TS_FIELDS:
            T[r, D + d * ND + f] = NONE
    T[r, FIRST_ANY] = NONE
    T[r, LAST_ANY] = NONE
    T[r, APP_UID] = pk.NO_UID
    flags = P[i, pk.FLAGS]
    orig_is_src = True
    if (proto & 0xFF) == 6:
        if (flags & TCP_SYN) and (flags & TCP_ACK):
            orig_is_src = False
        elif not (flags & TCP_SYN):
            orig_is_src = not (_service_port(P[i, pk.SPORT]) and not _service_port(P[i, pk.DPORT]))
        T[r, FIRST_PURE_SYN] = 1 if (flags & (TCP_SYN | TCP_ACK)) == TCP_SYN else 0
    T[r, ORIG_IS_A] = src_is_a if orig_is_src else 1 - src_is_a
    T[r, SERIAL] = S[S_SERIAL]
    S[S_SERIAL] += 1
    T[r, PART] = part
    T[r, CAPTURE] = capture
    if (proto & 0xFF) == 6 and (flags & TCP_SYN) == 0:
        resp_port = P[i, pk.DPORT] if orig_is_src else P[i, pk.SPORT]
        if resp_port == 5222 or resp_port == 443 or resp_port == 80:  # layout.RESYNC_PORTS
            T[r, STREAM] = STREAM_RESYNC


@njit(cache=True)
def _emit(T, r, out, n_out, forced):
    for f in range(NF):
        out[n_out, f] = T[r, f]
    out[n_out, END_REASON] = end_reason_of(T, r, forced)
    out[n_out, OPEN_AT_END] = 1 if forced == END_EOF else 0
    return n_out + 1


@njit(cache=True, inline="always")
def _min_ts(a, b):
    return b if (a == NONE or b < a) else a


@njit(cache=True)
def _account(T, r, P, i, d, dedup_ns):
    """Add packet i to row r in direction d; return False if it is a duplicate."""
    base = D + d * ND
    ts = P[i, pk.TS]
    if dedup_ns > 0:
        sig = P[i, pk.DSIG]
        if ((T[r, base + DTS0] != NONE and T[r, base + DSIG0] == sig and ts - T[r, base + DTS0] <= dedup_ns)
                or (T[r, base + DTS1] != NONE and T[r, base + DSIG1] == sig and ts - T[r, base + DTS1] <= dedup_ns)):
            T[r, DUPS] += 1
            return False
        T[r, base + DSIG1] = T[r, base + DSIG0]
        T[r, base + DTS1] = T[r, base + DTS0]
        T[r, base + DSIG0] = sig
        T[r, base + DTS0] = ts
    if P[i, pk.PLEN] > 0:
        P[i, pk.NTH] = T[r, base + NPAY]
        T[r, base + NPAY] += 1
    T[r, base + PKTS] += 1
    T[r, base + BYTES] += P[i, pk.IPLEN]
    T[r, base + PAYLOAD] += P[i, pk.PLEN]
    T[r, base + FRAME] += P[i, pk.WIRELEN]
    T[r, base + FIRST] = _min_ts(T[r, base + FIRST], ts)
    if ts > T[r, base + LAST]:
        T[r, base + LAST] = ts
    T[r, FIRST_ANY] = _min_ts(T[r, FIRST_ANY], ts)
    if ts > T[r, LAST_ANY]:
        T[r, LAST_ANY] = ts
    if (T[r, K_PROTO] & 0xFF) == 6:
        flags = P[i, pk.FLAGS]
        T[r, base + TCPFLAGS] |= flags
        if (flags & TCP_SYN) and T[r, base + ISN] == NONE:
            T[r, base + ISN] = (P[i, pk.SEQ] + 1) & 0xFFFFFFFF
        if (flags & (TCP_SYN | TCP_ACK)) == TCP_SYN:
            T[r, base + SYN_TS] = _min_ts(T[r, base + SYN_TS], ts)
        elif (flags & (TCP_SYN | TCP_ACK)) == (TCP_SYN | TCP_ACK):
            T[r, base + SYNACK_TS] = _min_ts(T[r, base + SYNACK_TS], ts)
        elif (flags & (TCP_SYN | TCP_FIN | TCP_RST | TCP_ACK)) == TCP_ACK and P[i, pk.PLEN] == 0:
            T[r, base + ACK_TS] = _min_ts(T[r, base + ACK_TS], ts)
    if T[r, APP_UID] == pk.NO_UID and P[i, pk.UID] != pk.NO_UID:
        T[r, APP_UID] = P[i, pk.UID]
    return True


@njit(cache=True)
def _keep(T, r, P, i, d, S, keep):
    """Should the dissectors see packet i (accounted in row r, direction d)?"""
    if P[i, pk.PCAP] <= 0:
        return 0
    if _name_port(P[i, pk.SPORT]) or _name_port(P[i, pk.DPORT]):
        return 1
    nth = P[i, pk.NTH]
    if nth == 0 and d == 0:
        cont = (keep[KEEP_CONTINUATION_NS] >= 0 and T[r, FIRST_PURE_SYN] == 0
                and P[i, pk.TS] - S[S_MINTS] <= keep[KEEP_CONTINUATION_NS])
        T[r, USEFUL] = 1 if (P[i, pk.HINT] or cont) else 0
    tcp = (T[r, K_PROTO] & 0xFF) == 6
    limit = keep[(KEEP_TCP0 if tcp else KEEP_UDP0) + d]
    return pk.KEEP_EVIDENCE if (T[r, USEFUL] and 0 <= nth < limit) else 0


@njit(cache=True)
def _contains(buf, off, n, needle):
    m = len(needle)
    for k in range(off, off + n - m + 1):
        if buf[k] == needle[0]:
            j = 1
            while j < m and buf[k + j] == needle[j]:
                j += 1
            if j == m:
                return True
    return False


@njit(cache=True)
def _contains_any(buf, off, n, names, ends, first):
    """The index of the first of the names (concatenated in `names`, ending at `ends`) that
    buf[off:off+n] contains, or -1. One pass; a byte is compared further only where a name
    starts with it."""
    for k in range(off, off + n):
        if not first[buf[k]]:
            continue
        start = 0
        for e in range(len(ends)):
            end = ends[e]
            m = end - start
            if k + m <= off + n:
                j = 0
                while j < m and buf[k + j] == names[start + j]:
                    j += 1
                if j == m:
                    return e
            start = end
    return -1


@njit(cache=True)
def _named(buf, off, cap, names, ends, first, cloud):
    """The STREAM_* value a ClientHello segment's names give (STREAM_NONE: none of them)."""
    if _contains(buf, off, cap, NEEDLE):
        return STREAM_WEB
    e = _contains_any(buf, off, cap, names, ends, first)
    if e < 0:
        return STREAM_NONE
    return STREAM_CLOUD if cloud[e] else STREAM_WEB


@njit(cache=True)
def _from_hook_source(P, i, hooks):
    """Is packet i's source in one of the webhook-source ranges? `hooks` rows: (hi, lo start,
    hi, lo end) as unsigned order mapped onto int64 (sign bit flipped), sorted; few rows."""
    hi = P[i, pk.SRC_HI] ^ np.int64(-9223372036854775808)
    lo = P[i, pk.SRC_LO] ^ np.int64(-9223372036854775808)
    for r in range(len(hooks)):
        if (hi > hooks[r, 0] or (hi == hooks[r, 0] and lo >= hooks[r, 1])) and \
                (hi < hooks[r, 2] or (hi == hooks[r, 2] and lo <= hooks[r, 3])):
            return True
    return False


@njit(cache=True)
def _stream(T, r, P, i, d, buf, biz):
    """KEEP bits for the frame walk: every payload packet of a WhatsApp chat or Web record,
    and of a Business Platform record (walked like WhatsApp Web: TLS records).

    Decided at the record's first originator payload: the WhatsApp prologue (decode's
    HINT), or a TLS ClientHello containing web.whatsapp.com or one of the Cloud API and
    solution-provider names (searched in its first segment and, if the hello continues, in
    the next one), or a ClientHello from a webhook-source network (an inbound webhook). A
    record that began without a SYN on a chat port (STREAM_RESYNC) is walked from its first
    payload."""
    st = T[r, STREAM]
    if st == STREAM_RESYNC:
        if d == 0 and P[i, pk.NTH] == 0 and P[i, pk.HINT] == pk.HINT_WA:
            T[r, STREAM] = STREAM_WA  # the SYN was missed, the prologue was not
            return pk.KEEP_STREAM
        return pk.KEEP_STREAM | pk.KEEP_RESYNC
    nth = P[i, pk.NTH]
    names, ends, first, hooks, cloud = biz
    if d == 0 and nth == 0 and st == STREAM_NONE:
        hint = P[i, pk.HINT]
        off, cap = P[i, pk.POFF], P[i, pk.PCAP]
        if hint == pk.HINT_WA:
            st = STREAM_WA
        elif hint == pk.HINT_TLS and len(buf) > 0 and cap > 0:
            if len(hooks) > 0 and _from_hook_source(P, i, hooks):
                st = STREAM_HOOK
            else:
                st = _named(buf, off, cap, names, ends, first, cloud)
                if st == STREAM_NONE and cap >= 5 and ((np.int64(buf[off + 3]) << 8) | buf[off + 4]) + 5 > cap:
                    T[r, STREAM] = STREAM_HELLO_PENDING
                    return pk.KEEP_HELLO
        T[r, STREAM] = st
    elif d == 0 and nth == 1 and st == STREAM_HELLO_PENDING:
        off, cap = P[i, pk.POFF], P[i, pk.PCAP]
        st = _named(buf, off, cap, names, ends, first, cloud) if len(buf) > 0 and cap > 0 else STREAM_NONE
        T[r, STREAM] = st
    if st == STREAM_WEB:
        return pk.KEEP_STREAM | pk.KEEP_WEB
    if st == STREAM_CLOUD:
        return pk.KEEP_STREAM | pk.KEEP_WEB | pk.KEEP_CLOUD
    if st == STREAM_HOOK:
        return pk.KEEP_STREAM | pk.KEEP_WEB | pk.KEEP_HOOK
    return pk.KEEP_STREAM if st > 0 else 0


@njit(cache=True, nogil=True)
def update(T, index, free, S, P, start, n, timeouts, dedup_ns, out, part, capture, keep, buf, biz):
    """Account packets P[start:n]; finished flows are copied to `out`.

    `buf` is the read buffer P's offsets point into (empty: no stream detection); `biz` the
    Business Platform names and webhook ranges whose records are walked (business_arrays).

    Returns (next packet, flows written to out, status); status UPDATE_GROW asks the caller
    to enlarge the table and call again from `next packet`.
    """
    n_out = 0
    for i in range(start, n):
        P[i, pk.FLOW] = -1
        P[i, pk.DUP] = 0
        P[i, pk.NTH] = -1
        P[i, pk.KEEP] = 0
        if P[i, pk.STATUS] != pk.OK:
            continue
        ts = P[i, pk.TS]
        if ts > S[S_MAXTS]:
            S[S_MAXTS] = ts
        if ts < S[S_MINTS]:
            S[S_MINTS] = ts
        proto = (P[i, pk.IPVER] << 8) | P[i, pk.PROTO]
        shi, slo, dhi, dlo = P[i, pk.SRC_HI], P[i, pk.SRC_LO], P[i, pk.DST_HI], P[i, pk.DST_LO]
        sp, dp = P[i, pk.SPORT], P[i, pk.DPORT]
        src_is_a = 1
        if shi > dhi or (shi == dhi and (slo > dlo or (slo == dlo and sp > dp))):
            src_is_a = 0
        if src_is_a:
            ahi, alo, bhi, blo, ports = shi, slo, dhi, dlo, (sp << 16) | dp
        else:
            ahi, alo, bhi, blo, ports = dhi, dlo, shi, slo, (dp << 16) | sp
        h = key_hash(proto, ahi, alo, bhi, blo, ports)
        j, r = _find(T, index, proto, ahi, alo, bhi, blo, ports, h)
        if r < 0:
            if S[S_FREE_TOP] == 0:
                return i, n_out, UPDATE_GROW
            S[S_FREE_TOP] -= 1
            r = free[S[S_FREE_TOP]]
            S[S_USED] += 1
            index[j] = r + 1
            _init_row(T, r, P, i, proto, ahi, alo, bhi, blo, ports, h, src_is_a, S, part, capture)
        else:
            flags = P[i, pk.FLAGS]
            pure_syn = (proto & 0xFF) == 6 and (flags & (TCP_SYN | TCP_ACK)) == TCP_SYN
            if ts - T[r, LAST_ANY] > timeout_of(T, r, timeouts) or (pure_syn and is_closed(T, r)):
                n_out = _emit(T, r, out, n_out, END_IDLE)
                _init_row(T, r, P, i, proto, ahi, alo, bhi, blo, ports, h, src_is_a, S, part, capture)
        d = 0 if src_is_a == T[r, ORIG_IS_A] else 1
        P[i, pk.DIR] = d
        P[i, pk.FSYN] = T[r, FIRST_PURE_SYN]
        P[i, pk.FLOW] = T[r, SERIAL]
        if not _account(T, r, P, i, d, dedup_ns):
            P[i, pk.DUP] = 1
        elif keep[KEEP_TCP0] >= 0:
            k = _keep(T, r, P, i, d, S, keep)
            if (proto & 0xFF) == 6 and P[i, pk.PLEN] > 0:
                k |= _stream(T, r, P, i, d, buf, biz)
            P[i, pk.KEEP] = k
    return n, n_out, UPDATE_DONE


@njit(cache=True, nogil=True)
def sweep(T, index, free, S, now, timeouts, slack, out, force):
    """Emit flows idle for longer than timeout + slack at time `now`, or all if force."""
    n_out = 0
    for r in range(len(T)):
        if T[r, K_PROTO] == 0:
            continue
        if force or now - T[r, LAST_ANY] > timeout_of(T, r, timeouts) + slack:
            n_out = _emit(T, r, out, n_out, END_EOF if force else END_IDLE)
            _index_remove(T, index, r)
            T[r, K_PROTO] = 0
            free[S[S_FREE_TOP]] = r
            S[S_FREE_TOP] += 1
            S[S_USED] -= 1
    return n_out


@njit(cache=True, nogil=True)
def reindex(T, index):
    m = len(index) - 1
    for r in range(len(T)):
        if T[r, K_PROTO] == 0:
            continue
        j = T[r, HASH] & m
        while index[j] != 0:
            j = (j + 1) & m
        index[j] = r + 1


_NO_BUF = np.zeros(0, dtype=np.uint8)
_SIGN = 1 << 63


def business_arrays(names=(), networks=(), cloud_names=()) -> tuple:
    """The compiled walk's view of the Business Platform: `names` (Cloud API and provider
    host names, searched in ClientHellos; those in `cloud_names` are walked from platform
    hosts only) and `networks` (ipaddress networks webhooks come from; IPv4 as
    ::ffff:a.b.c.d like the packet batch) as (names, ends, first-byte table, ranges, cloud)."""
    raw = [n.encode("ascii") for n in names]
    blob = np.frombuffer(b"".join(raw), dtype=np.uint8).copy() if raw else np.zeros(0, dtype=np.uint8)
    ends = np.cumsum([len(r) for r in raw]).astype(np.int64) if raw else np.zeros(0, dtype=np.int64)
    first = np.zeros(256, dtype=np.bool_)
    for r in raw:
        first[r[0]] = True
    rows = []
    for net in networks:
        lo_addr, hi_addr = int(net.network_address), int(net.broadcast_address)
        if net.version == 4:
            lo_addr, hi_addr = lo_addr | (0xFFFF << 32), hi_addr | (0xFFFF << 32)
        rows.append([_signed((lo_addr >> 64) ^ _SIGN), _signed((lo_addr & (2**64 - 1)) ^ _SIGN),
                     _signed((hi_addr >> 64) ^ _SIGN), _signed((hi_addr & (2**64 - 1)) ^ _SIGN)])
    ranges = np.array(sorted(rows), dtype=np.int64).reshape(-1, 4)
    cloud = np.array([n in cloud_names for n in names], dtype=np.bool_)
    return blob, ends, first, ranges, cloud


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= _SIGN else v


NO_BUSINESS = business_arrays()


class BusinessWalks(NamedTuple):
    """The Business Platform records a run walks: host names and webhook networks (CIDR
    text). A tuple, so that parts read elsewhere compare equal as configuration (engine/combine.py)."""
    names: tuple = ()
    networks: tuple = ()
    cloud_names: tuple = ()  # the subset of names walked from platform hosts only

    @property
    def arrays(self) -> tuple:
        return _business_cached(self.names, self.networks, self.cloud_names)


@lru_cache(maxsize=4)
def _business_cached(names: tuple, networks: tuple, cloud_names: tuple) -> tuple:
    import ipaddress
    return business_arrays(names, [ipaddress.ip_network(n) for n in networks], cloud_names)


class FlowTable:
    """Python owner of the compiled table's arrays; grows them when full."""

    def __init__(self, timeouts_ns: np.ndarray, dedup_ns: int, rows: int = 1 << 14, keep=None,
                 max_flows: int = 1 << 20, source: str = "input", business: tuple | None = None):
        """keep: (tcp orig, tcp resp, udp orig, udp resp, continuation ns) or None (no dissection);
        max_flows: the memory guard, concurrent flows beyond which `add` raises LimitError
        naming `source`."""
        self.max_flows = max_flows
        self.source = source
        self.business = business if business is not None else NO_BUSINESS
        rows = max(1, min(rows, max_flows))
        self.timeouts = timeouts_ns
        self.dedup_ns = dedup_ns
        self.keep = np.array(keep if keep is not None else (-1, -1, -1, -1, -1), dtype=np.int64)
        self.T = np.zeros((rows, NF), dtype=np.int64)
        self.index = np.zeros(2 * (1 << (rows - 1).bit_length()), dtype=np.int64)  # a power of two
        self.free = np.arange(rows - 1, -1, -1, dtype=np.int64)
        self.S = np.zeros(5, dtype=np.int64)
        self.S[S_MINTS] = np.iinfo(np.int64).max
        self.S[S_FREE_TOP] = rows
        self.S[S_MAXTS] = np.iinfo(np.int64).min
        self._out = np.zeros((0, NF), dtype=np.int64)
        self.finished: list[np.ndarray] = []

    def add(self, P: np.ndarray, n: int, part: int, capture: int, buf: np.ndarray | None = None) -> None:
        """Account P[:n]; `buf` (the read buffer) lets the table spot WhatsApp Web hellos."""
        if len(self._out) < n:
            self._out = np.zeros((max(n, 1024), NF), dtype=np.int64)
        if buf is None:
            buf = _NO_BUF
        start = 0
        while True:
            start, n_out, status = update(self.T, self.index, self.free, self.S, P, start, n,
                                          self.timeouts, self.dedup_ns, self._out, part, capture, self.keep,
                                          buf, self.business)
            if n_out:
                self.finished.append(self._out[:n_out].copy())
            if status == UPDATE_DONE:
                return
            self._grow()

    def expire(self, slack_ns: int) -> None:
        """Emit flows that can no longer receive packets (keeps memory flat)."""
        self._sweep(self.S[S_MAXTS], slack_ns, False)

    def flush(self) -> None:
        """End of a part: emit every flow still open, marked OPEN_AT_END."""
        self._sweep(0, 0, True)

    def _sweep(self, now: int, slack: int, force: bool) -> None:
        out = np.zeros((int(self.S[S_USED]), NF), dtype=np.int64)
        n_out = sweep(self.T, self.index, self.free, self.S, now, self.timeouts, slack, out, force)
        if n_out:
            self.finished.append(out[:n_out])

    def _grow(self) -> None:
        """Double the rows (up to max_flows); a full table at max_flows ends this file's read
        (a flood of one-packet flows must not take the machine's memory)."""
        rows = len(self.T)
        new = min(2 * rows, self.max_flows)
        if new <= rows:
            from flowscope.errors import LimitError
            raise LimitError(self.source, f"more than {self.max_flows:,} concurrent flows (a flood of "
                             "flows?): reading stopped here, the flows so far are kept (--max-flows)")
        T = np.zeros((new, NF), dtype=np.int64)
        T[:rows] = self.T
        self.T = T
        self.index = np.zeros(2 * (1 << (new - 1).bit_length()), dtype=np.int64)  # a power of two
        reindex(self.T, self.index)
        self.free = np.concatenate([np.arange(new - 1, rows - 1, -1, dtype=np.int64),
                                    np.zeros(rows, dtype=np.int64)])
        self.S[S_FREE_TOP] = new - rows

    def records(self) -> np.ndarray:
        """The emitted records as one array; each piece is freed once copied (np.concatenate
        would hold every piece and the whole at once: twice the records at the peak)."""
        out = np.empty((sum(len(f) for f in self.finished), NF), dtype=np.int64)
        pos = 0
        for k, piece in enumerate(self.finished):
            out[pos:pos + len(piece)] = piece
            pos += len(piece)
            self.finished[k] = None
        self.finished = [out]
        return out
