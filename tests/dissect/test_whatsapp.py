"""WhatsApp prologue on the reassembled client stream, and the reassembly itself."""
from __future__ import annotations

import time

from hypothesis import given, settings, strategies as st
from fuzzing import examples, fuzz

from flowscope.dissect.evidence import reassemble
from flowscope.dissect.whatsapp import parse_prologue

ANDROID_2022 = bytes.fromhex("45440001000004" "08090802" "57410502" "00010e") + b"\x12" * 270
IOS_2019 = bytes.fromhex("454400010000040805080257410201" "0000ee") + b"\x12" * 10


def test_real_prologues():
    status, p = parse_prologue(ANDROID_2022)
    assert status == "ok" and p.edge_routing and p.version == (5, 2) and p.first_frame_bytes == 270
    status, p = parse_prologue(IOS_2019)
    assert status == "ok" and p.version == (2, 1) and p.first_frame_bytes == 238


def test_without_edge_routing_and_any_version():
    status, p = parse_prologue(b"WA\x06\x03\x00\x00\x24")
    assert status == "ok" and not p.edge_routing and p.version == (6, 3)


def test_split_like_real_clients_needs_more_then_matches():
    assert parse_prologue(ANDROID_2022[:4])[0] == "need-more"   # "ED\0\1" in its own segment
    assert parse_prologue(ANDROID_2022[:9])[0] == "need-more"
    assert parse_prologue(ANDROID_2022[:15])[0] == "ok"


def test_not_whatsapp():
    for stream in (b"\x16\x03\x01\x02\x00", b"GET / HTTP/1.1\r\n", b"<stream:stream", b"WA\x05\x02\x00\x00\x00",
                   b"ED\x00\x01\xff\xff\xff"):
        assert parse_prologue(stream)[0] == "no", stream


@fuzz
@settings(max_examples=examples(300), deadline=None)
@given(st.binary(max_size=64))
def test_random_and_cut_streams_never_raise(data):
    for stream in (data, ANDROID_2022[:len(data)], b"ED\x00\x01" + data, b"WA" + data):
        t = time.perf_counter()
        status, p = parse_prologue(stream)
        assert status in ("ok", "need-more", "no") and (p is not None) == (status == "ok")
        assert time.perf_counter() - t < 0.1


def test_reassembly_handles_reordering_retransmission_and_gaps():
    data = bytes(range(200))
    segs = [(1000 + 50, data[50:100]), (1000, data[:50]), (1000 + 20, data[20:60]), (1000 + 100, data[100:150])]
    assert reassemble(segs) == data[:150]
    assert reassemble([(1000, data[:50]), (1000 + 80, data[80:120])]) == data[:50]  # stops at the gap
    wrap = [(2**32 - 10, data[:10]), (0, data[10:30])]                             # sequence wrap-around
    assert reassemble(wrap) == data[:30]
    assert reassemble([]) == b""
