"""api-call and webhook events cut from TLS record sizes (metadata/business.py)."""
from __future__ import annotations

from flowscope.metadata.business import business_events, exchanges


def rows(*records):
    """(direction, size) -> frame rows (ts_first, ts, direction, frame_bytes, frame_index), 10 ms apart."""
    return [(k * 10, k * 10 + 1, d, n, k) for k, (d, n) in enumerate(records)]


TLS13 = [("up", 512), ("down", 90), ("down", 1), ("down", 2600), ("up", 1), ("up", 53), ("down", 250)]


def test_requests_and_responses_after_the_tls13_handshake():
    frames = rows(*TLS13, ("up", 700), ("down", 200), ("up", 30), ("up", 800), ("down", 180), ("down", 40))
    got = exchanges(frames, "up")
    assert [[r[3] for r in ex] for ex in got] == [[700, 200, 30], [800, 180, 40]]
    events = business_events({7: frames}, {7: "whatsapp.business_api"}, {7: True})
    assert [(e["kind"], e["direction"], e["bytes"], e["frames"]) for e in events] == \
        [("api-call", "up", 930, 3), ("api-call", "up", 1020, 3)]
    assert events[0]["detail"] == "records_up=2 records_down=1 bytes_up=730 bytes_down=200"


def test_a_request_before_its_answer_is_one_exchange_like_http2_multiplexing():
    frames = rows(*TLS13, ("up", 700), ("up", 650), ("down", 200), ("down", 210))
    assert len(exchanges(frames, "up")) == 1  # the stated limit: merged requests count once


def test_webhooks_from_meta_with_the_mtls_certificate_in_the_handshake():
    # Meta is the client (down, seen from the company's server): hello, server flight, its
    # Certificate (large), change-cipher-spec, Finished; then two deliveries answered 200
    frames = rows(("down", 517), ("up", 3900), ("down", 2100), ("down", 1), ("down", 40), ("up", 1), ("up", 40),
                  ("down", 1500), ("up", 150), ("down", 1300), ("up", 140))
    events = business_events({3: frames}, {3: "whatsapp.webhook"}, {3: False})
    assert [(e["kind"], e["direction"], e["bytes"]) for e in events] == [("webhook", "down", 1650),
                                                                        ("webhook", "down", 1440)]
    assert all(e["confidence"] == "medium" for e in events)


def test_a_request_without_answer_is_low_confidence():
    events = business_events({1: rows(*TLS13, ("up", 900))}, {1: "whatsapp.bsp"}, {1: True})
    assert [(e["kind"], e["confidence"]) for e in events] == [("api-call", "low")]
