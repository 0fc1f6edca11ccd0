"""Flow table semantics: exact merge across parts, duplicates, timeouts, roles, RTT."""
from __future__ import annotations

import struct

import pandas as pd
import pytest

import flowscope
from conftest import SAMPLE, pcap_records, split_pcap, write_records

def _frame(a: pd.DataFrame) -> pd.DataFrame:
    """Everything but `capture` (the file a flow started in) must survive any split."""
    return a[[c for c in a.columns if c != "capture"]].reset_index(drop=True)


@pytest.mark.parametrize("cuts", [[1], [500], [3, 4, 5, 600, 1000], list(range(50, 1037, 50))])
def test_split_files_merge_exactly(tmp_path, cuts, sample_default):
    whole = sample_default.flows
    parts = split_pcap(SAMPLE, cuts, tmp_path)
    merged = flowscope.analyze(parts).flows
    pd.testing.assert_frame_equal(_frame(merged), _frame(whole))


def test_split_files_merge_in_any_argument_order(tmp_path, sample_default):
    whole = sample_default.flows
    parts = split_pcap(SAMPLE, [300, 700], tmp_path)
    merged = flowscope.analyze(parts[::-1]).flows
    pd.testing.assert_frame_equal(_frame(merged), _frame(whole))


def test_split_corpus_chat_capture_merges_exactly(corpus, tmp_path):
    path = corpus / "pcap" / "whatsapp.pcap"
    whole = flowscope.analyze(path).flows
    merged = flowscope.analyze(split_pcap(path, [100, 101, 400], tmp_path)).flows
    pd.testing.assert_frame_equal(_frame(merged), _frame(whole))


def test_mirror_port_duplicates_are_suppressed_and_counted(tmp_path, sample_default):
    header, records = pcap_records(SAMPLE)
    doubled = []
    for rec in records:
        sec, usec = struct.unpack_from("<II", rec, 0)
        twin = struct.pack("<II", sec + (usec + 5) // 1_000_000, (usec + 5) % 1_000_000) + rec[8:]
        doubled += [rec, twin]
    path = write_records(tmp_path / "mirrored.pcap", header, doubled)
    original = sample_default.flows
    result = flowscope.analyze(path)
    flows = result.flows
    counted = ["pkts_orig", "pkts_resp", "bytes_orig", "bytes_resp", "payload_bytes_orig", "payload_bytes_resp"]
    pd.testing.assert_frame_equal(flows[counted], original[counted])
    assert (flows.duplicates == original.pkts_orig + original.pkts_resp).all()
    assert result.summary["captures"][0]["duplicates"] == len(records)
    off = flowscope.analyze(path, dedup_window_ms=0).flows
    assert (off.pkts_orig == 2 * original.pkts_orig).all()
    assert (off.duplicates == 0).all()


def test_idle_timeout_splits_and_can_be_raised(corpus):
    path = corpus / "pcap" / "4in4tunnel.pcap"  # 5 packets hours apart, inside IP-in-IP + QinQ
    assert len(flowscope.analyze(path).flows) == 5
    one = flowscope.analyze(path, udp_idle_s=1e6).flows
    assert len(one) == 1
    assert one.iloc[0].pkts_orig == 5
    assert (one.iloc[0].orig_ip, one.iloc[0].resp_port) == ("10.10.100.25", 17000)  # the inner flow


def _sample_chat_records(sample):
    header, records = pcap_records(SAMPLE)
    flows = sample.flows
    chat = flows[(flows.resp_port == 5222)].iloc[0]
    return header, records, chat


def _tcp_flags(rec: bytes) -> int | None:
    frame = rec[16:]
    if frame[12:14] != b"\x08\x00" or frame[14 + 9] != 6:
        return None
    ihl = (frame[14] & 15) * 4
    return frame[14 + ihl + 13]


def _is_port(rec: bytes, port: int) -> bool:
    frame = rec[16:]
    if frame[12:14] != b"\x08\x00" or frame[14 + 9] != 6:
        return False
    ihl = (frame[14] & 15) * 4
    sport, dport = struct.unpack_from("!HH", frame, 14 + ihl)
    return port in (sport, dport)


def test_rtt_from_synack_to_ack_when_syn_missing(tmp_path, sample_default):
    header, records, chat = _sample_chat_records(sample_default)
    kept = [r for r in records if not (_is_port(r, chat.orig_port) and _tcp_flags(r) == 0x02)]
    flows = flowscope.analyze(write_records(tmp_path / "nosyn.pcap", header, kept)).flows
    row = flows[flows.resp_port == 5222].iloc[0]
    assert row.orig_ip == chat.orig_ip  # the SYN-ACK's receiver is still the originator
    assert row.rtt_source == "syn-ack/ack"
    assert row.rtt_ms == pytest.approx(0.3, abs=1e-3)  # the generator's SYN-ACK -> ACK delay


def test_midstream_start_keeps_client_as_originator(tmp_path, sample_default):
    header, records, chat = _sample_chat_records(sample_default)
    kept = [r for r in records if not (_is_port(r, chat.orig_port) and _tcp_flags(r) in (0x02, 0x12))]
    flows = flowscope.analyze(write_records(tmp_path / "mid.pcap", header, kept)).flows
    row = flows[(flows.resp_port == 5222) | (flows.orig_port == 5222)].iloc[0]
    assert (row.orig_ip, row.resp_port) == (chat.orig_ip, 5222)
    assert row.tcp_state == "OTH"
    assert pd.isna(row.rtt_ms)


def test_port_reuse_after_close_starts_a_new_flow(tmp_path, sample_default):
    header, records, chat = _sample_chat_records(sample_default)
    conn = [r for r in records if _is_port(r, chat.orig_port)]
    last_ts = struct.unpack_from("<I", conn[-1], 0)[0]
    replay = [struct.pack("<I", struct.unpack_from("<I", r, 0)[0] - struct.unpack_from("<I", conn[0], 0)[0]
                          + last_ts + 10) + r[4:] for r in conn]  # same connection again, 10 s later
    flows = flowscope.analyze(write_records(tmp_path / "reuse.pcap", header, conn + replay)).flows
    assert len(flows) == 2
    assert list(flows.end_reason) == ["fin", "fin"]
    assert flows.iloc[0].pkts_orig == flows.iloc[1].pkts_orig == chat.pkts_orig


from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

pytestmark = pytest.mark.slow  # not in `make check` (whole analyses, browsers, live capture)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.integers(min_value=1, max_value=1036), min_size=1, max_size=6, unique=True))
def test_any_split_merges_exactly(tmp_path_factory, cuts, sample_default):
    """Flows, and the chat frames and events walked from streams joined across the files."""
    whole = sample_default
    parts = flowscope.analyze(split_pcap(SAMPLE, sorted(cuts), tmp_path_factory.mktemp("cut")))
    pd.testing.assert_frame_equal(_frame(parts.flows), _frame(whole.flows))
    pd.testing.assert_frame_equal(parts.frames, whole.frames)
    pd.testing.assert_frame_equal(parts.events, whole.events)
