"""Charts: DataFrame in, Figure out; the same input gives the same PNG bytes; missing data
gives a 'not available' panel, never an exception."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pandas as pd
import pytest
from matplotlib.figure import Figure

from flowscope.report import charts
from report_reference import geo_check_points as reference_points
from report_reference import png_bytes as savefig_png
from reportkit import ROOT, make_events, make_flows, synthetic_events

CAPTION = "Data: test.pcap (SHA-256 0123456789ab…), captured 2026-03-02 09:00:00 – 09:10:00 UTC"


def _flows():
    return make_flows(
        {"is_meta": True, "service": "whatsapp.chat", "region": "eu", "remote_country": "DE", "remote_ip": "157.240.0.1",
         "operator_country": "US", "max_distance_km": 800.0,
         "geo_checks": "pop:FRA=DE 520 km consistent; dbip-city-lite=US 6500 km impossible"},
        {"is_meta": True, "service": "whatsapp.call", "l4": "udp", "region": "unknown", "resp_ip": "203.0.113.50",
         "remote_ip": "203.0.113.50", "catalog_rule": "(peer-to-peer call leg)", "remote_role": "peer", "duration_s": 30.0},
        {"is_meta": False, "service": "other", "region": "adequate", "remote_country": "US", "remote_ip": "8.8.8.8"})


def _all(flows, events):
    return {
        "timeline": charts.event_timeline(events, CAPTION),
        "destinations": charts.destinations(flows, events, CAPTION),
        "services": charts.services(flows, events, CAPTION),
        "rtt_bounds": charts.rtt_bounds(flows, CAPTION),
        "activity": charts.activity_per_hour(events, flows, CAPTION),
        "call_peers": charts.call_peer_exposure(flows, CAPTION),
    }


def test_every_chart_is_a_figure_with_title_axis_units_and_caption():
    flows = _flows()
    events = make_events({"flow_id": 0}, {"flow_id": 0, "kind": "receipt", "direction": "down"},
                         {"flow_id": 1, "service": "whatsapp.call", "kind": "call", "direction": "both"})
    for name, fig in _all(flows, events).items():
        assert isinstance(fig, Figure), name
        assert fig._suptitle.get_text(), name
        assert fig._supxlabel.get_text().startswith("Data: test.pcap"), name
        labels = [ax.get_xlabel() for ax in fig.axes if ax.axison]
        assert labels and all("(" in label for label in labels), (name, labels)  # units in brackets


def test_same_input_gives_the_same_png_bytes():
    flows = _flows()
    events = make_events({"flow_id": 0}, {"flow_id": 1, "service": "whatsapp.call", "kind": "call"})
    first = {k: charts.png_bytes(f) for k, f in _all(flows, events).items()}
    again = {k: charts.png_bytes(f) for k, f in _all(flows.copy(), events.copy()).items()}
    assert first == again
    assert all(b.startswith(b"\x89PNG") and b"Software" not in b for b in first.values())


def test_png_bytes_are_what_savefig_writes():
    """One layout pass and one draw give savefig's bytes (its layout pass, empty draw and draw)."""
    flows = _flows()
    events = make_events({"flow_id": 0}, {"flow_id": 0, "kind": "receipt", "direction": "down"},
                         {"flow_id": 1, "service": "whatsapp.call", "kind": "call", "direction": "both"})
    for name, fig in _all(flows, events).items():
        assert charts.png_bytes(fig) == savefig_png(_all(flows, events)[name]), name
    unavailable = charts.destinations(make_flows({"is_meta": True}), None, CAPTION)
    assert charts.png_bytes(unavailable) == savefig_png(charts.destinations(make_flows({"is_meta": True}), None,
                                                                            CAPTION))


def test_png_bytes_do_not_depend_on_the_process(tmp_path):
    """Another interpreter (other hash seed, fresh font cache lookup) draws the same bytes."""
    script = ("import sys, hashlib; sys.path[:0] = ['tests', 'tests/report']\n"
              "from test_charts import _flows; from flowscope.report import charts\n"
              "print(hashlib.sha256(charts.png_bytes(charts.services(_flows(), None, 'c'))).hexdigest())\n")
    env = {**os.environ, "PYTHONHASHSEED": "12345", "MPLBACKEND": "pdf"}
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    here = hashlib.sha256(charts.png_bytes(charts.services(_flows(), None, "c"))).hexdigest()
    assert out.stdout.strip() == here


def test_missing_tables_and_columns_give_not_available_panels():
    no_geo = make_flows({"is_meta": True, "service": "whatsapp.chat"})
    no_labels = make_flows({"is_meta": None, "service": None})
    figs = [charts.event_timeline(None, CAPTION, reason="no events.parquet"),
            charts.destinations(no_geo, None, CAPTION), charts.services(no_labels, None, CAPTION),
            charts.rtt_bounds(no_geo, CAPTION), charts.call_peer_exposure(no_labels, CAPTION),
            charts.activity_per_hour(None, no_labels, CAPTION)]
    texts = [" ".join(t.get_text() for ax in f.axes for t in ax.texts) for f in figs]
    assert all("not available" in t for t in texts[:5]), texts
    for fig in figs:
        charts.png_bytes(fig)  # draws


def test_capture_strings_are_text_never_mathtext():
    """A '$' in a country, pseudonym or host name would start mathtext (and can raise)."""
    flows = make_flows({"is_meta": True, "service": "whatsapp.call", "l4": "udp", "region": "eu",
                        "remote_country": "$\\frac{1}{0}$", "remote_ip": "$\\undefinedmacro$",
                        "catalog_rule": "(peer-to-peer call leg)", "remote_role": "peer"})
    for fig in (charts.destinations(flows, None, "$x$"), charts.call_peer_exposure(flows, "<b>$y$</b>")):
        assert charts.png_bytes(fig).startswith(b"\x89PNG")


def test_rtt_chart_reads_every_checked_answer():
    points = charts.geo_check_points(_flows())
    assert list(points["verdict"]) == ["consistent", "impossible"]
    assert list(points["source"]) == ["pop:FRA", "dbip-city-lite"]
    assert points["distance_km"].tolist() == [520.0, 6500.0] and set(points["bound_km"]) == {800.0}


def test_rtt_points_equal_the_itertuples_builder():
    flows = make_flows(*({"remote_ip": f"157.240.0.{i % 7}", "max_distance_km": [None, 100.0 + i][i % 2],
                          "geo_checks": ["", f"pop:FRA=DE {i}0 km consistent; dbip=US 9000 km impossible",
                                         "unparsable"][i % 3]} for i in range(30)))
    assert charts.geo_check_points(flows).equals(reference_points(flows))
    assert len(charts.geo_check_points(flows)) > 0


def test_without_a_vantage_point_the_bounds_are_shown_unchecked():
    flows = make_flows({"is_meta": True, "remote_ip": "157.240.0.1", "max_distance_km": 900.0, "geo_checks": ""})
    fig = charts.rtt_bounds(flows, CAPTION)
    assert "not checked" in fig.axes[0].get_title(loc="left")


@pytest.mark.parametrize("hours", [1, 30])
def test_activity_per_hour_has_one_bar_an_hour(hours):
    flows = make_flows({"is_meta": True}, {"is_meta": True, "ts_start": pd.Timestamp("2026-03-02 09:00", tz="UTC")
                                           + pd.Timedelta(hours=hours - 1)})
    events = synthetic_events(flows).to_pandas()
    fig = charts.activity_per_hour(events, flows, CAPTION)
    bars = {round(p.get_x(), 6) for p in fig.axes[0].patches}
    assert len(bars) == hours


def test_activity_over_years_is_binned_coarser_not_drawn_an_hour_a_bar():
    """Captures from different years together (the corpus and the sample) span ~60,000 hours."""
    flows = make_flows({"is_meta": True, "ts_start": pd.Timestamp("2019-06-26 09:00", tz="UTC")},
                       {"is_meta": True, "ts_start": pd.Timestamp("2026-03-02 09:00", tz="UTC")})
    events = synthetic_events(flows).to_pandas()
    fig = charts.activity_per_hour(events, flows, CAPTION)
    kinds = max(1, events["kind"].nunique())
    assert 0 < len(fig.axes[0].patches) <= charts.MAX_BARS * kinds
    assert "Activity per week (the captures span 350 weeks)" == fig.axes[0].get_title(loc="left")
