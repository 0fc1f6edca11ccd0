"""Merging parts: a record open at its part's end and not continued ends as in one pass."""
from __future__ import annotations

import struct

import pandas as pd

import flowscope
from conftest import SAMPLE, pcap_records, write_records


def _udp_record(ts_s: int, payload: bytes) -> bytes:
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28 + len(payload), 1, 0, 64, 17, 0,
                     bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
    frame = b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + struct.pack("!HHHH", 4000, 5000, 8 + len(payload), 0) + payload
    return struct.pack("<IIII", ts_s, 0, len(frame), len(frame)) + frame


def test_a_key_back_after_its_timeout_in_the_next_part_ends_the_earlier_flow_idle(tmp_path):
    header, _ = pcap_records(SAMPLE)
    records = [_udp_record(1_700_000_000, b"a"), _udp_record(1_700_000_400, b"b")]  # 400 s > UDP's 300
    whole = flowscope.analyze(write_records(tmp_path / "whole.pcap", header, records)).flows
    parts = [write_records(tmp_path / f"p{k}.pcap", header, [r]) for k, r in enumerate(records)]
    split = flowscope.analyze(parts).flows
    assert list(whole.end_reason) == ["idle", "eof"]
    cols = [c for c in whole.columns if c != "capture"]
    pd.testing.assert_frame_equal(split[cols], whole[cols])
