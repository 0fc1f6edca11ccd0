"""Which flows are walked and how their streams are joined: captures cut into files (in
and out of time order; random cuts: tests/flows/test_table.py), capture gaps, WhatsApp Web over TLS with a ClientHello in two
segments, and lookalikes that must not be walked."""
from __future__ import annotations

import json
import struct

import pandas as pd
import pytest
from conftest import SAMPLE, SAMPLE_TRUTH, pcap_records, split_pcap, write_records

import flowscope
from flowscope.testing import ethernet, ipv4, tcp, write_pcap

def _same(result, whole) -> None:
    pd.testing.assert_frame_equal(result.frames, whole.frames)
    pd.testing.assert_frame_equal(result.events, whole.events)
    cols = ["frames_up", "frames_down", "frame_gaps", "frame_sync", "counterparts", "counterparts_basis"]
    pd.testing.assert_frame_equal(result.flows[cols], whole.flows[cols])


def test_files_in_and_out_of_time_order_give_the_single_file_frames(tmp_path, sample_default):
    parts = split_pcap(SAMPLE, [300, 700], tmp_path)
    _same(flowscope.analyze(parts), sample_default)
    backwards = flowscope.analyze(parts[::-1])   # the later file first: its walk is stitched, not read again
    _same(backwards, sample_default)
    frames = backwards.summary["metadata"]["frames"]
    assert not {k for k in frames if k.startswith("walk-stitch") or k.startswith("walk-continuation")}


def test_a_lost_segment_is_a_gap_and_the_walk_resynchronises_after_it(tmp_path):
    """Drop the server segment holding the 58- and 44-byte frames and the start of the
    2311-byte one: the walk down counts one gap, loses those three, and finds its step again
    at the next header (the 3870-byte frame's, in the next segment)."""
    truth = json.loads(SAMPLE_TRUTH.read_text())
    chat = next(t for t in truth["flows"] if t["resp_port"] == 5222)
    header, records = pcap_records(SAMPLE)
    victim = next(k for k, rec in enumerate(records)
                  if rec[16 + 14 + 12:16 + 14 + 16] == bytes([157, 240, 20, 53]) and len(rec) > 16 + 14 + 40 + 1000)
    result = flowscope.analyze(write_records(tmp_path / "lost.pcap", header, records[:victim] + records[victim + 1:]))
    f = result.flows[result.flows.resp_port == 5222].iloc[0]
    frames = result.frames[result.frames.flow_id == f.flow_id]
    down = frames[frames.direction == "down"].frame_bytes.tolist()
    want_down = [x["frame_bytes"] for x in chat["frames"] if x["direction"] == "down"]
    assert f.frame_gaps == 1 and f.frames_up == chat["frames_up"] and f.frame_sync == "prologue"
    lost = want_down.index(58)
    assert want_down[lost:lost + 3] == [58, 44, 2311]
    assert down == want_down[:lost] + want_down[lost + 3:]


# --- WhatsApp Web over TLS -----------------------------------------------------------------

PHONE, WEB = "192.168.1.20", "157.240.20.60"
T0 = 1_700_000_000_000_000_000
MS = 1_000_000


def _record(content_type: int, body: bytes) -> bytes:
    return bytes([content_type, 3, 3]) + struct.pack("!H", len(body)) + body


def _client_hello(sni: str, pad: int) -> bytes:
    """A TLS 1.2-framed ClientHello with `pad` bytes of padding extension before the SNI,
    so that a large pad pushes the server name into the second TCP segment."""
    host = sni.encode()
    exts = (struct.pack("!HH", 21, pad) + bytes(pad)
            + struct.pack("!HHHBH", 0, len(host) + 5, len(host) + 3, 0, len(host)) + host)
    body = (b"\x03\x03" + bytes(32) + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00"
            + struct.pack("!H", len(exts)) + exts)
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


def _tls_flow(sni: str, pad: int, sport: int, t0: int):
    """SYN handshake, a ClientHello cut at 1200 bytes, then application-data records."""
    c, s = 1000, 5000
    pkts = [(t0, PHONE, WEB, tcp(sport, 443, flags="S", seq=c - 1)),
            (t0 + 20 * MS, WEB, PHONE, tcp(443, sport, flags="SA", seq=s - 1, ack=c)),
            (t0 + 21 * MS, PHONE, WEB, tcp(sport, 443, flags="A", seq=c, ack=s))]
    hello = _client_hello(sni, pad)
    ups = [hello[:1200], hello[1200:], _record(23, bytes(150)), _record(23, bytes(60)) + _record(23, bytes(40))]
    downs = [_record(22, bytes(90)) + _record(20, b"\x01") + _record(23, bytes(2000)), _record(23, bytes(70))]
    t = t0 + 30 * MS
    for k, seg in enumerate(ups):
        pkts.append((t, PHONE, WEB, tcp(sport, 443, flags="PA", seq=c, ack=s, payload=seg)))
        c += len(seg)
        t += 5 * MS
        if k == 1 or k == 3:
            for d in downs[k // 3:k // 3 + 1]:
                pkts.append((t, WEB, PHONE, tcp(443, sport, flags="PA", seq=s, ack=c, payload=d)))
                s += len(d)
                t += 5 * MS
    return pkts


def _write(path, flows):
    pkts = sorted(p for f in flows for p in f)
    return write_pcap(path, [(ts, ethernet(ipv4(src, dst, 6, seg))) for ts, src, dst, seg in pkts])


def test_whatsapp_web_records_with_the_name_in_the_second_hello_segment(tmp_path):
    path = _write(tmp_path / "web.pcap", [_tls_flow("web.whatsapp.com", 1400, 40001, T0),
                                          _tls_flow("web.whatsapp.com", 10, 40002, T0 + 10**9),
                                          _tls_flow("www.example.com", 1400, 40003, T0 + 2 * 10**9)])
    result = flowscope.analyze(path)
    f = result.flows.set_index("orig_port")
    assert f.loc[[40001, 40002], "service"].tolist() == ["whatsapp.web"] * 2
    assert pd.isna(f.loc[40003, "frames_up"])                 # not WhatsApp Web: not walked
    hello = len(_client_hello("web.whatsapp.com", 1400)) - 5
    for port, hello_len in ((40001, hello), (40002, len(_client_hello("web.whatsapp.com", 10)) - 5)):
        frames = result.frames[result.frames.flow_id == f.loc[port, "flow_id"]]
        assert set(frames.unit) == {"tls-record"}
        assert frames[frames.direction == "up"].frame_bytes.tolist() == [hello_len, 150, 60, 40]
        assert frames[frames.direction == "down"].frame_bytes.tolist() == [90, 1, 2000, 70]
        assert (f.loc[port, "frames_up"], f.loc[port, "frames_down"], f.loc[port, "frame_gaps"]) == (4, 4, 0)
    first = result.frames[result.frames.flow_id == f.loc[40001, "flow_id"]].iloc[0]
    assert first.ts_first == pd.Timestamp(T0 + 30 * MS, tz="UTC")      # the hello's first segment
    assert first.ts == pd.Timestamp(T0 + 35 * MS, tz="UTC")            # ... completed by the second


def test_a_stream_that_only_looks_like_the_prologue_is_not_walked(tmp_path):
    """First bytes "WA" but no WhatsApp evidence label: the stream is kept, never walked."""
    pkts = [(T0, PHONE, WEB, tcp(40010, 8080, flags="S", seq=0)),
            (T0 + MS, WEB, PHONE, tcp(8080, 40010, flags="SA", seq=0, ack=1)),
            (T0 + 2 * MS, PHONE, WEB, tcp(40010, 8080, flags="PA", seq=1, ack=1, payload=b"WAIT FOR IT\r\n"))]
    result = flowscope.analyze(_write(tmp_path / "wait.pcap", [pkts]))
    assert result.flows.frames_up.isna().all() and result.frames.empty


@pytest.mark.parametrize("cut", [1037 // 2])
def test_snapshot_keeps_the_streams(tmp_path, cut, sample_default):
    from flowscope.pipeline import Analysis
    parts = split_pcap(SAMPLE, [cut], tmp_path)
    live = Analysis(flowscope.Settings(), parts=None)
    live.add(str(parts[0]))
    early = live.finish(final=False)
    live.add(str(parts[1]))
    assert early.frames.num_rows < len(sample_default.frames)
    pd.testing.assert_frame_equal(live.finish().frames.to_pandas(), sample_default.frames)


def test_cloud_api_records_walked_from_a_split_hello_only_for_a_platform_host(tmp_path):
    """A Cloud API name in the hello's second segment still marks the record (issue 13); the
    walk is reported only where the flow is the Cloud API (a platform host), else dropped."""
    path = _write(tmp_path / "graph.pcap", [_tls_flow("graph.facebook.com", 1400, 40011, T0),
                                            _tls_flow("waba-v2.360dialog.io", 10, 40012, T0 + 10**9)])
    plain = flowscope.analyze(path).flows.set_index("orig_port")
    assert plain.loc[40011, "service"] == "meta.other" and pd.isna(plain.loc[40011, "frames_up"])
    assert plain.loc[40012, "service"] == "whatsapp.bsp" and plain.loc[40012, "frames_up"] == 4
    given = flowscope.analyze(path, platform_hosts=[PHONE])
    f = given.flows.set_index("orig_port")
    assert f.loc[40011, "service"] == "whatsapp.business_api"
    assert (f.loc[40011, "frames_up"], f.loc[40011, "frames_down"]) == (4, 4)
    calls = given.events[(given.events.flow_id == f.loc[40011, "flow_id"]) & (given.events.kind == "api-call")]
    # 150 B ends no handshake (Finished is <= 80 B), 60 B does; 40 B is below a request's size
    assert calls.empty
