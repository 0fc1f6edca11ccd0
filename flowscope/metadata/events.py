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
from flowscope.geo.operators import META_ASNS
from flowscope.metadata.business import business_events
from flowscope.metadata.walked import BUSINESS_SERVICES
from flowscope.geo.stage import P2P_MARK

# A server answers a client frame within one round trip plus processing; a recipient's
# receipt or a new user action comes later. 0.5 s separates the two for round trips up
# to a few hundred ms (the sample's chat RTT is 18 ms, receipts follow after 0.8-1.6 s).
EVENT_GAP_NS = 500_000_000
# Frame body sizes (3-byte header excluded): body = 1 flag byte + stanza + 16-byte GCM tag.
# Pings/pongs (keep-alive iq) are the smallest stanzas; receipts, acks and chat states carry
# only an id, a JID and a type; a message carries recipient JID(s), id and Signal ciphertext.
KEEPALIVE_MAX_BYTES = 40
MESSAGE_MIN_BYTES = 100
# WhatsApp Web: one TLS record per WebSocket message; the record adds ~24 bytes (AEAD tag,
# content type or explicit nonce, WebSocket header) to the frame it carries.
TLS_RECORD_OVERHEAD_BYTES = 24
# Call legs of one device closer than this belong to one call (the classifier's window).
CALL_GAP_NS = 60 * 1_000_000_000
# WhatsApp's relays answer on UDP 3478 and speak its STUN dialect (brief §1.7); a leg to
# any other address of a call is direct, to the other party.
RELAY_PORT = 3478
WHATSAPP_STUN_RULE = "WhatsApp message types"

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
    confidence: str = "medium"


def chat_events(frames: dict, units: dict, services: dict) -> list[dict]:
    """Events of the walked flows. `frames`: flow_id -> [(ts_first, ts, direction,
    frame_bytes, frame_index)] ordered by ts_first (up before down at equal times)."""
    out: list[dict] = []
    for fid in sorted(frames):
        overhead = TLS_RECORD_OVERHEAD_BYTES if units[fid] == "tls-record" else 0
        for group in _groups(frames[fid]):
            out.append(_chat_event(fid, services[fid], group, overhead))
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


def _chat_event(fid: int, service: str, group: list, overhead: int) -> dict:
    ups = [n - overhead for _tf, _t, d, n, _i in group if d == "up"]
    downs = [n - overhead for _tf, _t, d, n, _i in group if d == "down"]
    handshake = any(d == "up" and i == 0 for _tf, _t, d, _n, i in group)
    kind, direction, confidence = _kind(group[0][2], ups, downs, handshake)
    return {"flow_id": fid, "service": service, "kind": kind,
            "ts_start": min(r[0] for r in group), "ts_end": max(r[1] for r in group),
            "direction": direction, "bytes": sum(r[3] for r in group), "frames": len(group),
            "confidence": confidence,
            "detail": f"frames_up={len(ups)} frames_down={len(downs)} max_up={max(ups, default=0) + overhead} "
                      f"max_down={max(downs, default=0) + overhead}"}


def _kind(first: str, ups: list, downs: list, handshake: bool) -> tuple[str, str, str]:
    """(kind, direction, confidence) of one group of frames."""
    if handshake:  # the protocol puts the Noise (or TLS) handshake first in the stream
        return "handshake", "both", "high"
    mine, theirs = (ups, downs) if first == "up" else (downs, ups)
    if max(mine) >= MESSAGE_MIN_BYTES:
        return "message", first, "medium" if theirs else "low"
    if max(mine) <= KEEPALIVE_MAX_BYTES:
        return "presence", first, "medium" if theirs and max(theirs) <= KEEPALIVE_MAX_BYTES else "low"
    if first == "up" and not theirs:
        return "presence", first, "low"  # a chat state (typing...): the server does not answer it
    return "receipt", first, "low"


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
        if is_direct(r):
            call.peers.add(r["remote_ip"])
            call.p2p_flow_ids.append(r["flow_id"])
        else:
            call.relays.add(r["remote_ip"])
        if r["confidence"] == "high":
            call.confidence = "high"
    return calls


def is_direct(leg: dict) -> bool:
    """A peer-to-peer leg: so labelled by the classifier, or not a relay (not on the relay
    port, no WhatsApp STUN types, not in a Meta AS)."""
    rule = leg.get("catalog_rule") or ""
    if P2P_MARK in rule:
        return True
    remote_port = leg["resp_port"] if leg["local_is_orig"] else leg["orig_port"]
    return not (remote_port == RELAY_PORT or WHATSAPP_STUN_RULE in rule or leg.get("remote_asn") in META_ASNS)


def call_events(calls: list[Call]) -> list[dict]:
    return [{"flow_id": c.flow_ids[0], "service": "whatsapp.call", "kind": "call", "ts_start": c.ts_start,
             "ts_end": c.ts_end, "direction": "both", "bytes": c.bytes, "frames": 0, "confidence": c.confidence,
             "detail": f"duration_s={(c.ts_end - c.ts_start) / 1e9:.3f} relays={len(c.relays)} "
                       f"p2p_legs={len(c.p2p_flow_ids)} flows={','.join(map(str, c.flow_ids))}"}
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
    business = {fid for fid in frames if services[fid] in BUSINESS_SERVICES}
    local = flows["local_is_orig"]
    biz = business_events({f: frames[f] for f in business}, services, {f: local[f].as_py() for f in business})
    chat = chat_events({f: r for f, r in frames.items() if f not in business}, units, services) + biz
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
