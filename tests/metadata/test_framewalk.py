"""The streamed walk of one direction (metadata/framewalk.py), segment by segment."""
from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowscope.metadata.frames import reassemble, walk_wa
from flowscope.metadata.framewalk import (
    LOCKED, NOISE, OFF, PENDING_LIMIT, PROLOGUE, SEARCH, Direction, stitch,
)
from flowscope.metadata.framesearch import lock_point
from fuzzing import examples, fuzz

SIZES = [36, 151, 36, 381, 60, 36, 2468, 46, 36, 200]


def _frames(rng, sizes):
    return [len(b).to_bytes(3, "big") + b for b in (rng.randbytes(n) for n in sizes)]


def _segments(frames, seq=1000, mss=1400):
    """One write a frame, cut into MSS-sized segments: (seq, ts, plen, data)."""
    out, t = [], 0
    for f in frames:
        for k in range(0, len(f), mss):
            part = f[k:k + mss]
            out.append((seq, t, len(part), part))
            seq += len(part)
        t += 1000
    return out


def _walk(segments, mode=SEARCH, **kw):
    d = Direction(mode, NOISE if mode == LOCKED else None, **kw)
    for s in segments:
        d.feed(*s)
    d.finish()
    return d


def test_a_stream_without_its_start_locks_on_its_frames():
    d = _walk(_segments(_frames(random.Random(1), SIZES)))
    assert d.sync == "resync" and [f[0] for f in d.frames] == SIZES and d.gaps == 0


def test_out_of_order_segments_fall_into_place():
    segs = _segments(_frames(random.Random(2), SIZES))
    segs[3], segs[4] = segs[4], segs[3]
    assert [f[0] for f in _walk(segs).frames] == SIZES


def test_a_snaplen_cut_inside_a_frame_keeps_the_walk_in_step():
    segs = _segments(_frames(random.Random(3), SIZES))
    k = next(i for i, s in enumerate(segs) if s[2] == 1400)  # the first segment of the 2468-byte frame
    seq, ts, plen, data = segs[k]
    segs[k] = (seq, ts, plen, data[:96])
    d = _walk(segs)
    assert d.gaps == 1 and [f[0] for f in d.frames] == SIZES


def test_an_impossible_header_starts_a_new_search():
    rng = random.Random(4)
    frames = _frames(rng, SIZES[:5]) + [b"\x00\x00\x05abcde"] + _frames(rng, SIZES[5:])
    d = _walk(_segments(frames))
    assert d.desync == 1 and [f[0] for f in d.frames][:5] == SIZES[:5]
    assert [f[0] for f in d.frames][-4:] == SIZES[-4:]


@pytest.mark.parametrize("seed", range(20))
def test_random_bytes_never_lock(seed):
    rng = random.Random(seed)
    data = rng.randbytes(60_000)
    ends = sorted(rng.sample(range(1, 60_000), 60))
    assert lock_point(data, ends) is None


def test_a_search_gives_up_on_a_long_stream_without_frames():
    rng = random.Random(5)
    d = _walk([(k * 1400, k, 1400, rng.randbytes(1400)) for k in range(1000)])
    assert d.mode == OFF and not d.frames


@pytest.mark.parametrize("cut", [1, 3, 5, 8])
def test_a_walk_continued_in_a_later_part_equals_one_pass(cut):
    segs = _segments(_frames(random.Random(6), SIZES * 3))
    one = _walk(segs)
    first, later = Direction(SEARCH), Direction(SEARCH, keep_head=True)
    for s in segs[:cut]:
        first.feed(*s)
    for s in segs[cut:]:
        later.feed(*s)
    later.finish()
    notes = Counter()
    joined = stitch(first, later, notes)
    joined.finish()
    assert joined.frames == one.frames and not notes


# --- against the whole-stream reference walk (metadata/frames.py) ----------------------


@fuzz
@settings(max_examples=examples(150), deadline=None)
@given(sizes=st.lists(st.integers(min_value=17, max_value=3000), min_size=1, max_size=12),
       cuts=st.lists(st.integers(min_value=1, max_value=40000), max_size=25),
       seed=st.integers(min_value=0, max_value=2**32 - 1),
       isn=st.integers(min_value=0, max_value=2**32 - 1))
def test_the_streamed_walk_gives_the_reference_walks_frames(sizes, cuts, seed, isn):
    """Any segmentation, reordering and retransmission: the same frames, sizes and times, as
    the whole-stream reference walk (which reassembles everything first)."""
    data = b"WA\x05\x02" + b"".join(len(b).to_bytes(3, "big") + b for b in (bytes([k % 251]) * n for k, n in
                                                                           enumerate(sizes)))
    bounds = sorted({c for c in cuts if c < len(data)} | {0, len(data)})
    segs = [((isn + a) % 2**32, 1000 + k, b - a, data[a:b]) for k, (a, b) in enumerate(zip(bounds, bounds[1:]))]
    rng = random.Random(seed)
    shuffled = segs + rng.sample(segs, k=min(len(segs), 3))
    rng.shuffle(shuffled)
    shuffled = [(s, 1000 + k, n, p) for k, (s, _t, n, p) in enumerate(shuffled)]  # capture order = time order
    d = Direction(PROLOGUE, base=isn)
    for s in shuffled:
        d.feed(*s)
    d.finish()
    stream = reassemble(shuffled, isn)
    ref = walk_wa(stream, client=True, version=(5, 2))
    assert [f[0] for f in d.frames] == [n for _first, n, _last in ref.frames] == sizes
    assert [(f[1], f[2]) for f in d.frames] == [(stream.ts_at(a), stream.ts_at(b)) for a, _n, b in ref.frames]


def test_out_of_order_bytes_beyond_the_pending_bound_become_a_gap():
    """A hole that never fills: the walk holds at most PENDING_LIMIT bytes waiting for it,
    then counts a gap and searches after it (a never-ending stream costs bounded memory)."""
    segs = _segments(_frames(random.Random(8), [1000] * 400))
    first, rest = segs[:3], segs[4:]  # segment 3 is never captured
    d = Direction(SEARCH)
    for s in first + rest:
        d.feed(*s)
        assert d.pending_bytes <= PENDING_LIMIT + 1400
    d.finish()
    assert d.gaps == 1 and len(d.frames) >= 395


@fuzz
@settings(max_examples=examples(40), deadline=None)
@given(data=st.binary(min_size=0, max_size=5000), cuts=st.lists(st.integers(1, 5000), max_size=12),
       seed=st.integers(0, 2**32 - 1))
def test_any_bytes_in_any_order_walk_without_error(data, cuts, seed):
    """Hostile bytes, segmented and reordered at will: every mode walks them without an
    error, and every frame it reports lies within the bytes it was given."""
    bounds = sorted({c for c in cuts if c < len(data)} | {0, len(data)})
    segs = [(a, k, b - a, data[a:b]) for k, (a, b) in enumerate(zip(bounds, bounds[1:]))]
    random.Random(seed).shuffle(segs)
    for mode in (SEARCH, PROLOGUE, LOCKED):
        d = Direction(mode, NOISE if mode == LOCKED else None, base=0 if mode != SEARCH else None)
        for s in segs:
            d.feed(*s)
        d.finish()
        assert sum(n + 3 for n, _a, _b in d.frames) <= len(data)
