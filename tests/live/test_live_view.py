"""The live view's figures and the closing lines (drops first), on the sample's flow table."""
import io
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

import flowscope
from flowscope.live.engines import Drops
from flowscope.live.options import parse_local_nets
from flowscope.live.session import LiveRun
from flowscope.live.view import LiveView, first_line, snapshot_stats, summary_lines

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "captures" / "sample_session.pcap"


@pytest.fixture(scope="module")
def sample(sample_default):
    return sample_default


def _with_region(table, values):
    if "region" in table.column_names:
        table = table.drop_columns(["region"])
    return table.append_column("region", pa.array(values, pa.string()))


def test_meta_breakdown_is_by_service_until_a_region_column_exists(sample):
    t = sample.table.drop_columns([c for c in ("region",) if c in sample.table.column_names])
    s = snapshot_stats(t, parse_local_nets(["10.0.0.0/8", "192.168.0.0/16", "fc00::/7"]))
    meta = sample.summary["meta"]
    assert (s["flows"], s["meta_flows"], s["meta_bytes"]) == (25, meta["flows"], meta["bytes"])
    assert s["by"] == "service"
    assert {name: flows for name, flows, _ in s["breakdown"]} == meta["flows_by_service"]
    assert s["devices"] >= 1   # the phone: its address is private
    assert [b for *_, b in s["breakdown"]] == sorted((b for *_, b in s["breakdown"]), reverse=True)

    regions = ["eu" if k % 2 else None for k in range(t.num_rows)]
    s = snapshot_stats(_with_region(t, regions), ())
    assert s["by"] == "region" and {r for r, *_ in s["breakdown"]} <= {"eu", "unknown"}
    meta_eu = t.filter(pc.fill_null(t["is_meta"], False))
    assert sum(f for _, f, _ in s["breakdown"]) == meta_eu.num_rows


def _run(sample, drops, **live):
    notes = {"interface": "eth1", "engine": "dumpcap 4.0.17", "packets_captured": 1037, "duration_s": 12.5,
             "stop_reason": "interrupted", "pcap_dir": None, **live}
    result = flowscope.AnalysisResult(sample.table, sample.captures, sample.settings,
                                      {**sample.notes, "live": notes})
    return LiveRun(result, drops, ())


def test_first_line_says_dropped_packets_before_anything_else(sample):
    lossy = _run(sample, Drops(kernel=40, interface=2, engine=1, received=1037, source="dumpcap"))
    lines = summary_lines(lossy, Path("out"))
    assert lines[0] == ("DROPPED 43 packets on eth1 (kernel 40, interface 2, dumpcap 1) of 1,080: "
                        "the flow table is incomplete")
    assert lines[-1] == "wrote out/flows.parquet and out/summary.json"
    clean = _run(sample, Drops(kernel=0, interface=0, engine=0, received=1037, source="dumpcap"))
    assert first_line(clean, "eth1").endswith("none dropped - stopped: interrupted")
    unknown = _run(sample, Drops(received=None), stop_reason="engine-failed")
    assert "drops unknown" in first_line(unknown, "eth1")
    assert any("25 flows" in ln for ln in summary_lines(clean, Path("out")))


def test_view_renders_the_figures(sample):
    from rich.console import Console
    console = Console(file=io.StringIO(), width=120, force_terminal=False)
    view = LiveView("eth1", Path("out"), console=console)
    view.stats = snapshot_stats(sample.table, ())

    class Engine:
        label, packets_seen = "dumpcap 4.0.17", 1037
    console.print(view.render(75, Engine()))
    text = console.file.getvalue()
    assert "eth1 with dumpcap 4.0.17, 0:01:15" in text and "1,037" in text
    assert f"{sample.summary['meta']['flows']:,}" in text and "Ctrl-C" in text


def test_view_of_a_rotated_run_shows_its_periods(sample):
    from types import SimpleNamespace

    from rich.console import Console

    from flowscope.live.rotation import Written
    console = Console(file=io.StringIO(), width=120, force_terminal=False)
    view = LiveView("eth1", Path("out"), console=console)
    view.rotation = SimpleNamespace(written=Written(periods=3, last=Path("out/2026-12-04T12-00-00Z")),
                                    current=SimpleNamespace(index=4, packets=1234, carried_in={"flows": 17}))

    class Engine:
        label, packets_seen = "dumpcap 4.0.17", 1037
    console.print(view.render(75, Engine()))
    assert "3 written, last 2026-12-04T12-00-00Z; period 4: 1,234 packets, 17 flows carried in" in console.file.getvalue()
