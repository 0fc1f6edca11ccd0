"""Flow record layout: one int64 row a flow, shared by the table, the merge and finalize.

Every field is a per-direction sum, min, max or OR, or is fixed when the flow starts,
so that partial records from consecutive chunks or files combine exactly (merge.py).
Timestamps are ns since the epoch; NONE marks "not seen".
"""
from __future__ import annotations

NONE = -1

# key (canonical: side A is the smaller (address, port), so both directions share it)
K_PROTO = 0      # ip_version << 8 | ip protocol
K_AHI = 1
K_ALO = 2
K_BHI = 3
K_BLO = 4
K_PORTS = 5      # port_a << 16 | port_b
HASH = 6         # hash of the key (for the open-addressing index)
ORIG_IS_A = 7    # 1 if the originator is side A
# per direction: D + 0 is the originator's, D + ND the responder's
D = 8
PKTS = 0         # packets counted (duplicates excluded)
BYTES = 1        # IP bytes
PAYLOAD = 2      # transport payload bytes
FRAME = 3        # captured frame lengths on the wire (link header included)
FIRST = 4        # first packet ts
LAST = 5         # last packet ts
TCPFLAGS = 6     # OR of TCP flags
SYN_TS = 7       # first pure SYN
SYNACK_TS = 8    # first SYN+ACK
ACK_TS = 9       # first pure ACK (no SYN/FIN/RST, no payload)
DSIG0 = 10       # duplicate ring: last two packet signatures and their times
DTS0 = 11
DSIG1 = 12
DTS1 = 13
NPAY = 14        # packets with payload so far (within this part; selects what dissectors see)
ISN = 15         # TCP sequence number of the first stream byte (SYN's seq + 1), NONE without a SYN
ND = 16
DUPS = D + 2 * ND          # duplicates suppressed
APP_UID = DUPS + 1         # PCAPdroid uid of the flow's first packet that had one
FIRST_PURE_SYN = DUPS + 2  # the flow's first packet was a pure SYN
END_REASON = DUPS + 3
OPEN_AT_END = DUPS + 4     # still in the table when its part ended (may continue in the next)
LAST_ANY = DUPS + 5        # last ts in either direction
FIRST_ANY = DUPS + 6
CAPTURE = DUPS + 7         # index of the input file the flow started in
SERIAL = DUPS + 8          # creation order within a part
PART = DUPS + 9            # part (file or chunk) index, in time order
USEFUL = DUPS + 10         # the record's payload is kept for the dissectors (part-local)
STREAM = DUPS + 11         # every payload packet is kept for the frame walk: a STREAM_* value
NF = DUPS + 12

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

# TCP flag bits
FIN, SYN, RST, PSH, ACKF = 0x01, 0x02, 0x04, 0x08, 0x10

# timeout classes (index into the timeouts array)
TO_TCP, TO_TCP_CLOSED, TO_UDP, TO_OTHER = 0, 1, 2, 3
