"""The dask engine's own cluster (no --scheduler), and its options as the user meets them."""
from __future__ import annotations

import subprocess
import sys

import pytest

import flowscope
from conftest import SAMPLE, split_pcap
from engine_checks import assert_same
from flowscope import UsageError

pytest.importorskip("distributed")


@pytest.mark.slow
def test_without_a_scheduler_a_local_cluster_runs_the_analysis(tmp_path):
    paths = [str(p) for p in split_pcap(SAMPLE, [400], tmp_path)]
    info: dict = {}
    from flowscope.engine.dask import run
    from flowscope import Settings
    finished = run(paths, Settings(), workers=2, chunk_bytes=60_000, info=info)
    assert info["workers"] == 2 and info["parts"] > len(paths)
    assert_same(flowscope.analyze(paths), flowscope.AnalysisResult.from_finished(finished, Settings()))


def test_engine_options_are_checked():
    with pytest.raises(UsageError, match="engine"):
        flowscope.analyze(SAMPLE, engine="spark")
    with pytest.raises(UsageError, match="engine='dask'"):
        flowscope.analyze(SAMPLE, scheduler="tcp://127.0.0.1:8786")
    with pytest.raises(UsageError, match="workers"):
        flowscope.analyze(SAMPLE, engine="dask", workers=0)


def test_cli_engine_options_need_the_dask_engine(tmp_path):
    r = subprocess.run([sys.executable, "-m", "flowscope.cli", "analyze", str(SAMPLE), "--out", str(tmp_path),
                        "--workers", "2"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.strip() == "flowscope: error: --workers need --engine dask"


def test_an_unreachable_scheduler_is_a_one_line_error(monkeypatch):
    import socket
    from flowscope.engine import dask as engine
    monkeypatch.setattr(engine, "CONNECT_TIMEOUT_S", 2)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    with pytest.raises(UsageError, match=f"dask scheduler tcp://127.0.0.1:{port}: cannot connect"):
        flowscope.analyze(SAMPLE, engine="dask", scheduler=f"tcp://127.0.0.1:{port}")
