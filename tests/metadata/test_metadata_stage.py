"""The metadata stage on the bundled sample reproduces its ground truth: every chat frame,
the scheduled chat events and their kinds, the call, media transfers, counterparts."""
from __future__ import annotations

import json

import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import SAMPLE

import flowscope
from flowscope import schema


@pytest.fixture(scope="module")
def result(sample_default):
    return sample_default


def _flow(result, t) -> int:
    f = result.flows
    hit = f[(f.l4 == t["l4"]) & (f.orig_port == t["orig_port"]) & (f.resp_ip == t["resp_ip"])
            & (f.resp_port == t["resp_port"])]
    assert len(hit) == 1
    return int(hit.flow_id.iloc[0])


def _chat_flows(truth):
    return [t for t in truth["flows"] if t["service"] == "whatsapp.chat"]


def test_every_chat_frame_exactly(result, truth):
    for t in _chat_flows(truth):
        fid = _flow(result, t)
        ours = result.frames[result.frames.flow_id == fid]
        got = [(x.ts_first, x.ts, x.direction, x.frame_bytes) for x in ours.itertuples()]
        want = [(pd.Timestamp(x["ts_first"]), pd.Timestamp(x["ts"]), x["direction"], x["frame_bytes"])
                for x in t["frames"]]
        assert got == want
        row = result.flows.set_index("flow_id").loc[fid]
        assert (row.frames_up, row.frames_down, row.frame_gaps) == (t["frames_up"], t["frames_down"], 0)
        assert set(ours.unit) == {"wa-frame"}
        for d in ("up", "down"):
            assert ours[ours.direction == d].frame_index.sort_values().tolist() == list(range(t[f"frames_{d}"]))


def test_only_chat_flows_are_walked(result, truth):
    walked = set(result.flows.loc[result.flows.frames_up.notna(), "flow_id"])
    assert walked == {_flow(result, t) for t in _chat_flows(truth)}
    assert set(result.frames.flow_id) == walked


def test_scheduled_chat_events_and_their_kinds(result, truth):
    ev = result.events
    for t in _chat_flows(truth):
        fid = _flow(result, t)
        ours = ev[(ev.flow_id == fid)].sort_values("ts_start")
        assert len(ours) == len(t["events"]), "one event per scheduled event, no more"
        for o, w in zip(ours.itertuples(), t["events"]):
            assert (o.kind, o.direction) == (w["kind"], w["direction"]), w
            assert (o.ts_start, o.ts_end) == (pd.Timestamp(w["ts_start"]), pd.Timestamp(w["ts_end"])), w
            assert o.frames == w["frames_up"] + w["frames_down"], w
            assert o.confidence in ("high", "medium", "low")
        assert ours.bytes.sum() == result.frames[result.frames.flow_id == fid].frame_bytes.sum()


def test_the_call_its_relays_and_its_peer(result, truth):
    want = truth["call"]["summary"]
    calls = result.events[result.events.kind == "call"]
    assert len(calls) == 1
    call = calls.iloc[0]
    assert (call.ts_start, call.ts_end) == (pd.Timestamp(want["ts_start"]), pd.Timestamp(want["ts_end"]))
    assert f"duration_s={want['duration_s']:.3f}" in call.detail
    assert f"relays={len(want['relays'])} p2p_legs={len(want['p2p_peers'])}" in call.detail
    f = result.flows.set_index("flow_id")
    legs = [int(x) for x in call.detail.split("flows=")[1].split(",")]
    assert len(legs) == want["legs"]
    assert sorted(f.loc[legs].remote_ip) == sorted(want["relays"] + want["p2p_peers"])
    for fid in legs:
        if f.loc[fid].remote_ip in want["p2p_peers"]:
            assert (f.loc[fid].counterparts, f.loc[fid].counterparts_basis) == (1, "p2p-peer")
        else:
            assert (f.loc[fid].counterparts, f.loc[fid].counterparts_basis) == (len(want["relays"]), "call-relays")
    assert result.summary["metadata"]["p2p_peers"] == len(want["p2p_peers"])


def test_media_transfers(result, truth):
    ev = result.events
    for t in truth["flows"]:
        if t["service"] != "whatsapp.media":
            continue
        e = ev[ev.flow_id == _flow(result, t)]
        assert len(e) == 1 and e.iloc[0].kind == "media"
        assert e.iloc[0].direction == t["media_direction"]
        assert e.iloc[0].bytes == t["bytes_orig"] + t["bytes_resp"]


def test_every_other_meta_flow_is_one_event(result):
    f, ev = result.flows, result.events
    other = f[f.is_meta & ~f.service.isin(["whatsapp.chat", "whatsapp.call", "whatsapp.media"])]
    flow_events = ev[ev.kind == "flow"]
    assert sorted(flow_events.flow_id) == sorted(other.flow_id)
    assert not set(ev.flow_id) - set(f[f.is_meta].flow_id)


def test_chat_counterparts_count_recipient_devices_of_outbound_messages(result, truth):
    from flowscope.metadata.events import recipient_devices
    f = result.flows.set_index("flow_id")
    ev = result.events
    total = 0
    for t in _chat_flows(truth):
        fid = _flow(result, t)
        sent = ev[(ev.flow_id == fid) & (ev.kind == "message") & (ev.direction == "up")]
        assert len(sent) == sum(e["kind"] == "message" and e["direction"] == "up" for e in t["events"])
        devices = 0
        for e in sent.itertuples():
            fields = dict(kv.split("=") for kv in e.detail.split())
            low, high = recipient_devices(int(fields["max_up"]))
            assert fields["devices"] == f"{low}-{high}"
            devices += low
        assert devices >= len(sent)
        row = f.loc[fid]
        assert (row.counterparts, row.counterparts_basis) == (devices, "chat-outbound-messages")
        total += devices
    assert result.summary["metadata"]["recipient_devices_min"] == total
    assert result.summary["metadata"]["outbound_messages"] == sum(
        e["kind"] == "message" and e["direction"] == "up" for t in _chat_flows(truth) for e in t["events"])
    assert set(f.counterparts_basis) == {"", "chat-outbound-messages", "call-relays", "p2p-peer"}


def test_event_ids_are_sequential_in_time(result):
    ev = result.events
    assert ev.event_id.tolist() == list(range(len(ev)))
    assert ev.ts_start.is_monotonic_increasing


def test_tables_written_with_their_schemas_and_no_payload(result, tmp_path):
    result.write(tmp_path)
    for name, cols in (("frames", schema.FRAMES), ("events", schema.EVENTS)):
        table = pq.read_table(tmp_path / f"{name}.parquet")
        assert table.schema.remove_metadata() == schema.arrow_schema(cols)
        assert table.num_rows == len(getattr(result, name))
    assert not any(t == "binary" for t in map(str, pq.read_schema(tmp_path / "frames.parquet").types))
    summary = json.loads((tmp_path / "summary.json").read_text())
    md = summary["metadata"]
    assert set(md) == set(schema.METADATA_SUMMARY_FIELDS)
    assert md["frames"]["flows_walked"] == 2 and md["calls"] == 1
    assert sum(md["events_by_kind"].values()) == len(result.events)


def test_no_classification_leaves_metadata_null():
    r = flowscope.analyze(SAMPLE, classify=False)
    assert r.flows.frames_up.isna().all() and r.frames.empty and r.events.empty
    assert "metadata" not in r.summary
