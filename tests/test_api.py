"""The library is the front door: analyze() with its progress hook, and a CLI that only calls it."""
from __future__ import annotations

import sys

import pytest

import flowscope
from conftest import SAMPLE
from flowscope import cli
from flowscope.errors import UsageError


def test_progress_reports_every_file_in_order_up_to_its_size(tmp_path):
    second = tmp_path / "second.pcap"
    second.write_bytes(SAMPLE.read_bytes())
    reports: list[flowscope.Progress] = []
    # small batches: several reports a file (the sample has 1,037 packets)
    result = flowscope.analyze([SAMPLE, second], on_progress=reports.append, batch_packets=256,
                               classify=False, geo=False)
    size = SAMPLE.stat().st_size
    assert result.errors == [] and len(result.flows) >= 25
    assert [p.file for p in reports] == sorted(p.file for p in reports) and {p.file for p in reports} == {0, 1}
    assert sum(p.file == 0 for p in reports) >= 4
    assert all(p.total_bytes == 2 * size and p.file_bytes == size for p in reports)
    assert [p.path for p in reports if p.file == 1][0] == str(second)
    read = [p.bytes_read for p in reports]
    assert read == sorted(read) and read[-1] == 2 * size
    assert all(0 < p.file_bytes_read <= size for p in reports)
    assert [p for p in reports if p.file == 0][-1].file_bytes_read == size


def test_bad_arguments_are_usage_errors():
    with pytest.raises(UsageError, match="on_progress must be callable"):
        flowscope.analyze(SAMPLE, on_progress=3)
    with pytest.raises(UsageError, match="need engine='dask'"):
        flowscope.analyze(SAMPLE, workers=2)
    with pytest.raises(UsageError, match="engine must be one of"):
        flowscope.analyze(SAMPLE, engine="spark")


def test_a_bad_vantage_fails_before_reading_even_without_geo(monkeypatch):
    """Settings is a leaf and takes the text; the geo stage rejects it when the run starts."""
    assert flowscope.Settings(vantage="Atlantis").vantage == "Atlantis"
    from flowscope import sources
    monkeypatch.setattr(sources, "open_capture", lambda *a, **k: pytest.fail("a file was read"))
    with pytest.raises(UsageError, match="--vantage: unknown place 'Atlantis'"):
        flowscope.analyze(SAMPLE, geo=False, classify=False, vantage="Atlantis")


def test_the_cli_analyses_through_analyze_and_hands_it_the_progress_bar(tmp_path, monkeypatch):
    calls = []
    real = flowscope.analyze

    def spy(paths, settings=None, **kwargs):
        calls.append((paths, settings, kwargs))
        return real(paths, settings, **kwargs)
    monkeypatch.setattr(flowscope, "analyze", spy)
    monkeypatch.setattr(cli, "PROGRESS_MIN_BYTES", 0)          # the sample counts as big
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    rc = cli.main(["analyze", str(SAMPLE), "--out", str(tmp_path / "o"), "--no-report", "--udp-idle", "60"])
    assert rc == 0 and (tmp_path / "o" / "flows.parquet").exists()
    (paths, settings, kwargs), = calls
    assert paths == [str(SAMPLE)] and settings.udp_idle_s == 60 and kwargs["engine"] == "local"
    assert callable(kwargs["on_progress"])
    rc = cli.main(["analyze", str(SAMPLE), "--out", str(tmp_path / "q"), "--no-report", "--no-progress"])
    assert rc == 0 and calls[-1][2]["on_progress"] is None


def test_write_with_release_lets_the_tables_go_after_writing_them(tmp_path):
    """write(release=True) (what the CLI does before the report is drawn): the files are
    the same as without it, and the result says clearly that its tables are gone."""
    import pyarrow.parquet as pq
    kept, released = flowscope.analyze([SAMPLE]), flowscope.analyze([SAMPLE])
    kept.write(tmp_path / "kept", report=False)
    released.write(tmp_path / "released", report=False, release=True)
    for name in ("flows.parquet", "events.parquet", "frames.parquet"):
        assert pq.read_table(tmp_path / "kept" / name).equals(pq.read_table(tmp_path / "released" / name))
    assert released.table is None and released.errors == [] and released.captures
    for gone in (lambda: released.summary, lambda: released.flows, lambda: released.events):
        with pytest.raises(RuntimeError, match="released its tables"):
            gone()
    assert kept.summary["flows"] == pq.read_table(tmp_path / "released" / "flows.parquet").num_rows
