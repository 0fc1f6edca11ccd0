"""`flowscope live` refuses bad input with one line and exit 2, before capturing anything."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from livetools import need_engine

pytestmark = pytest.mark.slow  # not in `make check` (whole analyses, browsers, live capture)

ROOT = Path(__file__).resolve().parents[2]


def _live(*args, env=None, code=None):
    cmd = [sys.executable, "-m", "flowscope.cli", "live", *map(str, args)] if code is None \
        else [sys.executable, "-c", code, *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={**os.environ, **(env or {})})


def _one_error_line(r):
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


@pytest.mark.parametrize("args, message", [
    (["--duration", "5", "--packets", "3"], "not allowed with argument"),
    (["--duration", "10d"], "--duration: expected a positive number"),
    (["--packets", "0"], "--packets must be >= 1"),
    (["--local-net", "10.0.0.0/33"], "--local-net: not an IPv4 or IPv6 network"),
    (["--rotate", "0"], "--rotate: expected a positive number of seconds"),
    (["--rotate", "abc"], "--rotate: expected a positive number of seconds"),
    (["--rotate", "0.5s"], "--rotate must be at least 1 s, a ring file's length (got 0.5 s)"),
    (["--rotate-packets", "0"], "--rotate-packets must be >= 1"),
    (["--rotate", "1h", "--rotate-packets", "5"], "not allowed with argument"),
])
def test_bad_arguments_exit_2_with_the_reason(tmp_path, args, message):
    r = _live("-i", "lo", "--out", tmp_path / "o", *args)
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert not (tmp_path / "o").exists()


def test_interface_and_out_are_required():
    r = _live("--out", "x")
    assert r.returncode == 2 and "--interface" in r.stderr


ENGINES = ["dumpcap", "scapy"]


@pytest.mark.parametrize("engine", ENGINES)
def test_missing_interface_is_one_line_naming_the_available_ones(tmp_path, engine):
    need_engine(engine)
    env = {"PATH": "/nonexistent"} if engine == "scapy" else None
    r = _live("-i", "nosuch0", "--out", tmp_path / "o", env=env)
    line = _one_error_line(r)
    assert r.returncode == 2
    assert line.startswith("flowscope: error: cannot capture on nosuch0: no such interface (available: ")
    assert "lo" in line
    assert not (tmp_path / "o").exists()


def test_output_directory_of_another_run_is_refused_before_capturing(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "summary.json").write_text(json.dumps({"captures": [{"sha256": "ab" * 32}]}))
    r = _live("-i", "nosuch0", "--out", out)   # the directory is checked first, the interface later
    assert r.returncode == 2 and "--force" in _one_error_line(r)
    kept = out / "pcap"
    kept.mkdir()
    (kept / "live_00001_x.pcapng").write_bytes(b"")
    r = _live("-i", "nosuch0", "--out", out, "--force", "--keep-pcap")
    assert r.returncode == 2 and "earlier run" in _one_error_line(r)


def test_rotated_periods_need_a_directory_without_a_single_analysis(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "flows.parquet").write_bytes(b"")
    r = _live("-i", "nosuch0", "--out", out, "--rotate", "1h", "--force")
    assert r.returncode == 2
    assert _one_error_line(r) == f"flowscope: error: {out}: holds a single analysis; rotated periods need a directory of their own"


def test_without_dumpcap_or_scapy_it_says_what_to_install(tmp_path):
    code = ("import sys; sys.modules['scapy'] = None  # as if scapy were not installed\n"
            "from flowscope.cli import main; sys.exit(main(['live', *sys.argv[1:]]))")
    r = _live("-i", "lo", "--out", tmp_path / "o", env={"PATH": "/nonexistent"}, code=code)
    assert r.returncode == 2
    line = _one_error_line(r)
    assert "needs dumpcap" in line and "apt install tshark" in line and "pip install scapy" in line
