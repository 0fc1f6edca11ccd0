"""The sample's scenario (written by captures/make_sample.py): every scripted action but the
contact added without traffic is matched; the report shows the scripted session."""
from __future__ import annotations

import pytest

import json

from conftest import ROOT, SAMPLE
from reportkit import browse, network_requests

import flowscope
from flowscope.scenario import read_scenario

pytestmark = pytest.mark.slow  # not in `make check` (whole analyses, browsers, live capture)

SCENARIO = ROOT / "captures" / "sample_session.scenario.csv"


def test_the_sample_scenario_aligns(tmp_path, key_file):
    actions = read_scenario(SCENARIO)
    assert len(actions) == 15 and sum(a.action == "contact_added" for a in actions) == 1
    out = tmp_path / "out"
    flowscope.analyze(SAMPLE).write(out, pseudonym_key=key_file, pdf=False, scenario=SCENARIO)
    rows = json.loads((out / "summary.json").read_text())["scenario"]
    assert (rows["actions"], rows["matched"]) == (15, 14)
    assert rows["by_action"]["contact_added"]["matched"] == 0
    assert rows["by_action"]["call_started"]["matched"] == 1 and rows["by_action"]["call_ended"]["matched"] == 1
    assert rows["by_event_kind"]["media"]["recall"] == 1.0 and rows["by_event_kind"]["message"]["recall"] == 1.0
    assert "keepalive" in rows["unexplained_events"]
    assert flowscope.report.verify(out) == []
    seen = browse(out / "report.html")
    assert seen["errors"] == [] and network_requests(seen, out / "report.html") == []
    assert sum(u.startswith("data:image/png") for u in seen["requests"]) == 7   # 6 charts + the session's
