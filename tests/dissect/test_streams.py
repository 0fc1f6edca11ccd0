"""Walked streams per record (dissect/streams.py) and their merge across parts."""
from __future__ import annotations

import pandas as pd
import pytest
from conftest import pcap_records, write_records

import flowscope
from flowscope.dissect.streams import RESYNC, WEB, RecordWalk, StreamWalks
from metadata.test_walked import T0, _tls_flow, _write


def test_a_client_hello_pending_at_the_end_of_a_part_is_walked_with_its_continuation(tmp_path):
    """The hello's first segment ends part one (its name is in the second): the tentative
    walk is kept at the part's end and the next part's record continues it."""
    whole_path = _write(tmp_path / "web.pcap", [_tls_flow("web.whatsapp.com", 1400, 40001, T0)])
    header, records = pcap_records(whole_path)
    parts = [write_records(tmp_path / "a.pcap", header, records[:4]),
             write_records(tmp_path / "b.pcap", header, records[4:])]
    whole, split = flowscope.analyze(whole_path), flowscope.analyze(parts)
    assert split.flows.service.tolist() == ["whatsapp.web"]
    assert not whole.frames.empty
    pd.testing.assert_frame_equal(split.frames, whole.frames)
    pd.testing.assert_frame_equal(split.flows[["frames_up", "frames_down", "frame_gaps", "frame_sync"]],
                                  whole.flows[["frames_up", "frames_down", "frame_gaps", "frame_sync"]])


def test_parts_that_share_a_key_do_not_merge():
    a, b = StreamWalks(), StreamWalks()
    a.walks[(0, 1)] = RecordWalk(WEB)
    b.tentative[(0, 1)] = RecordWalk(WEB)
    b.walks[(0, 1)] = RecordWalk(RESYNC)
    with pytest.raises(ValueError, match="share keys"):
        a.merge(b)


def test_merged_parts_keep_every_walk_and_count():
    a, b = StreamWalks(), StreamWalks()
    a.walks[(0, 1)], a.packets = RecordWalk(WEB), 3
    b.tentative[(1, 4)], b.packets = RecordWalk(WEB), 2
    a.merge(b)
    assert a.get((0, 1)) is not None and a.get((1, 4)) is not None and a.packets == 5
