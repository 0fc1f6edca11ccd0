"""Events: what happened, when, in which flow, as far as sizes and timing tell.

Chat flows (walked frames) are cut into groups of frames separated by silence, and each
group gets a kind from who spoke first and how large the frames are. Calls are the
WhatsApp call legs of one device that overlap in time. Media transfers and every other
Meta flow are one event each. The thresholds and their reasons are in docs/metadata.md.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from flowscope import schema
from flowscope.metadata.business import business_events
from flowscope.metadata.walked import BUSINESS_SERVICES

# A server answers a client frame within one round trip plus processing; a recipient's
# receipt or a new user action comes later. 0.5 s separates the two for round trips up
# to a few hundred ms (the sample's chat RTT is 18 ms, receipts follow after 0.8-1.6 s).
EVENT_GAP_NS = 500_000_000
# The version of the chat heuristics below (thresholds, kinds, estimates): written to
# summary.json and manifest.json, so two analyses with different rules are told apart.
HEURISTICS_VERSION = "2026.12"
# Frame body sizes (3-byte header excluded): body = 1 flag byte + stanza + 16-byte GCM tag.
# Receipts, acks and chat states carry only an id, a JID and a type; a message carries
# recipient JID(s), id and Signal ciphertext.
MESSAGE_MIN_BYTES = 100
# Keep-alive: a `w:p` ping iq is 36 B (whatsmeow) or 43 B (Baileys), the server's pong ~36 B
# (whatsapp-business-and-frames.md §3.3); sent every 20-30 s (§3.2). Phone apps: undocumented,
# so a multiple of the cadence (a ping skipped while other stanzas flowed) still counts.
PING_MAX_BYTES = 43
KEEPALIVE_CADENCE_NS = (20 * 1_000_000_000, 30 * 1_000_000_000)
KEEPALIVE_CADENCE_MULTIPLES = 3
# Contact sync (§2.2): a usync query is ~80 B + (10 + number length) B per contact, one big
# upstream frame answered by a larger one (one <user> per number). 1 KB is ~40 contacts; the
# largest other upstream stanzas are prekey uploads (~2.7 KB) whose answer is small, and media
# messages (thumbnails), hence the media window.
CONTACT_SYNC_MIN_BYTES = 1024
CONTACT_SYNC_REPLY_NS = 5 * 1_000_000_000
CONTACT_SYNC_MEDIA_WINDOW_NS = 60 * 1_000_000_000
USYNC_BASE_BYTES = 80
USYNC_NUMBER_LENGTH = (11, 14, 20)   # low, central (+E164 of 13 digits), high ("<number>@c.us")
# Recipient devices (§3.3): a 1:1 text to one device is ~147 B; each further device (the
# recipient's companions and the sender's own) adds a <to>/<enc> entry of ~115 B. The text
# itself grows the frame in 16-byte blocks: up to TEXT_ALLOWANCE_BYTES is read as text for
# the low end of the range, none of it for the high end.
ONE_DEVICE_MESSAGE_BYTES = 147
DEVICE_STEP_BYTES = 115
TEXT_ALLOWANCE_BYTES = 230
# WhatsApp Web: one TLS record per WebSocket message; the record adds ~24 bytes (AEAD tag,
# content type or explicit nonce, WebSocket header) to the frame it carries.
TLS_RECORD_OVERHEAD_BYTES = 24
# Call legs of one device closer than this belong to one call (the classifier's window).
CALL_GAP_NS = 60 * 1_000_000_000
# Which call legs are direct (to the other party) and which go to relays: the flows'
# remote_role (classify stage: relays answer on UDP 3478 and speak WhatsApp's STUN dialect).

# events before numbering: the EVENTS columns but event_id, times as int64 ns
_UNNUMBERED = pa.schema([pa.field(c.name, pa.int64() if c.type == schema.TS_TYPE else c.type)
                         for c in schema.EVENTS if c.name != "event_id"])


@dataclass
class Call:
    local_ip: str
    flow_ids: list = field(default_factory=list)
    relays: set = field(default_factory=set)      # remote addresses of relay legs
    peers: set = field(default_factory=set)       # remote addresses of peer-to-peer legs
    p2p_flow_ids: list = field(default_factory=list)
    ts_start: int = 0
    ts_end: int = 0
    bytes: int = 0
    bytes_up: int = 0                             # IP bytes sent by the local device, all legs
    confidence: str = "medium"


def chat_events(frames: dict, units: dict, services: dict, media_spans: list | tuple = ()) -> list[dict]:
    """Events of the walked flows. `frames`: flow_id -> [(ts_first, ts, direction,
    frame_bytes, frame_index)] ordered by ts_first (up before down at equal times);
    `media_spans`: (ts_start, ts_end) of the WhatsApp media flows (they explain a large
    upstream frame: a media message, not a contact sync)."""
    out: list[dict] = []
    for fid in sorted(frames):
        overhead = TLS_RECORD_OVERHEAD_BYTES if units[fid] == "tls-record" else 0
        events = [_chat_event(fid, services[fid], group, overhead, sync)
                  for group, sync in _with_contact_syncs(list(_groups(frames[fid])), overhead, media_spans)]
        _keepalive_confidence(events)
        out += events
    return out


def _groups(rows):
    group, end = [], None
    for row in rows:
        if group and row[0] - end > EVENT_GAP_NS:
            yield group
            group = []
        group.append(row)
        end = row[1] if len(group) == 1 else max(end, row[1])
    if group:
        yield group


def _contact_sync_at(group: list, overhead: int, media_spans) -> int | None:
    """Index in `group` of a candidate address-book upload: an upstream frame of at least
    CONTACT_SYNC_MIN_BYTES, outside the handshake, with no media flow within
    CONTACT_SYNC_MEDIA_WINDOW_NS (a media message with its thumbnail is large too)."""
    if any(d == "up" and i == 0 for _tf, _t, d, _n, i in group):
        return None
    for k, (tf, _t, d, n, _i) in enumerate(group):
        if d == "up" and n - overhead >= CONTACT_SYNC_MIN_BYTES and not any(
                s - CONTACT_SYNC_MEDIA_WINDOW_NS <= tf <= e + CONTACT_SYNC_MEDIA_WINDOW_NS for s, e in media_spans):
            return k
    return None


def _with_contact_syncs(groups: list, overhead: int, media_spans) -> list[tuple[list, bool]]:
    """(group, is a contact sync) for each group. A candidate (_contact_sync_at) is one when
    a larger downstream frame follows within CONTACT_SYNC_REPLY_NS; a reply that came after
    more than the 0.5 s gap (a server may think longer) takes the groups up to it along:
    it is part of the sync, not a received message."""
    out, k = [], 0
    while k < len(groups):
        group = groups[k]
        k += 1
        at = _contact_sync_at(group, overhead, media_spans)
        if at is None:
            out.append((group, False))
            continue
        ts, size = group[at][1], group[at][3]

        def answers(rows):
            return any(r[2] == "down" and r[3] > size and r[0] - ts <= CONTACT_SYNC_REPLY_NS for r in rows)
        found, j = answers(group[at + 1:]), k
        while not found and j < len(groups) and groups[j][0][0] - ts <= CONTACT_SYNC_REPLY_NS:
            found = answers(groups[j])
            j += 1
        if found:
            group, k = group + [r for g in groups[k:j] for r in g], j
        out.append((group, found))
    return out


def _chat_event(fid: int, service: str, group: list, overhead: int, contact_sync: bool = False) -> dict:
    ups = [n - overhead for _tf, _t, d, n, _i in group if d == "up"]
    downs = [n - overhead for _tf, _t, d, n, _i in group if d == "down"]
    handshake = any(d == "up" and i == 0 for _tf, _t, d, _n, i in group)
    kind, direction, confidence = (("contact-sync", "up", "low") if contact_sync
                                   else _kind(group[0][2], ups, downs, handshake))
    detail = (f"frames_up={len(ups)} frames_down={len(downs)} max_up={max(ups, default=0) + overhead} "
              f"max_down={max(downs, default=0) + overhead} "
              f"bytes_up={sum(r[3] for r in group if r[2] == 'up')} "
              f"bytes_down={sum(r[3] for r in group if r[2] == 'down')}")
    if kind == "message" and direction == "up":
        lo, hi = recipient_devices(max(ups))
        detail += f" devices={lo}-{hi}"
    elif kind == "contact-sync":
        detail += " " + contact_estimate(max(ups))
    return {"flow_id": fid, "service": service, "kind": kind,
            "ts_start": min(r[0] for r in group), "ts_end": max(r[1] for r in group),
            "direction": direction, "bytes": sum(r[3] for r in group), "frames": len(group),
            "confidence": confidence, "detail": detail}


def _kind(first: str, ups: list, downs: list, handshake: bool) -> tuple[str, str, str]:
    """(kind, direction, confidence) of one group of frames (contact syncs are found first)."""
    if handshake:  # the protocol puts the Noise (or TLS) handshake first in the stream
        return "handshake", "both", "high"
    mine, theirs = (ups, downs) if first == "up" else (downs, ups)
    if max(mine) >= MESSAGE_MIN_BYTES:
        return "message", first, "medium" if theirs else "low"
    if max(mine) <= PING_MAX_BYTES:
        if theirs and max(theirs) <= PING_MAX_BYTES:
            return "keepalive", first, "low"   # medium once its cadence is seen (_keepalive_confidence)
        return "presence", first, "low"
    if first == "up" and not theirs:
        return "presence", first, "low"  # a chat state (typing...): the server does not answer it
    return "receipt", first, "low"


def _keepalive_confidence(events: list[dict]) -> None:
    """A keep-alive whose neighbour keep-alive in the flow is 20-30 s away (or a small
    multiple of it) has the documented cadence: medium confidence."""
    starts = [e["ts_start"] for e in events if e["kind"] == "keepalive"]
    lo, hi = KEEPALIVE_CADENCE_NS
    for e in events:
        if e["kind"] != "keepalive":
            continue
        gaps = [abs(e["ts_start"] - s) for s in starts if s != e["ts_start"]]
        if any(k * lo <= g <= k * hi for g in gaps for k in range(1, KEEPALIVE_CADENCE_MULTIPLES + 1)):
            e["confidence"] = "medium"


def recipient_devices(frame_bytes: int) -> tuple[int, int]:
    """(low, high) devices an outbound message frame of this body size addresses (§3.3):
    low reads up to TEXT_ALLOWANCE_BYTES of the excess as text, high none of it."""
    excess = frame_bytes - ONE_DEVICE_MESSAGE_BYTES
    low = 1 + max(0, (excess - TEXT_ALLOWANCE_BYTES) // DEVICE_STEP_BYTES)
    high = 1 + max(0, (excess + DEVICE_STEP_BYTES // 2) // DEVICE_STEP_BYTES)
    return low, max(low, high)


def contact_estimate(frame_bytes: int) -> str:
    """detail of a contact-sync event: contacts = (frame - 80) / (10 + number length)."""
    lo_len, mid_len, hi_len = USYNC_NUMBER_LENGTH
    body = frame_bytes - USYNC_BASE_BYTES
    return (f"contacts={body // (10 + mid_len)} contacts_range={body // (10 + hi_len)}-{body // (10 + lo_len)} "
            f"formula=(frame_bytes-{USYNC_BASE_BYTES})/(10+number_length) number_length={lo_len}-{hi_len}")


def group_calls(legs: list[dict]) -> list[Call]:
    """WhatsApp call legs (flow rows of service whatsapp.call, with local_ip and
    local_is_orig) of one local device that overlap or follow within CALL_GAP_NS form a call."""
    calls: list[Call] = []
    open_by_device: dict[str, Call] = {}
    for r in sorted(legs, key=lambda r: (r["ts_start"], r["flow_id"])):
        call = open_by_device.get(r["local_ip"])
        if call is None or r["ts_start"] - call.ts_end > CALL_GAP_NS:
            call = open_by_device[r["local_ip"]] = Call(r["local_ip"], ts_start=r["ts_start"], ts_end=r["ts_end"])
            calls.append(call)
        call.flow_ids.append(r["flow_id"])
        call.ts_end = max(call.ts_end, r["ts_end"])
        call.bytes += r["bytes_orig"] + r["bytes_resp"]
        call.bytes_up += r["bytes_orig"] if r["local_is_orig"] else r["bytes_resp"]
        if is_direct(r):
            call.peers.add(r["remote_ip"])
            call.p2p_flow_ids.append(r["flow_id"])
        else:
            call.relays.add(r["remote_ip"])
        if r["confidence"] == "high":
            call.confidence = "high"
    return calls


def is_direct(leg: dict) -> bool:
    """A peer-to-peer leg: its remote end is the other party (remote_role, classify stage)."""
    return leg.get("remote_role") == "peer"


def call_events(calls: list[Call]) -> list[dict]:
    return [{"flow_id": c.flow_ids[0], "service": "whatsapp.call", "kind": "call", "ts_start": c.ts_start,
             "ts_end": c.ts_end, "direction": "both", "bytes": c.bytes, "frames": 0, "confidence": c.confidence,
             "detail": f"duration_s={(c.ts_end - c.ts_start) / 1e9:.3f} relays={len(c.relays)} "
                       f"p2p_legs={len(c.p2p_flow_ids)} bytes_up={c.bytes_up} bytes_down={c.bytes - c.bytes_up} "
                       f"flows={','.join(map(str, c.flow_ids))}"}
            for c in calls]


def flow_events(flows: pa.Table, kind: str) -> pa.Table:
    """One event per flow (media transfers, other Meta flows): its span, IP bytes, direction.
    `flows` has the flows columns, local_is_orig and int64 ns times."""
    orig = flows["local_is_orig"]
    up = pc.if_else(orig, flows["bytes_orig"], flows["bytes_resp"])
    down = pc.if_else(orig, flows["bytes_resp"], flows["bytes_orig"])
    pay_up = pc.if_else(orig, flows["payload_bytes_orig"], flows["payload_bytes_resp"])
    pay_down = pc.if_else(orig, flows["payload_bytes_resp"], flows["payload_bytes_orig"])
    if kind == "media":  # the bulk of the payload says upload or download
        direction = pc.if_else(pc.greater(pay_up, pay_down), "up", "down")
    else:
        only_up = pc.and_(pc.greater(pay_up, 0), pc.equal(pay_down, 0))
        only_down = pc.and_(pc.greater(pay_down, 0), pc.equal(pay_up, 0))
        direction = pc.if_else(only_up, "up", pc.if_else(only_down, "down", "both"))
    n = flows.num_rows
    detail = pc.binary_join_element_wise("bytes_up=", pc.cast(up, pa.string()), " bytes_down=",
                                         pc.cast(down, pa.string()), "")
    cols = {"flow_id": flows["flow_id"], "service": flows["service"], "kind": pa.array([kind] * n, pa.string()),
            "ts_start": flows["ts_start"], "ts_end": flows["ts_end"], "direction": direction,
            "bytes": pc.add(up, down), "frames": pa.array([0] * n, pa.int64()),
            "confidence": pc.fill_null(flows["confidence"], "low"), "detail": detail}
    return pa.table([cols[f.name].cast(f.type) for f in _UNNUMBERED], schema=_UNNUMBERED)


def build(flows: pa.Table, frames: dict, units: dict) -> tuple[pa.Table, list[Call], list[dict]]:
    """(events table, calls, chat event rows). `flows`: the flows columns with local_ip,
    local_is_orig and int64 ns times; `frames`/`units` as chat_events takes them."""
    # a solution provider is not Meta, but its flows carry the same messages: events too
    meta = flows.filter(pc.or_kleene(pc.fill_null(flows["is_meta"], False),
                                     pc.fill_null(pc.equal(flows["service"], "whatsapp.bsp"), False)))
    services = {fid: flows["service"][fid].as_py() for fid in frames}  # flow_id is the row number
    media_rows = meta.filter(pc.fill_null(pc.equal(meta["service"], "whatsapp.media"), False))
    media_spans = list(zip(media_rows["ts_start"].to_pylist(), media_rows["ts_end"].to_pylist()))
    business = {fid for fid in frames if services[fid] in BUSINESS_SERVICES}
    local = flows["local_is_orig"]
    biz = business_events({f: frames[f] for f in business}, services, {f: local[f].as_py() for f in business})
    chat = chat_events({f: r for f, r in frames.items() if f not in business}, units, services, media_spans) + biz
    legs = meta.filter(pc.equal(meta["service"], "whatsapp.call")).to_pylist()
    calls = group_calls(legs)
    with_chat = pa.array(sorted({r["flow_id"] for r in chat}), pa.int64())
    service = meta["service"]
    media = pc.fill_null(pc.equal(service, "whatsapp.media"), False)
    rest = pc.and_(pc.and_(pc.invert(media), pc.fill_null(pc.not_equal(service, "whatsapp.call"), True)),
                   pc.invert(pc.is_in(meta["flow_id"], value_set=with_chat)))
    events = pa.concat_tables([pa.Table.from_pylist(chat + call_events(calls), schema=_UNNUMBERED),
                               flow_events(meta.filter(media), "media"), flow_events(meta.filter(rest), "flow")])
    events = events.sort_by([("ts_start", "ascending"), ("flow_id", "ascending"), ("kind", "ascending")])
    columns = {"event_id": pa.array(range(events.num_rows), pa.int64()),
               **{c: events[c] for c in events.column_names}}
    return pa.table([columns[c.name].cast(c.type) for c in schema.EVENTS],
                    schema=pa.schema([pa.field(c.name, c.type) for c in schema.EVENTS])), calls, chat
