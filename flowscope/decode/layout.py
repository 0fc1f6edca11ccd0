"""Packet batch layout: one int64 row a packet, one named column a field.

Readers fill a batch with `decode_frame`; the flow table and the dissectors read it.
A packet batch is `P[:n]` of shape (n, NCOL); `P[:n, TS]` is a column view. Addresses
are 128-bit, split into two 64-bit halves; IPv4 is stored IPv4-mapped (::ffff:a.b.c.d).
Only offsets into the read buffer are kept, never payload bytes.
"""
from __future__ import annotations

import numpy as np

# --- columns of a packet batch -------------------------------------------------------
TS = 0          # capture timestamp, ns since the Unix epoch (UTC)
CAPLEN = 1      # captured frame length, bytes
WIRELEN = 2     # original frame length on the wire, bytes
STATUS = 3      # 0 = decoded into a flow; else an index into REASONS
IPVER = 4       # 4 or 6 (of the innermost IP header)
PROTO = 5       # IP protocol number of the transport (6 TCP, 17 UDP, 1/58 ICMP...)
SRC_HI = 6      # source address, high 64 bits
SRC_LO = 7      # source address, low 64 bits
DST_HI = 8
DST_LO = 9
SPORT = 10      # transport ports; 0 where the protocol has none (ICMP, like nDPI)
DPORT = 11
IPLEN = 12      # IP bytes: total length of the (innermost, for tunnels) IP packet
PLEN = 13       # transport payload bytes, from the headers (not what was captured)
FLAGS = 14      # TCP flags byte
SEQ = 15        # TCP sequence number
ACK = 16        # TCP acknowledgement number
POFF = 17       # offset of the transport payload in the read buffer
PCAP = 18       # transport payload bytes actually captured at POFF
FRAG = 19       # 0 not a fragment, 1 first fragment, 2 later fragment
UID = 20        # PCAPdroid app UID; NO_UID where the packet carries none
TRAILER = 21    # offset of the PCAPdroid trailer in the read buffer, or -1
DSIG = 22       # signature for mirror-port duplicate detection (IP id, L4 checksum, ...)
IFACE = 23      # pcapng interface id (0 for classic pcap)
TRUNC = 24      # 1 if the frame was cut by the snaplen (caplen < wirelen)
FLOW = 25       # set by the flow table: serial of the flow the packet belongs to, or -1
DIR = 26        # set by the flow table: 0 originator -> responder, 1 the other way
DUP = 27        # set by the flow table: 1 if suppressed as a duplicate
NTH = 28        # set by the flow table: index of this payload packet in its flow direction, or -1
FSYN = 29       # set by the flow table: 1 if the packet's flow record began with a pure SYN
HINT = 30       # payload's first bytes look like TLS/WA prologue/HTTP (TCP) or STUN/QUIC (UDP): HINT_*
KEEP = 31       # set by the flow table: KEEP_* bits (dissectors, frame-walk stream)
NCOL = 32

# HINT values (0: nothing a dissector reads)
HINT_OTHER, HINT_WA, HINT_TLS = 1, 2, 3  # HTTP/STUN/QUIC; "ED"/"WA" prologue; TLS handshake record
# KEEP bits: the dissectors see the packet; it belongs to a walked stream (all payload of
# WhatsApp chat and WhatsApp Web flows, and of connections open before the part began);
# it is a ClientHello's first segment whose server name is still undecided (the stream
# keeps it if the next segment names web.whatsapp.com); with KEEP_STREAM, the record is
# such an open connection (walked by resynchronising) or WhatsApp Web (TLS records)
KEEP_EVIDENCE, KEEP_STREAM, KEEP_HELLO, KEEP_RESYNC, KEEP_WEB = 1, 2, 4, 8, 16
# With KEEP_WEB, Business Platform records (issue 13): a ClientHello naming a Cloud API host
# (walked only from a platform host: dissect/streams.py decides), or one from a webhook-source
# network (its responder is a platform host).
KEEP_CLOUD, KEEP_HOOK = 32, 64

NO_UID = -(2**31) - 1  # outside int32: "no PCAPdroid information on this packet"

# --- reasons a packet is not decoded into a flow (STATUS values) --------------------
REASONS = (
    "ok",
    "unsupported-linktype",
    "truncated-link-header",
    "non-ip",
    "truncated-ip-header",
    "bad-ip-header",
    "ip-fragment",
    "truncated-l4-header",
    "bad-l4-header",
    "ip-length-exceeds-frame",
)
OK, BAD_LINKTYPE, TRUNC_LINK, NON_IP, TRUNC_IP, BAD_IP, FRAGMENT, TRUNC_L4, BAD_L4, IP_TOO_LONG = range(10)

# Counters kept per capture next to the reasons (indices into the stats array).
ST_FRAGMENTS = len(REASONS)        # IP fragments seen (first and later ones)
ST_TRUNCATED = ST_FRAGMENTS + 1    # frames cut by the snaplen
ST_TRAILERS = ST_TRUNCATED + 1     # frames with a PCAPdroid trailer
ST_NO_TS = ST_TRAILERS + 1         # pcapng simple packet blocks (no timestamp)
ST_BAD_IFACE = ST_NO_TS + 1        # pcapng packets naming an undeclared interface
NSTATS = ST_BAD_IFACE + 1


def new_batch(capacity: int) -> np.ndarray:
    return np.zeros((capacity, NCOL), dtype=np.int64)


def new_stats() -> np.ndarray:
    return np.zeros(NSTATS, dtype=np.int64)
