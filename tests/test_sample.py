"""The bundled synthetic capture reproduces its generator's ground truth exactly."""
from __future__ import annotations


import pandas as pd
import pytest

import flowscope

COUNTS = ("pkts_orig", "pkts_resp", "bytes_orig", "bytes_resp", "payload_bytes_orig", "payload_bytes_resp")


@pytest.fixture(scope="module")
def result(sample_default):
    return sample_default


def _ours(result, t):
    f = result.flows
    hit = f[(f.l4 == t["l4"]) & (f.orig_ip == t["orig_ip"]) & (f.orig_port == t["orig_port"])
            & (f.resp_ip == t["resp_ip"]) & (f.resp_port == t["resp_port"])]
    assert len(hit) == 1, f"expected one flow for {t['l4']} {t['orig_ip']}:{t['orig_port']} -> {t['resp_ip']}:{t['resp_port']}"
    return hit.iloc[0]


def test_flow_count_and_packets(result, truth):
    assert len(result.flows) == truth["flows_total"]
    cap = result.summary["captures"][0]
    assert cap["packets_read"] == truth["packets_total"]
    assert cap["packets_decoded"] == truth["packets_total"]
    assert cap["pcapdroid_trailers"] == truth["packets_with_trailer"]
    assert cap["sha256"] == truth["capture_sha256"]
    assert cap["error"] is None


def test_every_flow_matches_truth(result, truth):
    for t in truth["flows"]:
        row = _ours(result, t)
        for col in COUNTS:
            assert row[col] == t[col], (col, t)
        assert row.ts_start == pd.Timestamp(t["ts_start"]), t
        assert row.ts_end == pd.Timestamp(t["ts_end"]), t


def test_handshake_rtt(result, truth):
    for t in truth["flows"]:
        row = _ours(result, t)
        if t.get("rtt_ms") is None:
            assert pd.isna(row.rtt_ms) or row.rtt_source == "stun", t  # STUN RTTs: tested below
        else:
            assert row.rtt_ms == pytest.approx(t["rtt_ms"], abs=1e-3)
            assert row.rtt_source == "syn/syn-ack"


def test_app_attribution_from_trailer(result, truth):
    for t in truth["flows"]:
        row = _ours(result, t)
        if t["app_uid"] is None:
            assert pd.isna(row.app_uid)
        else:
            assert row.app_uid == t["app_uid"]
            assert (row.app or "") == t["app"]


def test_tcp_states_of_closed_chat(result, truth):
    chat = [t for t in truth["flows"] if t["service"] == "whatsapp.chat" and t["resp_port"] == 5222]
    row = _ours(result, chat[0])
    assert row.tcp_state == "SF"
    assert row.end_reason == "fin"


def test_services_and_hostnames_match_truth(result, truth):
    for t in truth["flows"]:
        row = _ours(result, t)
        assert (row.service, row.hostname) == (t["service"], t["hostname"]), t
        assert row.is_meta == (t["service"] != "other"), t


def test_evidence_is_the_strongest_available(result, truth):
    by_service = {}
    for t in truth["flows"]:
        by_service.setdefault(t["service"], set()).add(_ours(result, t).evidence)
    assert by_service["whatsapp.chat"] == {"wa-prologue"}
    assert by_service["whatsapp.media"] == {"sni"}
    assert "stun" in by_service["whatsapp.call"]
    assert _ours(result, next(t for t in truth["flows"] if t["resp_port"] == 5222)).confidence == "high"


def test_call_peer_and_mapped_address(result, truth):
    f = result.flows
    peer = f[f.resp_ip.isin([p["ip"] for p in truth["call"]["peers"]])]
    assert len(peer) == 1 and peer.iloc[0].service == "whatsapp.call"
    mapped = {a for lst in f.stun_mapped for a in lst}
    assert {"203.0.113.7:40000", "203.0.113.7:40001"} <= mapped


def test_summary_counts_meta(result):
    meta = result.summary["meta"]
    assert meta["flows"] == int(result.flows.is_meta.sum())
    assert set(meta["flows_by_service"]) <= set(flowscope.schema.SERVICES)


def test_stun_rtt_of_relays_and_peer(result, truth):
    f = result.flows
    for hop in truth["call"]["relays"] + truth["call"]["peers"]:
        row = f[(f.resp_ip == hop["ip"]) & (f.resp_port == hop["port"])].iloc[0]
        assert row.rtt_source == "stun"
        assert row.rtt_ms == pytest.approx(hop["stun_binding_rtt_ms"], abs=1e-3)
