"""Folding parts together: every collector attribute, every CaptureStats field."""
from __future__ import annotations

from collections import Counter
from dataclasses import fields

import numpy as np
import pytest

from conftest import SAMPLE, split_pcap
from flowscope import Settings
from flowscope.engine import chunks, tasks
from flowscope.engine.combine import CAPTURE_RULES, merge_capture, merge_collector
from flowscope.pipeline import new_collector
from flowscope.sources import CaptureStats


@pytest.fixture(scope="module")
def part_collectors(tmp_path_factory):
    """The collectors of two real parts: the sample cut in two (payload waits for the merge)."""
    paths = split_pcap(SAMPLE, [500], tmp_path_factory.mktemp("halves"))
    return [tasks.read(chunks.PartSpec(str(p), k), k, Settings(), 2).collector for k, p in enumerate(paths)]


def _items(value):
    if isinstance(value, Counter):
        return set(value.items())
    if isinstance(value, (dict, set)):
        return set(value)
    if isinstance(value, list):
        return {id(v) for v in value}
    return None


def test_every_collector_attribute_is_merged(part_collectors):
    """Fails for an attribute that the merge drops, or that no part here fills (then
    read a capture that fills it, so that its merge is checked)."""
    merged = new_collector(Settings(), 2)
    for part in part_collectors:
        merge_collector(merged, part)
    for name, value in vars(merged).items():
        parts = [getattr(p, name) for p in part_collectors]
        if isinstance(value, Counter):
            assert value == sum(parts, Counter()), name
        elif _items(value) is not None:
            assert any(parts), f"PayloadCollector.{name}: no part filled it, its merge is unchecked"
            for p in parts:
                assert _items(p) <= _items(value), f"PayloadCollector.{name}: a part's entries are missing"
            if not isinstance(value, set):
                assert len(value) == sum(len(p) for p in parts), f"PayloadCollector.{name}: entries lost"
        elif hasattr(value, "merge"):  # a store with its own rule (dissect/streams.py StreamWalks)
            assert value.packets == sum(p.packets for p in parts) > 0, f"PayloadCollector.{name}: nothing merged"
            for p in parts:
                for key, walk in {**p.walks, **p.tentative}.items():
                    assert value.get(key) is walk, f"PayloadCollector.{name}: the walk of {key} is missing"
        else:
            assert all(p == value for p in parts), name


def test_a_value_the_merge_has_no_rule_for_stops_it(part_collectors):
    into, part = new_collector(Settings(), 2), new_collector(Settings(), 2)
    part.kept_stream_bytes = np.zeros(3)
    into.kept_stream_bytes = np.zeros(3)
    with pytest.raises(TypeError, match="kept_stream_bytes"):
        merge_collector(into, part)
    into, part = new_collector(Settings(), 2), new_collector(Settings(), 2)
    into.pending[(0, 1)] = part.pending[(0, 1)] = None  # keyed without the part: would collide
    with pytest.raises(ValueError, match="pending"):
        merge_collector(into, part)
    with pytest.raises(ValueError, match="keep"):
        merge_collector(new_collector(Settings(), 2), new_collector(Settings(), 1))


def test_every_capture_field_has_a_merge_rule():
    assert set(CAPTURE_RULES) == {f.name for f in fields(CaptureStats)}


def test_chunk_statistics_add_up():
    a, b = CaptureStats(path="x", format="pcap"), CaptureStats(path="x", format="pcap")
    a.stats[0], b.stats[0] = 3, 4
    a.duplicates, b.duplicates = 1, 2
    a.first_ts_ns, a.last_ts_ns, b.first_ts_ns, b.last_ts_ns = 10, 20, 15, 30
    a.link_types, b.link_types = {1}, {1, 101}
    a.apps, b.apps = {7: None}, {7: "WhatsApp", 8: "Signal"}
    b.error = "x: absurd record length"
    merge_capture(a, b)
    assert (a.stats[0], a.duplicates, a.first_ts_ns, a.last_ts_ns) == (7, 3, 10, 30)
    assert a.link_types == {1, 101} and a.apps == {7: "WhatsApp", 8: "Signal"} and a.error == b.error
