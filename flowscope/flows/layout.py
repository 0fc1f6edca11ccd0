"""Flow record layout: one int64 row a flow, shared by the table, the merge and finalize.

Declared once (flowscope/records.py): every field has a merge rule, a per-direction sum,
min, max or OR, or fixed when the flow starts, so that partial records from consecutive
chunks or files combine exactly (merge.py). Timestamps are ns since the epoch; NONE marks
"not seen". The column constants are generated from the declaration.
"""
from __future__ import annotations

from flowscope.records import Field, Layout

NONE = -1

FLOW_RECORD = Layout("flow record", head=[
    # key (canonical: side A is the smaller (address, port), so both directions share it)
    Field("K_PROTO", "ip_version << 8 | ip protocol", "key"),
    Field("K_AHI", "side A address, high 64 bits", "key"),
    Field("K_ALO", "side A address, low 64 bits", "key"),
    Field("K_BHI", "side B address, high 64 bits", "key"),
    Field("K_BLO", "side B address, low 64 bits", "key"),
    Field("K_PORTS", "port_a << 16 | port_b", "key"),
    Field("HASH", "hash of the key (the open-addressing index)", "key"),
    Field("ORIG_IS_A", "1 if the originator is side A (a later record's directions are aligned to it)", "first"),
], per_direction=[
    Field("PKTS", "packets counted (duplicates excluded)", "sum"),
    Field("BYTES", "IP bytes", "sum"),
    Field("PAYLOAD", "transport payload bytes", "sum"),
    Field("FRAME", "captured frame lengths on the wire (link header included)", "sum"),
    Field("FIRST", "first packet ts", "min"),
    Field("LAST", "last packet ts", "max"),
    Field("TCPFLAGS", "OR of TCP flags", "or"),
    Field("SYN_TS", "first pure SYN", "min"),
    Field("SYNACK_TS", "first SYN+ACK", "min"),
    Field("ACK_TS", "first pure ACK (no SYN/FIN/RST, no payload)", "min"),
    Field("DSIG0", "duplicate ring: last packet signature", "last"),
    Field("DTS0", "duplicate ring: its time", "last"),
    Field("DSIG1", "duplicate ring: the signature before", "last"),
    Field("DTS1", "duplicate ring: its time", "last"),
    Field("NPAY", "packets with payload (selects what dissectors see; part-local)", "sum"),
    Field("ISN", "TCP sequence number of the first stream byte (SYN's seq + 1), NONE without a SYN", "first-set"),
], tail=[
    Field("DUPS", "duplicates suppressed", "sum"),
    Field("APP_UID", "PCAPdroid uid of the flow's first packet that had one (NO_UID: none)", "first-set",
          unset=-(2**31) - 1),  # decode/layout.NO_UID
    Field("FIRST_PURE_SYN", "the flow's first packet was a pure SYN", "first"),
    Field("END_REASON", "END_* code", "end"),
    Field("OPEN_AT_END", "still in the table when its part ended (may continue in the next)", "last"),
    Field("LAST_ANY", "last ts in either direction", "max"),
    Field("FIRST_ANY", "first ts in either direction", "min"),
    Field("CAPTURE", "index of the part (then: the input file) the flow started in", "first"),
    Field("SERIAL", "creation order within a part", "first"),
    Field("PART", "part (file or chunk) index, in time order: the last part the flow reached", "last"),
    Field("USEFUL", "the record's payload is kept for the dissectors (part-local)", "first"),
    Field("STREAM", "the record's payload packets are walked for frames: a STREAM_* value", "first"),
])
globals().update(FLOW_RECORD.constants())  # K_PROTO ... STREAM, D, ND, PKTS ... ISN: the columns
NF = FLOW_RECORD.width

# STREAM values. A record whose first originator bytes are the WhatsApp prologue, or a TLS
# ClientHello naming web.whatsapp.com, has every payload packet walked; so has a TCP record
# that began without a SYN on port 5222, 443 or 80 (RESYNC: a connection already open,
# perhaps WhatsApp chat; dissect/streams.py keeps only those to candidate servers).
# HELLO_PENDING: a ClientHello whose first segment did not name the server; the next
# originator segment decides.
STREAM_NONE, STREAM_WA, STREAM_WEB, STREAM_RESYNC, STREAM_HELLO_PENDING = 0, 1, 2, 3, -1
# Business Platform records (issue 13), walked like WhatsApp Web: a ClientHello naming a Cloud
# API host (CLOUD) or coming from a webhook-source network (HOOK); a provider name gives WEB.
STREAM_CLOUD, STREAM_HOOK = 4, 5
RESYNC_PORTS = (5222, 443, 80)
WEB_WHATSAPP = b"web.whatsapp.com"

# end_reason codes, with their names in flows.parquet
END_EOF, END_IDLE, END_FIN, END_RST = 0, 1, 2, 3
END_REASONS = ("eof", "idle", "fin", "rst")

# TCP flag bits (decode/layout.ACK is the acknowledgement number, a packet column)
TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK = 0x01, 0x02, 0x04, 0x08, 0x10

# timeout classes (index into the timeouts array)
TO_TCP, TO_TCP_CLOSED, TO_UDP, TO_OTHER = 0, 1, 2, 3
