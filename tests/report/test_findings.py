"""The first-screen numbers, from small synthetic tables that follow the schemas."""
from __future__ import annotations

import pytest

from flowscope.report import findings as fd
from reportkit import make_events, make_flows

SUMMARY = {"geo": {"vantage": {"given": "MXP"}}}
P2P = "same UDP socket 192.168.1.20:40001 as the WhatsApp STUN flow 3 (peer-to-peer call leg)"


def test_shares_of_flows_and_bytes_reaching_meta():
    flows = make_flows({"is_meta": True, "service": "whatsapp.chat", "bytes_orig": 3000, "bytes_resp": 1000},
                       {"is_meta": False, "bytes_orig": 500, "bytes_resp": 500},
                       {"is_meta": True, "service": "meta.facebook", "bytes_orig": 0, "bytes_resp": 0})
    f = fd.compute(flows, None, {})
    assert (f.flows.part, f.flows.whole) == (2, 3)
    assert (f.bytes.part, f.bytes.whole) == (4000, 5000) and f.bytes.percent == pytest.approx(80.0)
    assert f.events is None and "events.parquet" in f.missing["events"]


def test_location_and_jurisdiction_are_counted_apart():
    """An EU edge run by a US company: inside the EU by location, outside by jurisdiction."""
    flows = make_flows(
        {"is_meta": True, "region": "eu", "remote_country": "DE", "operator_country": "US", "bytes_orig": 600, "bytes_resp": 0},
        {"is_meta": True, "region": "adequate", "remote_country": "US", "operator_country": "US", "bytes_orig": 300, "bytes_resp": 0},
        {"is_meta": True, "region": "third", "remote_country": "SG", "operator_country": "IE", "bytes_orig": 50, "bytes_resp": 0},
        {"is_meta": True, "region": "unknown", "bytes_orig": 50, "bytes_resp": 0},
        {"is_meta": False, "region": "third", "remote_country": "CN", "operator_country": "CN", "bytes_orig": 9999, "bytes_resp": 0})
    f = fd.compute(flows, None, SUMMARY)
    assert f.location == {"adequate": 300, "eu": 600, "third": 50, "unknown": 50}
    assert (f.outside_location.part, f.outside_location.whole) == (350, 1000)
    assert f.jurisdiction == {"IE": 50, "US": 900, "unknown": 50}
    assert (f.outside_jurisdiction.part, f.outside_jurisdiction.whole) == (900, 1000)


def test_call_peers_are_the_remote_ends_of_peer_flows():
    """remote_role (decided by the classify stage: tests/classify/test_roles.py) says which
    flows are direct call legs; the peer is their remote end, the originator when inbound."""
    flows = make_flows(
        {"is_meta": True, "service": "whatsapp.call", "l4": "udp", "resp_ip": "203.0.113.50", "resp_port": 50000,
         "catalog_rule": P2P, "remote_role": "peer", "remote_country": "FR", "duration_s": 20.0},
        {"is_meta": True, "service": "whatsapp.call", "l4": "udp", "resp_ip": "198.51.100.9", "resp_port": 3478,
         "stun_mapped": ["198.51.100.9:3478"], "remote_role": "peer", "duration_s": 5.0},
        {"is_meta": True, "service": "whatsapp.call", "l4": "udp", "resp_ip": "157.240.20.100", "resp_port": 3478,
         "stun_mapped": ["203.0.113.7:40001"], "remote_role": "relay"},  # a relay: not a peer
        {"is_meta": True, "service": "whatsapp.call", "l4": "udp", "orig_ip": "192.0.2.77", "orig_port": 61000,
         "resp_ip": "192.168.1.20", "resp_port": 40001, "remote_ip": "192.0.2.77",  # inbound: the peer called in
         "stun_mapped": ["192.0.2.77:61000"], "remote_role": "peer", "duration_s": 1.0})
    peers = fd.compute(flows, None, SUMMARY).peers
    assert list(peers["peer"]) == ["203.0.113.50", "198.51.100.9", "192.0.2.77"]
    assert list(peers["duration_s"]) == [20.0, 5.0, 1.0] and peers["country"].iloc[0] == "FR"


def test_events_and_counterparts_when_present():
    flows = make_flows({"is_meta": True, "service": "whatsapp.chat", "counterparts": 3,
                        "counterparts_basis": "chat-outbound-messages"},
                       {"is_meta": True, "service": "whatsapp.call", "counterparts": 1, "counterparts_basis": "p2p-peer"})
    events = make_events({"kind": "message"}, {"kind": "message"}, {"kind": "receipt"})
    f = fd.compute(flows, events, {})
    assert f.events == 3 and f.events_by_kind == {"message": 2, "receipt": 1}
    assert f.counterparts == {"chat-outbound-messages": 3, "p2p-peer": 1}
    assert f.people == {"call peers": 1, "recipient devices (at least)": 3, "outbound messages": 2}


def test_relays_are_counted_once_per_call_not_once_per_leg():
    # one call, three relays, four relay legs: every leg carries the call's 3
    legs = [{"is_meta": True, "service": "whatsapp.call", "counterparts": 3, "counterparts_basis": "call-relays",
             "remote_ip": ip, "resp_ip": ip} for ip in ("157.240.0.1", "157.240.0.2", "157.240.0.3", "157.240.0.1")]
    flows = make_flows(*legs)
    call = make_events({"kind": "call", "direction": "both", "detail": "duration_s=1.000 relays=3 p2p_legs=0 flows=0,1,2,3"})
    f = fd.compute(flows, call, {})
    assert f.counterparts == {"call-relays": 12}             # the per-flow sum: each relay once per leg
    assert f.infrastructure["call relays"] == 3 and f.people["call peers"] == 0
    assert fd.compute(flows, call, {"metadata": {"call_relays": 3, "calls": 1}}).infrastructure["calls"] == 1


def test_what_is_missing_says_why():
    flows = make_flows({"is_meta": None, "service": None}, {"is_meta": None, "service": None})
    f = fd.compute(flows, None, {})
    assert f.flows is None and "--no-classify" in f.missing["flows"]
    assert "metadata stage" in f.missing["counterparts"]
    geo_off = fd.compute(make_flows({"is_meta": True, "service": "whatsapp.chat"}), None, {})
    assert geo_off.location is None and "--no-geo" in geo_off.missing["location"]
    no_vantage = fd.compute(make_flows({"is_meta": True, "region": "eu"}), None, {})
    assert no_vantage.impossible is None and "--vantage" in no_vantage.missing["impossible"]
