"""TCP reassembly and the frame walks: WhatsApp 3-byte headers, TLS records, gaps."""
from __future__ import annotations

import random

from hypothesis import given, settings, strategies as st

from flowscope.metadata.frames import client_version, reassemble, walk_tls, walk_wa

PROLOGUE = bytes.fromhex("45440001" "000004" "08090802" "57410502")  # ED 0 1, routing, WA 5 2
ISN = 1000


def frames_stream(sizes, prologue=b"") -> bytes:
    return prologue + b"".join(n.to_bytes(3, "big") + bytes([0xAB]) * n for n in sizes)


def segments(data: bytes, cuts, ts0=0, isn=ISN):
    """Cut `data` at the given offsets into (seq, ts, plen, bytes), one ts a segment."""
    bounds = [0, *sorted(set(c for c in cuts if 0 < c < len(data))), len(data)]
    return [(isn + a, ts0 + k, b - a, data[a:b]) for k, (a, b) in enumerate(zip(bounds, bounds[1:]))]


def sizes_of(walk):
    return [n for _first, n, _last in walk.frames]


def test_in_order_stream_and_prologue_is_not_a_frame():
    data = frames_stream([270, 54, 3], PROLOGUE)
    stream = reassemble(segments(data, [4, 30, 300]), ISN)
    assert stream.data == data and not stream.holed
    assert client_version(stream) == (5, 2)
    walk = walk_wa(stream, client=True, version=(5, 2))
    assert sizes_of(walk) == [270, 54, 3] and not walk.gap
    first, n, last = walk.frames[0]
    assert (first, last) == (len(PROLOGUE), len(PROLOGUE) + 3 + 270 - 1)


def test_times_are_those_of_the_first_and_last_byte_packets():
    data = frames_stream([10, 20])
    segs = [(ISN, 100, 2, data[:2]), (ISN + 2, 200, 11, data[2:13]), (ISN + 13, 300, 1, data[13:14]),
            (ISN + 14, 400, len(data) - 14, data[14:])]
    stream = reassemble(segs, ISN)
    walk = walk_wa(stream, client=False, version=(5, 2))
    assert [(stream.ts_at(f), stream.ts_at(last)) for f, _n, last in walk.frames] == [(100, 200), (300, 400)]


def test_retransmission_keeps_the_first_transmission_and_overlap_adds_only_new_bytes():
    data = frames_stream([40, 40])
    segs = [(ISN, 1, 30, data[:30]), (ISN, 2, 30, data[:30]),          # retransmitted whole
            (ISN + 20, 3, 30, data[20:50]),                             # overlaps 10 old bytes
            (ISN + 50, 4, len(data) - 50, data[50:])]
    stream = reassemble(segs, ISN)
    assert stream.data == data
    assert stream.ts_at(0) == 1 and stream.ts_at(25) == 1 and stream.ts_at(35) == 3 and stream.ts_at(60) == 4


def test_out_of_order_segments_fall_into_place():
    data = frames_stream([5, 500, 7])
    segs = segments(data, [3, 8, 100, 400])
    stream = reassemble([segs[2], segs[0], segs[4], segs[1], segs[3]], ISN)
    assert stream.data == data
    assert sizes_of(walk_wa(stream, client=False, version=(5, 2))) == [5, 500, 7]


def test_a_missing_segment_ends_the_walk_as_a_gap():
    data = frames_stream([10, 10, 10, 10])
    segs = segments(data, [13, 20, 26, 39])
    stream = reassemble(segs[:2] + segs[3:], ISN)  # bytes 20..26 never captured
    walk = walk_wa(stream, client=False, version=(5, 2))
    assert sizes_of(walk) == [10] and walk.gap and stream.holed


def test_a_lost_first_segment_is_a_gap_at_the_start_when_the_isn_is_known():
    data = frames_stream([10, 10])
    walk = walk_wa(reassemble(segments(data, [13])[1:], ISN), client=False, version=(5, 2))
    assert walk.frames == [] and walk.gap


def test_snaplen_cut_segment_is_a_gap():
    data = frames_stream([100])
    cut = [(ISN, 1, len(data), data[:60])]  # 60 of 103 bytes captured
    walk = walk_wa(reassemble(cut, ISN), client=False, version=(5, 2))
    assert walk.frames == [] and walk.gap


def test_an_incomplete_last_frame_at_the_end_of_the_capture_is_not_a_gap():
    data = frames_stream([10, 50])[:-5]
    walk = walk_wa(reassemble(segments(data, [20]), ISN), client=False, version=(5, 2))
    assert sizes_of(walk) == [10] and not walk.gap


def test_sequence_numbers_wrap_around():
    data = frames_stream([30, 30, 30])
    isn = 2**32 - 40
    segs = [((isn + a) % 2**32, k, len(p), p) for k, (a, p) in enumerate(((0, data[:50]), (50, data[50:])))]
    assert reassemble(segs, isn).data == data
    assert reassemble(segs, None).data == data  # without the SYN: from the lowest sequence number


def test_without_isn_the_stream_starts_at_the_lowest_sequence_number():
    data = frames_stream([8, 9])
    segs = segments(data, [11])
    assert reassemble([segs[1], segs[0]], None).data == data


def test_not_whatsapp_is_not_walked_and_a_cut_prologue_gives_no_frames():
    assert walk_wa(reassemble(segments(b"\x16\x03\x01\x00\x05hello", []), ISN), client=True, version=None) is None
    short = walk_wa(reassemble(segments(PROLOGUE[:4], []), ISN), client=True, version=None)
    assert short.frames == [] and not short.gap


def test_pre_noise_headers_carry_a_flag_nibble():
    # WA 1.5 (2015): 4-bit flag (0x8 = encrypted) + 20-bit length
    data = b"WA\x01\x05" + b"\x00\x00\x05" + b"x" * 5 + b"\x80\x00\x03" + b"y" * 3
    stream = reassemble(segments(data, []), ISN)
    assert client_version(stream) == (1, 5)
    assert sizes_of(walk_wa(stream, client=True, version=(1, 5))) == [5, 3]


def test_tls_records_and_a_desync():
    recs = b"".join(bytes([t, 3, 3]) + n.to_bytes(2, "big") + b"z" * n for t, n in ((22, 200), (20, 1), (23, 77)))
    walk = walk_tls(reassemble(segments(recs, [50, 210]), ISN))
    assert sizes_of(walk) == [200, 1, 77] and not walk.desync
    bad = walk_tls(reassemble(segments(recs + b"GET / HTTP/1.1\r\n", []), ISN))
    assert sizes_of(bad) == [200, 1, 77] and bad.desync


@settings(max_examples=200, deadline=None)
@given(sizes=st.lists(st.integers(min_value=0, max_value=3000), min_size=1, max_size=12),
       cuts=st.lists(st.integers(min_value=1, max_value=40000), max_size=25),
       seed=st.integers(min_value=0, max_value=2**32 - 1),
       isn=st.integers(min_value=0, max_value=2**32 - 1))
def test_any_segmentation_order_and_duplication_gives_the_same_frames(sizes, cuts, seed, isn):
    sizes = [270, *sizes]  # the client hello first (a zero-length first frame is no prologue)
    data = frames_stream(sizes, PROLOGUE)
    segs = [((s - ISN + isn) % 2**32, ts, n, p) for s, ts, n, p in segments(data, cuts, isn=ISN)]
    rng = random.Random(seed)
    shuffled = segs + rng.sample(segs, k=min(len(segs), 3))  # some retransmitted later
    rng.shuffle(shuffled)
    walk = walk_wa(reassemble(shuffled, isn), client=True, version=(5, 2))
    assert sizes_of(walk) == sizes and not walk.gap
