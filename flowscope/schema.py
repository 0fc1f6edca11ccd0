"""Every output table's columns, defined once: name, Arrow type, unit/role, meaning.

docs/schema.md is generated from here (`python -m flowscope.schema > docs/schema.md`) and
a test fails when the two disagree. Timestamps are UTC with nanosecond resolution.
"""
from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

TS_TYPE = pa.timestamp("ns", tz="UTC")


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    doc: str


FLOW_BASE = (
    Column("flow_id", pa.int64(), "Sequential id, in order of ts_start (ties: key), stable for the same input."),
    Column("community_id", pa.string(), "Community ID v1 (seed 0) of the 5-tuple, to find the flow in Zeek, Suricata or Wireshark."),
    Column("capture", pa.string(), "Input file in which the flow's first packet was seen (path as given)."),
    Column("ts_start", TS_TYPE, "Timestamp of the flow's first packet (UTC)."),
    Column("ts_end", TS_TYPE, "Timestamp of the flow's last packet (UTC)."),
    Column("duration_s", pa.float64(), "ts_end - ts_start, seconds."),
    Column("l4", pa.string(), "Transport: tcp, udp, icmp, icmp6, sctp, udplite, or ip-N for other IP protocol numbers."),
    Column("ip_version", pa.int8(), "4 or 6 (of the innermost IP header: tunnels are unwrapped)."),
    Column("orig_ip", pa.string(), "Originator address: the SYN sender for TCP, else the first sender."),
    Column("orig_port", pa.int32(), "Originator port (0 for ICMP and protocols without ports)."),
    Column("resp_ip", pa.string(), "Responder address."),
    Column("resp_port", pa.int32(), "Responder port."),
    Column("pkts_orig", pa.int64(), "Packets originator -> responder (duplicates excluded)."),
    Column("pkts_resp", pa.int64(), "Packets responder -> originator."),
    Column("bytes_orig", pa.int64(), "IP bytes originator -> responder: the IP total length of each packet (the inner packet for tunnels and mirror encapsulations: IP-in-IP, GRE/ERSPAN, VXLAN, GTP-U); no link header, no PCAPdroid trailer."),
    Column("bytes_resp", pa.int64(), "IP bytes responder -> originator."),
    Column("payload_bytes_orig", pa.int64(), "Transport payload bytes originator -> responder (TCP/UDP data; ICMP after its 8-byte header)."),
    Column("payload_bytes_resp", pa.int64(), "Transport payload bytes responder -> originator."),
    Column("frame_bytes_orig", pa.int64(), "Original frame lengths originator -> responder, link header included (what nDPI and Wireshark count)."),
    Column("frame_bytes_resp", pa.int64(), "Original frame lengths responder -> originator."),
    Column("rtt_ms", pa.float64(), "Round-trip time seen from the capture point, ms: TCP SYN -> SYN-ACK, or SYN-ACK -> ACK where the SYN was not seen; for UDP the fastest STUN request -> response; null if none."),
    Column("rtt_source", pa.string(), "How rtt_ms was measured: syn/syn-ack, syn-ack/ack, stun, or empty."),
    Column("tcp_state", pa.string(), "Zeek-style connection state for TCP (S0, S1, SF, REJ, S2, S3, RSTO, RSTR, RSTOS0, RSTRH, SH, SHR, OTH); empty otherwise."),
    Column("tcp_flags_orig", pa.string(), "TCP flags seen from the originator, as letters (F S R P A U E C)."),
    Column("tcp_flags_resp", pa.string(), "TCP flags seen from the responder."),
    Column("duplicates", pa.int64(), "Packets suppressed as mirror-port duplicates in this flow."),
    Column("end_reason", pa.string(), "Why the flow ended: fin (both sides closed), rst, idle (timeout), eof (open at the end of the input)."),
    Column("app_uid", pa.int64(), "Android app UID from PCAPdroid's trailer or pcapng comment (-1: PCAPdroid did not know); null without PCAPdroid data."),
    Column("app", pa.string(), "App name for app_uid from PCAPdroid (trailer or UID-map block); null without PCAPdroid data."),
)

SERVICES = ("whatsapp.chat", "whatsapp.media", "whatsapp.call", "whatsapp.web", "whatsapp.other",
            "whatsapp.business_api", "whatsapp.webhook", "whatsapp.bsp",
            "meta.facebook", "meta.instagram", "meta.messenger", "meta.threads", "meta.other", "other")
CONFIDENCES = ("high", "medium", "low")

LABELS = (
    Column("service", pa.string(), "What the flow is: " + ", ".join(SERVICES) + "."),
    Column("is_meta", pa.bool_(), "The flow reaches WhatsApp/Meta: a Meta service label (not whatsapp.bsp: a solution provider is another company), or a Meta-operated address. DNS flows asking for Meta names count: the query leaks the intent."),
    Column("hostname", pa.string(), "TLS/QUIC SNI, else HTTP Host, else the DNS name that resolved the responder address before the flow, else empty."),
    Column("evidence", pa.string(), "The rule that decided: app-uid, wa-prologue, wa-frames (WhatsApp frame headers found on a connection already open), tls-records (TLS records on a connection already open to a WhatsApp chat/Web name), stun, tls-client-cert (Meta's webhook mTLS certificate seen in clear), sni, quic-sni, dns, http-host, ip-prefix, asn, port (empty: nothing matched)."),
    Column("confidence", pa.string(), "high (protocol evidence), medium (names, app), low (address or port only)."),
    Column("catalog_rule", pa.string(), "The catalog entry that matched (pattern or prefix, with its source), for the audit trail."),
    Column("sni", pa.string(), "Server name from the TLS or QUIC ClientHello (escaped text), if any."),
    Column("dns_name", pa.string(), "Name whose DNS answer resolved resp_ip before ts_start (the name the client asked for), if any."),
    Column("dns_queries", pa.list_(pa.string()), "For DNS flows: the names asked (escaped text). Asking for a Meta name already tells the resolver the intent."),
    Column("stun_mapped", pa.list_(pa.string()), "Addresses STUN reported (MAPPED/XOR-MAPPED-ADDRESS, ip:port): the device's public address as a call server sees it."),
    Column("remote_role", pa.string(), "What the remote end is, decided once by the classify stage (flowscope/sides.py) and read by geo (a peer's operator is its own network), metadata (calls: relays and peers) and the pseudonymiser (a peer's address is personal data): peer (the other party of a direct call), relay (a WhatsApp call relay), or server; null without classification."),
    Column("local_names", pa.list_(pa.string()), "Names of local devices the flow carried: DHCP host names (options 12, 81), mDNS/LLMNR names, DNS names under a local suffix, resolving to a local address or PTR targets of one. Personal data: `device-…` pseudonyms in the files written."),
)

GEO = (
    Column("remote_ip", pa.string(), "The remote endpoint the geo columns describe: the responder, unless the responder is a private/special address and the originator is not (an inbound flow)."),
    Column("remote_country", pa.string(), "ISO 3166 alpha-2 country where the remote endpoint stands: from its Meta PoP code where the host name has one, else the first database that places it (see geo_source); null for special addresses."),
    Column("remote_city", pa.string(), "City of the remote endpoint (same source as remote_country)."),
    Column("remote_lat", pa.float64(), "Latitude, degrees (same source)."),
    Column("remote_lon", pa.float64(), "Longitude, degrees (same source)."),
    Column("remote_accuracy_km", pa.float64(), "Accuracy radius the database gives, km (MaxMind files; DB-IP Lite gives none)."),
    Column("remote_asn", pa.int64(), "Autonomous system number: from a GeoLite2/GeoIP2 ASN file, else from the catalog's prefix tables; null if neither knows."),
    Column("remote_as_org", pa.string(), "Organisation of that AS as the ASN data names it."),
    Column("pop_code", pa.string(), "Meta point-of-presence (IATA airport code) parsed from the host names seen for remote_ip, e.g. MXP from media-mxp1-1.cdn.whatsapp.net."),
    Column("geo_source", pa.string(), "Where the location came from: pop:<CODE> (airports.csv) or a database name; '+' the ASN source; special:<class> for private, reserved, multicast, documentation and anonymised addresses, which are never geolocated."),
    Column("geo_disagreement", pa.string(), "Fields on which the sources disagree for remote_ip, e.g. 'country: pop=IT, dbip-city-lite=US'; empty if none."),
    Column("max_distance_km", pa.float64(), "How far from the capture point remote_ip can be: the smallest trusted RTT to that address as responder (TCP SYN -> SYN-ACK, or a STUN request -> response; not PCAPdroid TCP handshakes) x 99.93 km/ms (light in fibre, 2/3 c, there and back); the hard vacuum bound is 1.5x this. Null without a trusted RTT."),
    Column("geo_consistent", pa.bool_(), "With a vantage point (--vantage): false if the chosen location is farther from it than light in vacuum travels in half the RTT (physically impossible), true otherwise; null without vantage, RTT or location."),
    Column("geo_checks", pa.string(), "Every location answer for remote_ip checked against the RTT bound: 'source=CC distance_km verdict', '; '-separated; empty without vantage or RTT."),
    Column("region", pa.string(), "GDPR region of remote_country: eu, eea (IS, LI, NO), adequate (EU adequacy decision; US only under the Data Privacy Framework, certified organisations only), third, or unknown."),
    Column("operator", pa.string(), "Organisation that runs the endpoint (from its AS and the service; for whatsapp.bsp the solution provider named by the catalog), kept apart from where it stands."),
    Column("operator_country", pa.string(), "Country whose law governs the operator (its incorporation), e.g. US for Meta Platforms, Inc. and WhatsApp LLC."),
)

METADATA = (
    Column("frames_up", pa.int64(), "WhatsApp chat frames (3-byte length headers) or, for WhatsApp Web and the Business Platform services, TLS records sent by the local device in this flow; null where the flow is not walked (only whatsapp.chat, whatsapp.web, whatsapp.business_api, whatsapp.webhook and whatsapp.bsp flows are: from their stream start, or resynchronised on a connection already open, see frame_sync)."),
    Column("frames_down", pa.int64(), "Frames (or TLS records) received by the local device."),
    Column("frame_gaps", pa.int64(), "Holes in the walked streams: stream bytes the capture does not hold (a lost segment, a snaplen cut). A hole inside a frame whose header was read keeps the walk in step; after any other the walk resynchronises, and frames inside the hole are not counted."),
    Column("frame_sync", pa.string(), "How the frame walk found its first frame boundary: prologue (the stream start was captured: the WhatsApp prologue, or the ClientHello of WhatsApp Web), resync (a connection already open: a chain of frame or TLS record headers locked, metadata/framewalk.py), or null (not walked)."),
    Column("counterparts", pa.int64(), "Counterparts the flow reveals (docs/metadata.md): 1 for a direct call leg (the other party's own address is remote_ip); for a relayed call leg, the distinct relays the call contacted (the same number on every leg of the call: never add it up over legs); for a walked chat flow, the recipient devices its outbound message events address (low end of each estimate, a lower bound on recipient identifiers sent); null otherwise."),
    Column("counterparts_basis", pa.string(), "How counterparts was derived: p2p-peer, call-relays, chat-outbound-messages, or empty."),
)

FLOWS = FLOW_BASE + LABELS + GEO + METADATA

FRAMES = (
    Column("flow_id", pa.int64(), "The flow (flows.parquet flow_id)."),
    Column("frame_index", pa.int64(), "Position of the frame in its flow and direction, from 0 (rows are ordered by flow, ts_first, up before down)."),
    Column("ts", TS_TYPE, "Time of the packet that completed the frame (its last byte)."),
    Column("ts_first", TS_TYPE, "Time of the packet that carried the frame's first header byte."),
    Column("direction", pa.string(), "up: sent by the local device; down: towards it."),
    Column("frame_bytes", pa.int64(), "Frame body length from its 3-byte header (header excluded; 20 bits after a 4-bit flag for the pre-2016 WA 1.x protocol); for TLS records, the record length (5-byte header excluded)."),
    Column("unit", pa.string(), "wa-frame (WhatsApp Noise frame) or tls-record (WhatsApp Web, Cloud API, webhook or solution-provider flow over TLS)."),
)

EVENTS = (
    Column("event_id", pa.int64(), "Sequential id in order of ts_start (ties: flow_id, then kind)."),
    Column("flow_id", pa.int64(), "The flow the event was seen in (for calls: the call's first leg; detail lists every leg)."),
    Column("service", pa.string(), "Service of the flow (flows.parquet service)."),
    Column("kind", pa.string(), "message, receipt, presence, keepalive, contact-sync, handshake (chat heuristics); call; media; api-call (a request and its response on a Cloud API or solution-provider flow, direction up) and webhook (a delivery from Meta to the company's server, direction down), cut from TLS record sizes and timing (HTTP/2 can merge requests); flow (any other Meta flow)."),
    Column("ts_start", TS_TYPE, "First packet or frame of the event (a frame's ts_first)."),
    Column("ts_end", TS_TYPE, "Last packet or frame of the event (a frame's ts)."),
    Column("direction", pa.string(), "Who started it: up (the local device), down (the other end); both for handshakes and calls; for a flow event the side(s) that sent payload; for media the side that sent the bulk."),
    Column("bytes", pa.int64(), "Frame bytes of the event (chat: frame_bytes summed), else IP bytes."),
    Column("frames", pa.int64(), "Frames in the event (0 where not a chat event)."),
    Column("confidence", pa.string(), "high, medium or low: how sure the kind is (chat kinds are heuristics from size and timing, docs/metadata.md)."),
    Column("detail", pa.string(), "Space-separated key=value: chat 'frames_up= frames_down= max_up= max_down= bytes_up= bytes_down=' (frame bytes), outbound messages also 'devices=LOW-HIGH' (recipient devices estimated from the frame size), contact syncs 'contacts= contacts_range= formula= number_length='; api-call and webhook 'records_up= records_down= bytes_up= bytes_down='; call 'duration_s= relays= p2p_legs= bytes_up= bytes_down= flows=<flow ids>'; media and flow 'bytes_up= bytes_down=' (IP bytes)."),
)

ACTIONS = (
    Column("action_id", pa.int64(), "Row of the action in the scenario file, from 0 (file order)."),
    Column("time", TS_TYPE, "When the auditor noted the action (the file's time, converted to UTC)."),
    Column("action", pa.string(), "message_sent, message_received, media_sent, media_received, call_started, call_ended, contact_added, app_opened, app_closed or other."),
    Column("peer", pa.string(), "The auditor's alias for the other party (contact-A, group-1), as written in the scenario: never a capture value, not pseudonymised (write no phone number in it)."),
    Column("note", pa.string(), "The auditor's free text, as written."),
    Column("matched", pa.bool_(), "At least one event of a kind the action implies lay within the tolerance (docs/metadata.md §7)."),
    Column("event_ids", pa.list_(pa.int64()), "The events assigned to the action (events.parquet event_id), earliest first; each event goes to the nearest action that implies it."),
    Column("lag_s", pa.float64(), "First matched event's start (its end for call_ended) minus the action time, seconds; null if unmatched."),
    Column("services", pa.list_(pa.string()), "Services of the flows of the matched events (for a call: every leg)."),
    Column("remote_countries", pa.list_(pa.string()), "Countries where those flows' remote endpoints stand."),
    Column("regions", pa.list_(pa.string()), "GDPR regions of those endpoints (eu, eea, adequate, third, unknown)."),
    Column("operators", pa.list_(pa.string()), "Organisations that run those endpoints."),
    Column("bytes_up", pa.int64(), "Bytes the matched events sent from the local device (frame bytes for chat events, IP bytes for calls, media and other flows)."),
    Column("bytes_down", pa.int64(), "Bytes the matched events brought to the local device (same units)."),
)

SCENARIO_SUMMARY_FIELDS = {
    "actions": "Actions in the scenario file.",
    "matched": "Actions with at least one event of a kind they imply.",
    "tolerance_s": "How far (s) an event's anchor time may lie from the action time.",
    "session": "first_action, last_action: the span over which precision is counted.",
    "by_action": "Per action kind: actions, matched, median_lag_s.",
    "by_event_kind": "Per event kind some action implies: actions (implying it), actions_found (with such an event), recall = actions_found / actions; events (of that kind within the session span, +- tolerance), events_matched (assigned to an action implying the kind), precision = events_matched / events.",
    "unexplained_events": "Per event kind: events within the tolerance of no action (keep-alives, background syncs, what the app did on its own).",
}

CAPTURE_FIELDS = {
    "path": "The file as given on the command line.",
    "sha256": "SHA-256 of the file's bytes on disk (compressed bytes for compressed captures).",
    "format": "pcap, pcap-ns (nanosecond) or pcapng.",
    "compression": "gzip, bzip2, xz or null.",
    "link_types": "LINKTYPE_ numbers seen (pcap header or pcapng interfaces).",
    "packets_read": "Packet records read.",
    "packets_decoded": "Packets decoded into a flow (duplicates included).",
    "packets_undecodable": "Count per reason of packets not attributed to a flow.",
    "packets_truncated": "Packets cut by the snaplen (still decoded when the headers survived).",
    "duplicates": "Packets suppressed as mirror-port duplicates.",
    "error": "null, or the one-line message of the error that stopped reading this file.",
}


METADATA_SUMMARY_FIELDS = {
    "frames": "flows_walked, flows_resync (walks that began on a connection already open), frames_up, frames_down, gaps (sums of the flows' columns), and counts of walks skipped or cut: walk-desync (a header that cannot be one after a lock: the walk searched again), walk-skipped-not-labelled, walk-stitch-mismatch (a later part's walk did not meet the walk it continues: a gap is counted), walk-continuation-not-kept (a later part's first segments exceeded the bound kept for stitching), walk-skipped-cloud-not-platform (a ClientHello naming the Cloud API from a host not known as a platform host: not walked).",
    "events_by_kind": "Events per kind.",
    "calls": "Calls (WhatsApp call legs of one device within 60 s of each other).",
    "call_seconds": "Their summed duration, first to last packet of any leg, s.",
    "heuristics_version": "Version of the event heuristics (kinds, thresholds, estimates: docs/metadata.md); also in manifest.json.",
    "p2p_peers": "People: distinct peer addresses of direct call legs.",
    "call_relays": "Infrastructure: distinct relay addresses per call, summed over calls (each relay counted once per call, not once per leg).",
    "outbound_messages": "Message events sent by the local devices (each names a recipient to the operator).",
    "recipient_devices_min": "People: the low end of the recipient devices the outbound messages address, summed (frame size, about 115 B per extra device; includes the sender's own companion devices).",
    "meta_servers": "Infrastructure: distinct remote addresses of WhatsApp/Meta flows other than call relays and peers (special addresses such as a local resolver excluded).",
    "warnings": "Lines that say the heuristics may not fit this capture, e.g. a chat handshake whose first client frame has a size not seen before.",
    "bytes_by_service": "IP bytes of WhatsApp/Meta flows per service (metadata.volume.volume_by).",
    "leaving_eu_eea": "Per basis (location: region of the remote end; operator: operator_country): flows, bytes, bytes_eu_eea, bytes_outside, bytes_unknown, share_outside, share_not_eu_eea (metadata.volume.leaving_eu).",
    "local_devices": "Distinct local addresses with WhatsApp/Meta flows (metadata.volume.per_device).",
}


ROTATION_SUMMARY_FIELDS = {
    "by, every_s, every_packets": "How periods end: by time (every_s seconds, aligned to the clock) or by packets (every_packets, whole ring files).",
    "period, name, final": "The period's number within the run (from 1), its directory name (its start in UTC), and whether it is the run's last (written when the capture stopped; flows still open end there, as in analyze).",
    "run_started_utc": "When the run's capture started.",
    "nominal_start_utc, nominal_end_utc": "By time: the period's bounds on the clock (null by packets).",
    "first_packet_utc, last_packet_utc": "The first and last packet of the period's own ring files (a ring file belongs to the period of its first packet, so the last may lie up to a ring file past the nominal end).",
    "ring_files": "Ring files read in this period (its `captures`).",
    "flow_packets_counted, flow_bytes_counted": "Packets and IP bytes the period's ring files added to flows: `packets = flow_packets_counted + carried_in.packets - carried_out.packets` (bytes likewise).",
    "carried_in": "Flows still open when the period before ended, carried into this one: flows, the packets and bytes they had counted before, and `from` (the ring files they began in, with SHA-256, listed under `captures` of an earlier period; their `capture` column names that file).",
    "carried_out": "Flows still open at this period's end that a later packet could continue (within their idle timeout of the newest packet): flows, packets, bytes. They are reported in the period where they end.",
    "ended_at_rotation": "Flows open at this period's end that no later packet could continue: they end here (end_reason idle, or fin/rst).",
    "drops_scope": "What the `live` drop fields cover: period, run (dumpcap counts drops only when it stops: the last period has the run's totals, earlier ones null), or null.",
    "previous": "The period before it: its directory name and the SHA-256 of its flows, events and frames tables (null for the first; a later run continues the chain of the directory). `flowscope verify DIR` checks the chain.",
    "counts": "carry-two-records (flows carried as two records, their frame walk broken), carry-bytes-dissected-early, carry-dns-answers-cut, dns-context-evicted (docs/live.md).",
    "run": "The last period only: periods, first_period, packets_captured (the engine's count), packets_analysed (all periods), drops (the run's).",
}


def arrow_schema(columns=FLOWS) -> pa.Schema:
    return pa.schema([pa.field(c.name, c.type) for c in columns])


def markdown() -> str:
    lines = ["# Output schema", "",
             "Generated from `flowscope/schema.py` (`python -m flowscope.schema > docs/schema.md`).",
             "All timestamps are UTC, nanosecond resolution.", "",
             "## flows.parquet", "", "| column | type | meaning |", "|---|---|---|"]
    lines += [f"| `{c.name}` | {c.type} | {c.doc} |" for c in FLOWS]
    lines += ["", "Columns `service` to `local_names` are null when classification is off (`--no-classify`);",
              "the columns from `remote_ip` on are null when geolocation is off (`--no-geo`).",
              "In the files written (not in the in-memory result), local, MAC and call-peer addresses are",
              "keyed pseudonyms such as `local-3f9a2c1b` or `peer-…` in every column, free text included,",
              "names of local devices are `device-…`, and `community_id` is keyed the same way (`cid-` and 16 hex",
              "digits of HMAC-SHA256 of the clear ID: joinable across runs with one key, not reversible without it;",
              "the clear value only with `--no-pseudonymize`; docs/security.md)."]
    for title, cols in (("frames.parquet", FRAMES), ("events.parquet", EVENTS)):
        lines += ["", f"## {title}", "", "| column | type | meaning |", "|---|---|---|"]
        lines += [f"| `{c.name}` | {c.type} | {c.doc} |" for c in cols]
    lines += ["", "## summary.json: `captures[]`", "", "| field | meaning |", "|---|---|"]
    lines += [f"| `{k}` | {v} |" for k, v in CAPTURE_FIELDS.items()]
    lines += ["", "## summary.json: `metadata`", "",
              "Present when classification ran; how each number is derived: docs/metadata.md.", "",
              "| field | meaning |", "|---|---|"]
    lines += [f"| `{k}` | {v} |" for k, v in METADATA_SUMMARY_FIELDS.items()]
    lines += ["", "## actions.parquet", "",
              "Written when a scenario (the auditor's action log) is given: `flowscope analyze --scenario FILE`",
              "or `flowscope align DIR FILE`. One row an action; the rule in docs/metadata.md §7.", "",
              "| column | type | meaning |", "|---|---|---|"]
    lines += [f"| `{c.name}` | {c.type} | {c.doc} |" for c in ACTIONS]
    lines += ["", "## summary.json: `scenario`", "", "Present with a scenario.", "", "| field | meaning |", "|---|---|"]
    lines += [f"| `{k}` | {v} |" for k, v in SCENARIO_SUMMARY_FIELDS.items()]
    lines += ["", "## summary.json: `rotation`", "",
              "Present in each period directory of `flowscope live --rotate` / `--rotate-packets` (docs/live.md).",
              "", "| field | meaning |", "|---|---|"]
    lines += [f"| `{k}` | {v} |" for k, v in ROTATION_SUMMARY_FIELDS.items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
