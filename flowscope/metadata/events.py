"""Events: what happened, when, in which flow, as far as sizes and timing tell.

Chat flows (walked frames) are cut into groups of frames separated by silence, and each
group gets a kind from who spoke first and how large the frames are. Calls are the
WhatsApp call legs of one device that overlap in time. Media transfers and every other
Meta flow are one event each. The thresholds and their reasons are in docs/metadata.md.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from flowscope.geo.operators import META_ASNS
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

EVENT_COLUMNS = ["flow_id", "service", "kind", "ts_start", "ts_end", "direction", "bytes", "frames",
                 "confidence", "detail"]


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


def chat_events(frames: pd.DataFrame, services: dict) -> list[dict]:
    """Events of the walked flows; `frames` has the FRAMES columns with int64 ns times."""
    out: list[dict] = []
    if frames.empty:
        return out
    ordered = frames.assign(_down=frames["direction"] == "down").sort_values(
        ["flow_id", "ts_first", "_down", "frame_index"], kind="stable")
    for fid, f in ordered.groupby("flow_id", sort=True):
        rows = list(zip(f["ts_first"].tolist(), f["ts"].tolist(), f["direction"].tolist(),
                        f["frame_bytes"].tolist(), f["frame_index"].tolist()))
        overhead = TLS_RECORD_OVERHEAD_BYTES if f["unit"].iat[0] == "tls-record" else 0
        for group in _groups(rows):
            out.append(_chat_event(int(fid), services[int(fid)], group, overhead))
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


def group_calls(flows: pd.DataFrame) -> list[Call]:
    """WhatsApp call legs (service whatsapp.call) of one local device that overlap or follow
    within CALL_GAP_NS form one call."""
    legs = flows[flows["service"] == "whatsapp.call"].sort_values(["ts_start", "flow_id"], kind="stable")
    calls: list[Call] = []
    open_by_device: dict[str, Call] = {}
    for r in legs.itertuples(index=False):
        call = open_by_device.get(r.local_ip)
        if call is None or r.ts_start - call.ts_end > CALL_GAP_NS:
            call = open_by_device[r.local_ip] = Call(r.local_ip, ts_start=r.ts_start, ts_end=r.ts_end)
            calls.append(call)
        call.flow_ids.append(int(r.flow_id))
        call.ts_end = max(call.ts_end, r.ts_end)
        call.bytes += int(r.bytes_orig + r.bytes_resp)
        if _direct(r):
            call.peers.add(r.remote_ip)
            call.p2p_flow_ids.append(int(r.flow_id))
        else:
            call.relays.add(r.remote_ip)
        if r.confidence == "high":
            call.confidence = "high"
    return calls


def _direct(leg) -> bool:
    """A peer-to-peer leg: so labelled by the classifier, or not a relay (not on the relay
    port, no WhatsApp STUN types, not in a Meta AS)."""
    rule = leg.catalog_rule if isinstance(leg.catalog_rule, str) else ""
    if P2P_MARK in rule:
        return True
    remote_port = leg.resp_port if leg.local_is_orig else leg.orig_port
    asn = leg.remote_asn if "remote_asn" in leg._fields else None
    meta_as = isinstance(asn, (int, float)) and asn == asn and int(asn) in META_ASNS
    return not (remote_port == RELAY_PORT or WHATSAPP_STUN_RULE in rule or meta_as)


def call_events(calls: list[Call]) -> list[dict]:
    return [{"flow_id": c.flow_ids[0], "service": "whatsapp.call", "kind": "call", "ts_start": c.ts_start,
             "ts_end": c.ts_end, "direction": "both", "bytes": c.bytes, "frames": 0, "confidence": c.confidence,
             "detail": f"duration_s={(c.ts_end - c.ts_start) / 1e9:.3f} relays={len(c.relays)} "
                       f"p2p_legs={len(c.p2p_flow_ids)} flows={','.join(map(str, c.flow_ids))}"}
            for c in calls]


def flow_events(flows: pd.DataFrame, kind: str) -> list[dict]:
    """One event per flow (media transfers, other Meta flows): its span, IP bytes, direction."""
    out = []
    for r in flows.itertuples(index=False):
        up, down = (r.bytes_orig, r.bytes_resp) if r.local_is_orig else (r.bytes_resp, r.bytes_orig)
        pay_up, pay_down = ((r.payload_bytes_orig, r.payload_bytes_resp) if r.local_is_orig
                            else (r.payload_bytes_resp, r.payload_bytes_orig))
        if kind == "media":
            direction = "up" if pay_up > pay_down else "down"
        else:
            direction = "both" if pay_up and pay_down else ("up" if pay_up else "down" if pay_down else "both")
        out.append({"flow_id": int(r.flow_id), "service": r.service, "kind": kind, "ts_start": r.ts_start,
                    "ts_end": r.ts_end, "direction": direction, "bytes": int(up + down), "frames": 0,
                    "confidence": r.confidence or "low", "detail": f"bytes_up={int(up)} bytes_down={int(down)}"})
    return out


def build(flows: pd.DataFrame, frames: pd.DataFrame, walked: set) -> tuple[pd.DataFrame, list[Call]]:
    """All events, ordered and numbered. `flows` carries local_ip, local_is_orig and int64 ns
    times; `walked` holds the ids of flows whose frames were walked."""
    meta = flows[flows["is_meta"].fillna(False).astype(bool)]
    services = dict(zip(meta["flow_id"].tolist(), meta["service"].tolist()))
    services.update(zip(flows.loc[flows["flow_id"].isin(walked), "flow_id"].tolist(),
                        flows.loc[flows["flow_id"].isin(walked), "service"].tolist()))
    rows = chat_events(frames, services)
    with_chat = {r["flow_id"] for r in rows}
    calls = group_calls(meta)
    rows += call_events(calls)
    media = meta["service"] == "whatsapp.media"
    rows += flow_events(meta[media], "media")
    rest = meta[~media & (meta["service"] != "whatsapp.call") & ~meta["flow_id"].isin(with_chat)]
    rows += flow_events(rest, "flow")
    events = pd.DataFrame(rows, columns=EVENT_COLUMNS)
    events = events.sort_values(["ts_start", "flow_id", "kind"], kind="stable").reset_index(drop=True)
    events.insert(0, "event_id", range(len(events)))
    return events, calls
