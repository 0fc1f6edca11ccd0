"""Packet batch layout: one int64 row a packet, one named column a field.

Readers fill a batch with `decode_frame`; the flow table and the dissectors read it.
A packet batch is `P[:n]` of shape (n, NCOL); `P[:n, TS]` is a column view. Addresses
are 128-bit, split into two 64-bit halves; IPv4 is stored IPv4-mapped (::ffff:a.b.c.d).
Only offsets into the read buffer are kept, never payload bytes.
"""
from __future__ import annotations

import numpy as np

from flowscope.records import Field, Layout

# --- columns of a packet batch (declared once: flowscope/records.py) -------------------
PACKET = Layout("packet batch", head=[
    Field("TS", 'capture timestamp, ns since the Unix epoch (UTC)'),
    Field("CAPLEN", 'captured frame length, bytes'),
    Field("WIRELEN", 'original frame length on the wire, bytes'),
    Field("STATUS", '0 = decoded into a flow; else an index into REASONS'),
    Field("IPVER", '4 or 6 (of the innermost IP header)'),
    Field("PROTO", 'IP protocol number of the transport (6 TCP, 17 UDP, 1/58 ICMP...)'),
    Field("SRC_HI", 'source address, high 64 bits'),
    Field("SRC_LO", 'source address, low 64 bits'),
    Field("DST_HI", 'destination address, high 64 bits'),
    Field("DST_LO", 'destination address, low 64 bits'),
    Field("SPORT", 'transport ports; 0 where the protocol has none (ICMP, like nDPI)'),
    Field("DPORT", 'destination port'),
    Field("IPLEN", 'IP bytes: total length of the (innermost, for tunnels) IP packet'),
    Field("PLEN", 'transport payload bytes, from the headers (not what was captured)'),
    Field("FLAGS", 'TCP flags byte'),
    Field("SEQ", 'TCP sequence number'),
    Field("ACK", 'TCP acknowledgement number'),
    Field("POFF", 'offset of the transport payload in the read buffer'),
    Field("PCAP", 'transport payload bytes actually captured at POFF'),
    Field("FRAG", '0 not a fragment, 1 first fragment, 2 later fragment'),
    Field("UID", 'PCAPdroid app UID; NO_UID where the packet carries none'),
    Field("TRAILER", 'offset of the PCAPdroid trailer in the read buffer, or -1'),
    Field("DSIG", 'signature for mirror-port duplicate detection (IP id, L4 checksum, ...)'),
    Field("IFACE", 'pcapng interface id (0 for classic pcap)'),
    Field("TRUNC", '1 if the frame was cut by the snaplen (caplen < wirelen)'),
    Field("FLOW", 'set by the flow table: serial of the flow the packet belongs to, or -1'),
    Field("DIR", 'set by the flow table: 0 originator -> responder, 1 the other way'),
    Field("DUP", 'set by the flow table: 1 if suppressed as a duplicate'),
    Field("NTH", 'set by the flow table: index of this payload packet in its flow direction, or -1'),
    Field("FSYN", "set by the flow table: 1 if the packet's flow record began with a pure SYN"),
    Field("HINT", "payload's first bytes look like TLS/WA prologue/HTTP (TCP) or STUN/QUIC (UDP): HINT_*"),
    Field("KEEP", 'set by the flow table: KEEP_* bits (dissectors, frame-walk stream)'),
])
globals().update(PACKET.constants())  # TS ... KEEP: the columns
NCOL = PACKET.width

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

# QUIC versions whose Initial packets dissect/quic.py decrypts (its salts are keyed by
# these names); decode hints a UDP payload as QUIC only for these.
QUIC_VERSIONS = {
    0x00000001: "v1", 0x6B3343CF: "v2",
    0xFF00001D: "draft-29", 0xFF00001E: "draft-30", 0xFF00001F: "draft-31", 0xFF000020: "draft-32",
    0xFACEB001: "mvfst-draft-22", 0xFACEB002: "mvfst-draft-27", 0xFACEB00E: "mvfst-experimental",
}
QUIC_VERSION_NUMBERS = np.array(sorted(QUIC_VERSIONS), dtype=np.int64)

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

# Counters kept per capture next to the reasons (indices into the stats array), with the
# names summary.json gives them.
COUNTERS = (
    ("ST_FRAGMENTS", "ip_fragments"),                   # IP fragments seen (first and later ones)
    ("ST_TRUNCATED", "packets_truncated"),              # frames cut by the snaplen
    ("ST_TRAILERS", "pcapdroid_trailers"),              # frames with a PCAPdroid trailer
    ("ST_NO_TS", "packets_without_timestamp"),          # pcapng simple packet blocks (no timestamp)
    ("ST_BAD_IFACE", "packets_unknown_interface"),      # pcapng packets naming an undeclared interface
)
globals().update({name: len(REASONS) + k for k, (name, _key) in enumerate(COUNTERS)})
NSTATS = len(REASONS) + len(COUNTERS)


def counters(stats: np.ndarray) -> dict[str, int]:
    """A capture's counters by their summary.json names (the reasons are REASONS)."""
    return {key: int(stats[len(REASONS) + k]) for k, (_name, key) in enumerate(COUNTERS)}


def decoded(stats: np.ndarray) -> int:
    """Packets decoded into a flow (the "ok" reason)."""
    return int(stats[REASONS.index("ok")])


def new_batch(capacity: int) -> np.ndarray:
    return np.zeros((capacity, NCOL), dtype=np.int64)


def new_stats() -> np.ndarray:
    return np.zeros(NSTATS, dtype=np.int64)
