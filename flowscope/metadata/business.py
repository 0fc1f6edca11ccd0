"""Business Platform events from TLS record sizes and timing (issue 13).

A Cloud API or solution-provider flow (the company's platform is the client) is a series of
HTTPS requests and responses: `api-call` events, direction up. A webhook flow (Meta is the
client, the company's server answers) is a series of deliveries: `webhook` events, direction
down. Both are cut from the walked TLS records (frames.parquet, unit tls-record) by who
speaks: a request is a record of at least REQUEST_MIN_BYTES from the client after the server
has answered the previous one; the records until the next request are its response.

Limits, stated in docs/metadata.md and the report: graph.facebook.com speaks HTTP/2 [26], so
requests sent together on one connection can share records and count as one api-call (a
lower bound); a request larger than one record (a media upload) is one event; the record
sizes include the TLS overhead, and nothing inside a record is read.
"""
from __future__ import annotations

# A send request carries JSON plus a bearer token of a few hundred bytes (≈0.5-1 KB,
# whatsapp-business-and-frames.md §1.1, inferred); HTTP/2 control frames (SETTINGS,
# WINDOW_UPDATE, PING) and TLS alerts are records of a few dozen bytes.
REQUEST_MIN_BYTES = 100
# The client's handshake ends with its Finished record: 40 bytes (TLS 1.2, AES-GCM) or 53
# (TLS 1.3, SHA-256); a change-cipher-spec record is 1 byte. The client's Certificate (Meta's
# webhook mTLS, TLS 1.2) is larger and comes before them: it stays in the handshake.
HANDSHAKE_END_MAX_BYTES = 80
API_CALL, WEBHOOK = "api-call", "webhook"


def business_events(frames: dict, services: dict, local_is_orig: dict) -> list[dict]:
    """Events of walked Business Platform flows. `frames`: flow_id -> [(ts_first, ts,
    direction, frame_bytes, frame_index)] in time order (metadata/stage.py)."""
    out: list[dict] = []
    for fid in sorted(frames):
        client = "up" if local_is_orig[fid] else "down"
        kind = API_CALL if local_is_orig[fid] else WEBHOOK
        for ex in exchanges(frames[fid], client):
            out.append(_event(fid, services[fid], kind, client, ex))
    return out


def exchanges(rows: list, client: str) -> list[list]:
    """Request/response exchanges of one TLS flow after its handshake; `client` is the
    direction ("up"/"down") of the flow's originator."""
    phase, current, out = 0, None, []  # phases: hello, server flight, client's second flight, data
    for row in rows:
        size, from_client = row[3], row[2] == client
        if phase == 0:
            phase = 1 if from_client else 0
            continue
        if phase == 1:
            phase = 2 if not from_client else 1
            continue
        if phase == 2:
            if from_client and size <= HANDSHAKE_END_MAX_BYTES:
                phase = 3
            continue
        if from_client and size >= REQUEST_MIN_BYTES and (current is None or current[1]):
            current = [[row], False]
            out.append(current)
        elif current is not None:
            current[0].append(row)
            current[1] = current[1] or not from_client
    return [ex[0] for ex in out]


def _event(fid: int, service: str, kind: str, client: str, rows: list) -> dict:
    req = [r[3] for r in rows if r[2] == client]
    resp = [r[3] for r in rows if r[2] != client]
    up, down = (req, resp) if client == "up" else (resp, req)
    return {"flow_id": fid, "service": service, "kind": kind, "ts_start": min(r[0] for r in rows),
            "ts_end": max(r[1] for r in rows), "direction": client, "bytes": sum(req) + sum(resp),
            "frames": len(rows), "confidence": "medium" if resp else "low",
            "detail": f"records_up={len(up)} records_down={len(down)} bytes_up={sum(up)} bytes_down={sum(down)}"}
