"""Decode one captured frame: link layer -> IP (with tunnels) -> transport.

Compiled with numba and called once per packet by the readers' walk loops, so that a
packet never becomes a Python object. Everything it learns goes into one row of the
packet batch (see layout.py); undecodable packets get a reason, never an exception.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from flowscope.decode.layout import (
    ACK, BAD_IP, BAD_L4, BAD_LINKTYPE, DPORT, DSIG, DST_HI, DST_LO, FLAGS, FRAG, FRAGMENT,
    IPLEN, IPVER, NO_UID, NON_IP, OK, PCAP, PLEN, POFF, PROTO, SEQ, SPORT, SRC_HI, SRC_LO,
    ST_FRAGMENTS, ST_TRAILERS, ST_TRUNCATED, STATUS, TRAILER, TRUNC, TRUNC_IP, TRUNC_L4,
    TRUNC_LINK, UID, CAPLEN, WIRELEN, IP_TOO_LONG, HINT, HINT_OTHER, HINT_TLS, HINT_WA, QUIC_VERSION_NUMBERS,
)

V4_MAPPED = np.int64(0xFFFF00000000)  # ::ffff:0:0/96 in the low half
PCAPDROID_MAGIC = 0x01072021
TRAILER_LEN = 32
MAX_TUNNEL_DEPTH = 3
# IPv6 extension headers we step over (RFC 8200 §4, AH RFC 4302, HIP, shim6)
_EXT_HOP, _EXT_ROUTING, _EXT_FRAG, _EXT_AH, _EXT_DEST, _EXT_MOBILITY = 0, 43, 44, 51, 60, 135


@njit(cache=True, inline="always")
def be16(b, o):
    return (np.int64(b[o]) << 8) | np.int64(b[o + 1])


@njit(cache=True, inline="always")
def be32(b, o):
    return (np.int64(b[o]) << 24) | (np.int64(b[o + 1]) << 16) | (np.int64(b[o + 2]) << 8) | np.int64(b[o + 3])


@njit(cache=True, inline="always")
def le32(b, o):
    return (np.int64(b[o + 3]) << 24) | (np.int64(b[o + 2]) << 16) | (np.int64(b[o + 1]) << 8) | np.int64(b[o])


@njit(cache=True, inline="always")
def be64(b, o):
    v = np.uint64(0)
    for k in range(8):
        v = (v << np.uint64(8)) | np.uint64(b[o + k])
    return np.int64(v)


@njit(cache=True, inline="always")
def _ip_version_of(b, p, end):
    if p >= end:
        return -1
    return np.int64(b[p]) >> 4


@njit(cache=True)
def _link_to_ip(b, off, end, linktype):
    """Return (offset of the IP header, IP version or -1, status)."""
    if linktype == 1:  # Ethernet, with 802.1Q / QinQ tags, PPPoE and MPLS underneath
        if end - off < 14:
            return off, -1, TRUNC_LINK
        p = off + 12
        et = be16(b, p)
        p += 2
        while et == 0x8100 or et == 0x88A8 or et == 0x9100:
            if p + 4 > end:
                return off, -1, TRUNC_LINK
            et = be16(b, p + 2)
            p += 4
        if et == 0x8864:  # PPPoE session: 6-byte header, then the PPP protocol
            if p + 8 > end:
                return off, -1, TRUNC_LINK
            ppp = be16(b, p + 6)
            p += 8
            if ppp == 0x21:
                return p, 4, OK
            if ppp == 0x57:
                return p, 6, OK
            return p, -1, NON_IP
        if et == 0x8847 or et == 0x8848:  # MPLS: pop labels to bottom of stack
            while True:
                if p + 4 > end:
                    return off, -1, TRUNC_LINK
                bos = b[p + 2] & 1
                p += 4
                if bos:
                    break
            return p, _ip_version_of(b, p, end), OK
        if et == 0x0800:
            return p, 4, OK
        if et == 0x86DD:
            return p, 6, OK
        return p, -1, NON_IP
    if linktype == 101 or linktype == 12 or linktype == 14:  # raw IP
        return off, _ip_version_of(b, off, end), OK
    if linktype == 228:
        return off, 4, OK
    if linktype == 229:
        return off, 6, OK
    if linktype == 113 or linktype == 276:  # Linux cooked SLL / SLL2
        hl = 16 if linktype == 113 else 20
        if end - off < hl:
            return off, -1, TRUNC_LINK
        et = be16(b, off + 14) if linktype == 113 else be16(b, off)
        if et == 0x0800:
            return off + hl, 4, OK
        if et == 0x86DD:
            return off + hl, 6, OK
        return off + hl, -1, NON_IP
    if linktype == 0 or linktype == 108:  # BSD null (host order) / loop (network order)
        if end - off < 4:
            return off, -1, TRUNC_LINK
        fam = be32(b, off) if linktype == 108 else le32(b, off)
        if fam > 0xFFFF:  # written on a big-endian host
            fam = be32(b, off)
        if fam == 2:
            return off + 4, 4, OK
        if fam == 24 or fam == 28 or fam == 30:
            return off + 4, 6, OK
        return off + 4, -1, NON_IP
    if linktype == 9 or linktype == 50:  # PPP, PPP in HDLC framing
        p = off
        if end - p >= 2 and b[p] == 0xFF and b[p + 1] == 0x03:
            p += 2
        if p >= end:
            return off, -1, TRUNC_LINK
        if b[p] & 1:
            proto = np.int64(b[p])
            p += 1
        else:
            if p + 2 > end:
                return off, -1, TRUNC_LINK
            proto = be16(b, p)
            p += 2
        if proto == 0x21:
            return p, 4, OK
        if proto == 0x57:
            return p, 6, OK
        return p, -1, NON_IP
    return off, -1, BAD_LINKTYPE


@njit(cache=True)
def _ip_header(b, p, end, wire_end, ver, P, i):
    """Parse the IP header at p into P's address columns.

    Returns (status, protocol, transport offset, transport length, total length, frag, id);
    frag: 0 none, 1 first fragment, 2 later fragment.
    """
    if ver == 4:
        if p + 20 > end:
            return TRUNC_IP, 0, 0, 0, 0, 0, 0
        ihl = np.int64(b[p] & 15) * 4
        tot = be16(b, p + 2)
        avail = wire_end - p
        if tot == 0:  # TCP segmentation offload on the capturing host
            tot = avail
        if (b[p] >> 4) != 4 or ihl < 20 or tot < ihl or p + ihl > end:
            return BAD_IP, 0, 0, 0, 0, 0, 0
        if tot > avail:
            return IP_TOO_LONG, 0, 0, 0, 0, 0, 0
        fw = be16(b, p + 6)
        frag = 0
        if fw & 0x3FFF:
            frag = 2 if (fw & 0x1FFF) else 1
        P[i, SRC_HI] = 0
        P[i, SRC_LO] = V4_MAPPED | be32(b, p + 12)
        P[i, DST_HI] = 0
        P[i, DST_LO] = V4_MAPPED | be32(b, p + 16)
        return OK, np.int64(b[p + 9]), p + ihl, tot - ihl, tot, frag, be16(b, p + 4)
    if ver == 6:
        if p + 40 > end:
            return TRUNC_IP, 0, 0, 0, 0, 0, 0
        if (b[p] >> 4) != 6:
            return BAD_IP, 0, 0, 0, 0, 0, 0
        plen6 = be16(b, p + 4)
        avail = wire_end - p
        tot = 40 + plen6 if plen6 > 0 else avail  # 0: jumbogram or offload
        if tot > avail:
            return IP_TOO_LONG, 0, 0, 0, 0, 0, 0
        P[i, SRC_HI] = be64(b, p + 8)
        P[i, SRC_LO] = be64(b, p + 16)
        P[i, DST_HI] = be64(b, p + 24)
        P[i, DST_LO] = be64(b, p + 32)
        nh = np.int64(b[p + 6])
        q = p + 40
        frag = 0
        while (nh == _EXT_HOP or nh == _EXT_ROUTING or nh == _EXT_FRAG or nh == _EXT_AH
               or nh == _EXT_DEST or nh == _EXT_MOBILITY):
            if q + 8 > end:
                return TRUNC_IP, 0, 0, 0, 0, 0, 0
            if nh == _EXT_FRAG:
                fo = be16(b, q + 2)
                frag = 2 if (fo >> 3) else (1 if fo & 1 else frag)
                hl = 8
            elif nh == _EXT_AH:
                hl = (np.int64(b[q + 1]) + 2) * 4
            else:
                hl = (np.int64(b[q + 1]) + 1) * 8
            nh = np.int64(b[q])
            q += hl
        if q - p > tot:
            return BAD_IP, 0, 0, 0, 0, 0, 0
        return OK, nh, q, tot - (q - p), tot, frag, be32(b, p) & 0xFFFFF  # flow label as "id"
    return (BAD_IP if ver >= 0 else NON_IP), 0, 0, 0, 0, 0, 0


@njit(cache=True)
def _gre_inner(b, g, end):
    """GRE (RFC 2784/2890) and ERSPAN I/II/III: return (inner IP offset, version) or (g, -1)."""
    if g + 4 > end:
        return g, -1
    fl = be16(b, g)
    if fl & 7:  # version 1 is PPTP's enhanced GRE: not unwrapped
        return g, -1
    ptype = be16(b, g + 2)
    q = g + 4 + (4 if fl & 0x8000 else 0) + (4 if fl & 0x2000 else 0) + (4 if fl & 0x1000 else 0)
    if ptype == 0x0800:
        return q, 4
    if ptype == 0x86DD:
        return q, 6
    if ptype == 0x88BE:  # ERSPAN type II has a sequence number and an 8-byte header; type I neither
        q += 8 if fl & 0x1000 else 0
    elif ptype == 0x22EB:  # ERSPAN type III: 12 bytes, +8 with the optional subheader
        if q + 12 > end:
            return g, -1
        q += 20 if b[q + 11] & 1 else 12
    elif ptype != 0x6558:  # transparent Ethernet bridging
        return g, -1
    p, ver, status = _link_to_ip(b, q, end, 1)
    return (p, ver) if status == OK else (g, -1)


@njit(cache=True)
def _udp_tunnel_inner(b, u, end):
    """VXLAN (4789, cloud traffic mirroring) and GTP-U (2152, mobile core)."""
    sport, dport = be16(b, u), be16(b, u + 2)
    q = u + 8
    if (dport == 4789 or sport == 4789) and q + 8 <= end and (b[q] & 0x08):
        p, ver, status = _link_to_ip(b, q + 8, end, 1)
        return (p, ver) if status == OK else (u, -1)
    if (dport == 2152 or sport == 2152) and q + 8 <= end and (b[q] >> 5) == 1 and b[q + 1] == 0xFF:
        flags = b[q]
        p = q + 8
        if flags & 0x07:
            if p + 4 > end:
                return u, -1
            nxt = np.int64(b[p + 3]) if flags & 0x04 else 0
            p += 4
            while nxt != 0:  # extension headers: length in 4-byte units, next type last
                if p + 1 > end or b[p] == 0:
                    return u, -1
                ln = np.int64(b[p]) * 4
                if p + ln > end:
                    return u, -1
                nxt = np.int64(b[p + ln - 1])
                p += ln
        ver = _ip_version_of(b, p, end)
        return (p, ver) if ver == 4 or ver == 6 else (u, -1)
    return u, -1


@njit(cache=True)
def decode_frame(b, off, caplen, wirelen, linktype, P, i, stats):
    """Decode the frame at b[off:off+caplen] into row i of the batch P."""
    end = off + caplen
    P[i, CAPLEN] = caplen
    P[i, WIRELEN] = wirelen
    P[i, UID] = NO_UID
    P[i, TRAILER] = -1
    for c in (FRAG, SPORT, DPORT, FLAGS, SEQ, ACK, PLEN, PCAP, DSIG, IPLEN, PROTO, IPVER, HINT):
        P[i, c] = 0
    P[i, POFF] = end
    trunc = 1 if caplen < wirelen else 0
    P[i, TRUNC] = trunc
    stats[ST_TRUNCATED] += trunc

    p, ver, status = _link_to_ip(b, off, end, linktype)
    if status != OK:
        P[i, STATUS] = status
        return
    wire_end = off + wirelen
    outer_end = -1
    for depth in range(MAX_TUNNEL_DEPTH + 1):
        status, proto, l4, l4len, tot, frag, ipid = _ip_header(b, p, end, wire_end, ver, P, i)
        if status != OK:
            P[i, STATUS] = status
            return
        if depth == 0:
            outer_end = p + tot
        if frag != 0 or depth == MAX_TUNNEL_DEPTH:
            break
        # Tunnels and mirror encapsulations: the flow is the inner packet's.
        if proto == 4 or proto == 41:  # IP-in-IP, 6in4
            inner, inner_ver = l4, (4 if proto == 4 else 6)
        elif proto == 47:  # GRE, including ERSPAN (remote SPAN)
            inner, inner_ver = _gre_inner(b, l4, end)
        elif proto == 17 and l4 + 8 <= end:
            inner, inner_ver = _udp_tunnel_inner(b, l4, end)
        else:
            break
        if inner_ver < 0:
            break
        p, ver = inner, inner_ver
    P[i, IPVER] = ver
    P[i, PROTO] = proto
    P[i, IPLEN] = tot
    P[i, FRAG] = frag
    if frag:
        stats[ST_FRAGMENTS] += 1
    _pcapdroid_trailer(b, outer_end, end, P, i, stats)
    if frag == 2:  # no transport header: counted, attributed to no flow
        P[i, STATUS] = FRAGMENT
        return
    P[i, STATUS] = _transport(b, l4, l4len, end, proto, ipid, P, i)


@njit(cache=True, inline="always")
def _pcapdroid_trailer(b, ip_end, end, P, i, stats):
    # PCAPdroid appends 0-3 padding bytes and a 32-byte trailer after the IP packet;
    # Ethernet padding of short frames stays below 32 bytes, so the magic decides.
    t = end - TRAILER_LEN
    if t >= ip_end and be32(b, t) == PCAPDROID_MAGIC:
        uid = be32(b, t + 4)
        if uid >= 0x80000000:
            uid -= 0x100000000
        P[i, UID] = uid
        P[i, TRAILER] = t
        stats[ST_TRAILERS] += 1


@njit(cache=True, inline="always")
def _payload_hint(b, p, cap, proto):
    """A HINT_* value if the payload's first bytes look like something a dissector reads
    (cheap test); the flow table tells TLS and the WhatsApp prologue apart from the rest."""
    if cap < 2:
        return 0
    b0, b1 = b[p], b[p + 1]
    if proto == 6:
        if b0 == 0x16 and b1 == 0x03:
            return HINT_TLS
        if (b0 == 0x45 and b1 == 0x44) or (b0 == 0x57 and b1 == 0x41):
            return HINT_WA  # WhatsApp "ED" / "WA"
        if (b0 == 0x47 or b0 == 0x50 or b0 == 0x48 or b0 == 0x44 or b0 == 0x4F or b0 == 0x43
                or b0 == 0x54) and 0x41 <= b1 <= 0x5A:
            return HINT_OTHER  # an HTTP method
        return 0
    if proto == 17:
        if cap >= 20 and (((b0 & 0xC0) == 0 and be32(b, p + 4) == 0x2112A442)
                          or (b0 == 0x08 and b1 <= 0x02) or (b0 == 0x00 and b1 == 0x01)):
            return HINT_OTHER  # STUN (RFC 5389 cookie, WhatsApp types, RFC 3489 binding)
        if cap >= 5 and (b0 & 0xC0) == 0xC0:
            v = be32(b, p + 1)
            for known in QUIC_VERSION_NUMBERS:
                if v == known:
                    return HINT_OTHER  # QUIC long header of a version quic.py decrypts
    return 0


@njit(cache=True, inline="always")
def _transport(b, l4, l4len, end, proto, ipid, P, i):
    cks = np.int64(0)
    if proto == 6:
        if l4 + 20 > end:
            return TRUNC_L4
        doff = (np.int64(b[l4 + 12]) >> 4) * 4
        if doff < 20:
            return BAD_L4
        P[i, SPORT] = be16(b, l4)
        P[i, DPORT] = be16(b, l4 + 2)
        P[i, SEQ] = be32(b, l4 + 4)
        P[i, ACK] = be32(b, l4 + 8)
        P[i, FLAGS] = b[l4 + 13]
        cks = be16(b, l4 + 16)
        plen = l4len - doff
        poff = l4 + doff
    elif proto == 17 or proto == 136:  # UDP, UDP-Lite
        if l4 + 8 > end:
            return TRUNC_L4
        P[i, SPORT] = be16(b, l4)
        P[i, DPORT] = be16(b, l4 + 2)
        ulen = be16(b, l4 + 4)
        cks = be16(b, l4 + 6)
        if proto == 17 and ulen >= 8 and ulen < l4len:
            l4len = ulen
        plen = l4len - 8
        poff = l4 + 8
    elif proto == 1 or proto == 58:  # ICMP, ICMPv6: one flow per address pair, like nDPI
        if l4 + 4 > end:
            return TRUNC_L4
        cks = be16(b, l4 + 2)
        plen = l4len - 8
        poff = l4 + 8
    elif proto == 132:  # SCTP
        if l4 + 12 > end:
            return TRUNC_L4
        P[i, SPORT] = be16(b, l4)
        P[i, DPORT] = be16(b, l4 + 2)
        plen = l4len - 12
        poff = l4 + 12
    else:  # other protocols (GRE, ESP, IGMP...): a flow per address pair and protocol
        plen = l4len
        poff = l4
    if plen < 0:
        plen = 0
    if poff > end:  # headers or options reach past the capture: no payload captured
        poff = end
    P[i, PLEN] = plen
    P[i, POFF] = poff
    cap = end - poff
    cap = 0 if cap < 0 else (plen if cap > plen else cap)
    P[i, PCAP] = cap
    P[i, HINT] = _payload_hint(b, poff, cap, proto)
    # Duplicate signature: what a mirror copy keeps and a new packet changes (not the TTL).
    # Checksums are zero in many host captures (offload), hence seq/ack/flags as well.
    sig = (ipid << 16) ^ cks ^ (l4len << 40)
    sig = (sig ^ P[i, SEQ]) * np.int64(-7046029254386353131)
    sig = (sig ^ (P[i, ACK] << 8) ^ P[i, FLAGS]) * np.int64(-4658895280553007687)
    P[i, DSIG] = sig ^ (sig >> 31)
    return OK
