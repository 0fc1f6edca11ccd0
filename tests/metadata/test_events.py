"""Event heuristics: grouping by silence, kinds from who speaks first and frame sizes,
calls from legs, one event per other flow."""
from __future__ import annotations

import pyarrow as pa

from flowscope.metadata import events as ev

S = 1_000_000_000
MS = 1_000_000


def kinds(frames, unit="wa-frame"):
    """frames: (t_ms, direction, size) -> [(kind, direction, confidence, frames)]; frame
    indices from 1: up frame 0 would be the flow's handshake."""
    rows = [(t * MS, t * MS, d, n, i + 1) for i, (t, d, n) in enumerate(frames)]
    out = ev.chat_events({7: rows}, {7: unit}, {7: "whatsapp.chat"})
    return [(e["kind"], e["direction"], e["confidence"], e["frames"]) for e in out]


def test_kinds_of_typical_exchanges():
    assert kinds([(0, "up", 214), (18, "down", 50)]) == [("message", "up", "medium", 2)]
    assert kinds([(0, "down", 356), (45, "up", 66), (63, "down", 44)]) == [("message", "down", "medium", 3)]
    assert kinds([(0, "up", 33), (18, "down", 28)]) == [("keepalive", "up", "low", 2)]        # keep-alive
    assert kinds([(0, "up", 49)]) == [("presence", "up", "low", 1)]                           # typing
    assert kinds([(0, "down", 79)]) == [("receipt", "down", "low", 1)]                        # a receipt
    assert kinds([(0, "up", 66), (20, "down", 44)]) == [("receipt", "up", "low", 2)]
    assert kinds([(0, "up", 300)]) == [("message", "up", "low", 1)]                           # no ack seen


def test_silence_longer_than_the_gap_splits_events():
    gap_ms = ev.EVENT_GAP_NS // MS
    two = kinds([(0, "up", 214), (18, "down", 50), (18 + gap_ms + 1, "down", 79)])
    assert [k[0] for k in two] == ["message", "receipt"]
    one = kinds([(0, "up", 151), (6, "up", 151), (12, "up", 151), (150, "down", 47), (150, "down", 47)])
    assert one == [("message", "up", "medium", 5)]                                            # a burst


def test_the_first_client_frame_opens_the_handshake():
    rows = [(0, 0, "up", 270, 0), (18 * MS, 18 * MS, "down", 347, 0), (21 * MS, 21 * MS, "up", 198, 1)]
    out = ev.chat_events({1: rows}, {1: "wa-frame"}, {1: "whatsapp.chat"})
    assert [(e["kind"], e["direction"], e["confidence"]) for e in out] == [("handshake", "both", "high")]


def test_tls_records_are_judged_without_their_overhead():
    # a 33-byte keep-alive inside a TLS record of 33 + 24 bytes is still a keep-alive
    o = ev.TLS_RECORD_OVERHEAD_BYTES
    assert kinds([(0, "up", 33 + o), (18, "down", 28 + o)], unit="tls-record")[0][0] == "keepalive"
    assert kinds([(0, "up", 33 + o), (18, "down", 28 + o)])[0][0] == "receipt"


def _leg(fid, remote, port, t0, t1, role="relay", conf="high"):
    return {"flow_id": fid, "local_ip": "10.0.0.2", "local_is_orig": True, "orig_port": 40000, "resp_port": port,
            "remote_ip": remote, "ts_start": t0, "ts_end": t1, "bytes_orig": 100, "bytes_resp": 50,
            "remote_role": role, "confidence": conf}


def test_calls_group_legs_and_tell_relays_from_direct_legs():
    legs = [_leg(1, "157.240.20.100", 3478, 0, 60 * S),
            _leg(2, "31.13.84.62", 3478, 0, 1 * S),
            _leg(3, "198.51.100.23", 51234, 30 * S, 59 * S, role="peer", conf="medium"),
            _leg(4, "157.240.20.101", 3478, 200 * S, 260 * S)]            # a second call, 140 s later
    calls = ev.group_calls(legs)
    assert [c.flow_ids for c in calls] == [[1, 2, 3], [4]]
    assert calls[0].relays == {"157.240.20.100", "31.13.84.62"} and calls[0].peers == {"198.51.100.23"}
    assert calls[0].p2p_flow_ids == [3] and calls[0].ts_end == 60 * S and calls[0].bytes == 450
    detail = ev.call_events(calls)[0]["detail"]
    assert detail == "duration_s=60.000 relays=2 p2p_legs=1 bytes_up=300 bytes_down=150 flows=1,2,3"
    assert ev.is_direct(_leg(5, "x", 5000, 0, 1, role="peer"))   # the classify stage's remote_role decides
    assert not ev.is_direct(_leg(6, "x", 5000, 0, 1, role="relay"))


def test_flow_events_direction_and_bytes():
    t = pa.table({"flow_id": [1, 2, 3], "service": ["whatsapp.media", "meta.facebook", "meta.other"],
                  "ts_start": [0, 5, 9], "ts_end": [4, 6, 9], "local_is_orig": [True, False, True],
                  "bytes_orig": [1000, 10, 60], "bytes_resp": [100, 20, 0], "payload_bytes_orig": [900, 0, 32],
                  "payload_bytes_resp": [10, 5, 0], "confidence": ["high", None, "medium"]})
    media = ev.flow_events(t.slice(0, 1), "media").to_pylist()[0]
    assert (media["direction"], media["bytes"], media["detail"]) == ("up", 1100, "bytes_up=1000 bytes_down=100")
    rest = ev.flow_events(t.slice(1), "flow").to_pylist()
    assert [(r["direction"], r["confidence"]) for r in rest] == [("up", "low"), ("up", "medium")]
    assert rest[0]["detail"] == "bytes_up=20 bytes_down=10"   # the local device is the responder


def test_keepalives_at_their_cadence_are_medium_and_never_messages():
    pings = [(k * 25_000, "up", 36) for k in range(5)] + [(k * 25_000 + 18, "down", 36) for k in range(5)]
    got = kinds(sorted(pings))
    assert [g[:3] for g in got] == [("keepalive", "up", "medium")] * 5
    # 43 B (Baileys' ping) still one; a lone small frame without an answer is not
    assert kinds([(0, "up", 43), (18, "down", 36)])[0][0] == "keepalive"
    assert kinds([(0, "up", 36)])[0][0] == "presence"
    assert kinds([(0, "up", 44), (18, "down", 36)])[0][0] == "receipt"
    # 10 s apart is not the documented cadence: low
    assert [g[2] for g in kinds([(0, "up", 36), (18, "down", 36), (10_000, "up", 36), (10_018, "down", 36)])] \
        == ["low", "low"]


def test_contact_sync_a_large_upload_answered_by_a_larger_frame():
    # 50 contacts: 80 + 24 * 50 = 1280 B up, the server's answer 3000 B after 1.2 s (past the gap)
    got = kinds([(0, "up", 1280), (1_200, "down", 3000), (1_220, "up", 60)])
    assert [g[:2] for g in got] == [("contact-sync", "up")] and got[0][2] == "low" and got[0][3] == 3
    detail = ev.chat_events({7: [(0, 0, "up", 1280, 1), (1_200 * MS, 1_200 * MS, "down", 3000, 1)]},
                            {7: "wa-frame"}, {7: "whatsapp.chat"})[0]["detail"]
    assert "contacts=50 contacts_range=40-57 formula=(frame_bytes-80)/(10+number_length)" in detail
    # no larger answer (a prekey upload: a small iq result), or a media flow nearby: a message
    assert kinds([(0, "up", 2700), (18, "down", 60)])[0][0] == "message"
    near_media = ev.chat_events({7: [(0, 0, "up", 1280, 1), (20 * MS, 20 * MS, "down", 3000, 1)]},
                                {7: "wa-frame"}, {7: "whatsapp.chat"}, [(-30 * S, -2 * S)])
    assert near_media[0]["kind"] == "message"


def test_recipient_devices_from_the_frame_size():
    # the brief's 1:1 text: 147 B one device, 381 B two (+1 own), 615 B three (+2 own)
    assert ev.recipient_devices(147) == (1, 1)
    assert ev.recipient_devices(381) == (1, 3)
    assert ev.recipient_devices(615) == (3, 5)
    out = ev.chat_events({7: [(0, 0, "up", 615, 1), (18 * MS, 18 * MS, "down", 50, 1)]},
                         {7: "wa-frame"}, {7: "whatsapp.chat"})
    assert out[0]["detail"].endswith("bytes_up=615 bytes_down=50 devices=3-5")
