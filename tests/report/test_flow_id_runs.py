"""The transfer record's flow ids in the report: runs of consecutive ids, the first runs
shown and the rest counted (transfers.json keeps every id)."""
from __future__ import annotations

from flowscope.report.html import flow_id_runs


def test_consecutive_ids_become_runs():
    assert flow_id_runs([0, 1, 2, 5, 7, 8]) == "0–2, 5, 7–8"
    assert flow_id_runs([4]) == "4" and flow_id_runs([]) == ""


def test_runs_past_the_shown_ones_are_counted_by_id():
    ids = [0, 1, 2, 10, 20, 21, 22, 23, 40]
    assert flow_id_runs(ids, shown=2) == "0–2, 10 and 5 more (transfers.json lists every one)"
    assert flow_id_runs(ids, shown=4) == "0–2, 10, 20–23, 40"


def test_many_scattered_ids_stay_short():
    ids = list(range(0, 80_000, 2))  # no two consecutive: 40,000 runs
    text = flow_id_runs(ids)
    assert text.startswith("0, 2, 4,") and text.endswith("and 39,960 more (transfers.json lists every one)")
    assert len(text) < 400
