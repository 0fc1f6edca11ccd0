"""A crafted session aligns exactly as scripted: messages at known times, keep-alives every
25 s that are never messages, a media upload, and a scripted action with no traffic."""
from __future__ import annotations

import json

import pandas as pd
import pyarrow.parquet as pq
import pytest
from crafted import INBOUND, KEEPALIVES, NO_TRAFFIC_AT, OUTBOUND, SCENARIO, write

import flowscope
from flowscope import schema
from flowscope.cli import main
from flowscope.scenario import align, read_scenario

pytestmark = pytest.mark.slow  # not in `make check` (whole analyses, browsers, live capture)


@pytest.fixture(scope="module")
def crafted(tmp_path_factory):
    return write(tmp_path_factory.mktemp("crafted"))


@pytest.fixture(scope="module")
def result(crafted):
    return flowscope.analyze(crafted[0])


def test_keepalives_are_keepalives_at_their_cadence_never_messages(result):
    ev = result.events
    ka = ev[ev.kind == "keepalive"]
    t0 = pd.Timestamp("2026-03-02T09:00:00Z")
    assert [round((t - t0).total_seconds()) for t in ka.ts_start] == KEEPALIVES
    assert set(ka.confidence) == {"medium"}                 # the 25 s cadence was seen
    messages = ev[ev.kind == "message"]
    assert sorted(round((t - t0).total_seconds()) for t in messages.ts_start) == sorted(
        [int(s) for s in OUTBOUND] + [int(s) for s in INBOUND] + [165])


def test_every_action_aligns_as_scripted(crafted, result):
    a = align(read_scenario(crafted[1]), result.events, result.flows)
    rows = a.table.to_pylist()
    assert [r["action"] for r in rows] == [s[1] for s in SCENARIO]
    assert [r["matched"] for r in rows] == [True, True, True, True, True, False]
    ev = result.events.set_index("event_id")
    kinds = [[(ev.loc[i].kind, ev.loc[i].direction) for i in r["event_ids"]] for r in rows]
    assert kinds == [[("handshake", "both")], [("message", "up")], [("message", "down")], [("message", "up")],
                     [("media", "up"), ("message", "up")], []]
    assert all(abs(r["lag_s"]) < 0.1 for r in rows[:5])
    media = rows[4]
    assert media["services"] == ["whatsapp.chat", "whatsapp.media"] and media["bytes_up"] > 96_000
    assert rows[5]["lag_s"] is None and rows[5]["event_ids"] == [] and rows[5]["bytes_up"] == 0
    scores = a.scores()
    assert scores["by_event_kind"]["message"] == {"actions": 4, "actions_found": 4, "recall": 1.0, "events": 4,
                                                  "events_matched": 4, "precision": 1.0}
    assert scores["by_action"]["contact_added"] == {"actions": 1, "matched": 0, "median_lag_s": None}
    # keep-alives count as unexplained unless one lies within the 5 s tolerance of an action
    near = [k for k in KEEPALIVES if any(abs(k - s[0]) <= 5 for s in SCENARIO)]
    assert scores["unexplained_events"]["keepalive"] == len(KEEPALIVES) - len(near)
    assert NO_TRAFFIC_AT not in KEEPALIVES


def test_analyze_with_scenario_equals_align_afterwards_and_verifies(crafted, tmp_path, capsys):
    pcap, scenario = crafted
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["analyze", str(pcap), "--out", str(one), "--scenario", str(scenario), "--no-progress"]) == 0
    assert "5 of 6 actions matched within 5 s" in capsys.readouterr().out
    assert main(["analyze", str(pcap), "--out", str(two), "--no-progress", "-q"]) == 0
    assert not (two / "actions.parquet").exists()
    assert main(["align", str(two), str(scenario)]) == 0
    assert main(["verify", str(two)]) == 0
    a, b = pq.read_table(one / "actions.parquet"), pq.read_table(two / "actions.parquet")
    assert a.schema.remove_metadata() == schema.arrow_schema(schema.ACTIONS)
    assert a.remove_column(0).equals(b.remove_column(0)) and a.equals(b)
    s1, s2 = (json.loads((d / "summary.json").read_text())["scenario"] for d in (one, two))
    assert s1 == s2 and s1["sha256"] and s1["matched"] == 5
    manifest = json.loads((two / "manifest.json").read_text())
    assert manifest["scenario"]["sha256"] == s1["sha256"] and manifest["heuristics_version"] == "2026.12"
    html = (two / "report.html").read_text()
    assert "Scripted session" in html and "reply &lt;b&gt;bold&lt;/b&gt;" in html and "<b>bold" not in html
    assert (two / "charts" / "scripted_session.png").is_file()


def test_align_refuses_changed_evidence_and_bad_rows(crafted, tmp_path, capsys):
    pcap, scenario = crafted
    out = tmp_path / "out"
    assert main(["analyze", str(pcap), "--out", str(out), "--no-progress", "-q", "--no-report"]) == 0
    bad = tmp_path / "bad.csv"
    bad.write_text("time,action,peer,note\n2026-03-02T09:00:00Z,wave,,\n")
    assert main(["align", str(out), str(bad)]) == 2
    assert f"{bad}:2: unknown action 'wave'" in capsys.readouterr().err
    assert not (out / "actions.parquet").exists()
    assert main(["analyze", str(pcap), "--out", str(tmp_path / "x"), "--scenario", str(bad)]) == 2
    assert not (tmp_path / "x").exists()                     # refused before the capture was read
    capsys.readouterr()
    with open(out / "events.parquet", "ab") as fh:
        fh.write(b"x")
    assert main(["align", str(out), str(scenario)]) == 2
    assert "changed since the analysis" in capsys.readouterr().err
