"""Live capture when things go wrong, for real: a stalled engine that makes the kernel drop
packets, an engine that dies, a full disk, no capture permission, a bad filter."""
import os
import signal
import subprocess
import time

import pytest
from livetools import SAMPLE_PACKETS, live_summary, need_engine, start_live, wait_for
from livetools import veth_fixture  # noqa: F401  (the `veth` fixture)

pytestmark = pytest.mark.slow  # not in `make check` (whole analyses, browsers, live capture)

BPF = "ip or ip6"


def _error_lines(stderr: str) -> list[str]:
    assert "Traceback" not in stderr, stderr
    return [ln for ln in stderr.splitlines() if ln.startswith("flowscope: error:")]


def test_kernel_drops_are_counted_and_said_in_the_first_line(veth, tmp_path):
    need_engine("dumpcap")
    out = tmp_path / "out"
    live = start_live(veth, out, "--bpf", BPF)
    live.wait_capturing()
    dumpcap = live.engine_pid()
    os.kill(dumpcap, signal.SIGSTOP)   # a stalled reader: the 32 MiB kernel buffer overflows
    try:
        sent = veth.replay(pps=None, loop=150)   # ~155k packets, ~71 MB, as fast as possible
    finally:
        os.kill(dumpcap, signal.SIGCONT)
    time.sleep(1.0)
    live.signal(signal.SIGINT)
    rc, stdout, stderr = live.finish()
    assert rc == 0, stderr
    first = stdout.splitlines()[0]
    assert first.startswith("DROPPED ") and "the flow table is incomplete" in first

    s = live_summary(out)["live"]
    assert s["dropped_kernel"] > 0 and s["drops_source"] == "dumpcap"
    assert s["dropped_interface"] == 0 and s["dropped_engine"] == 0
    # every packet sent is accounted for: written to a file, or counted as dropped
    assert s["packets_received"] + s["dropped_kernel"] == sent
    assert s["packets_analysed"] == s["packets_captured"] == s["packets_received"] < sent
    assert f"DROPPED {s['dropped_kernel']:,} packets" in first


def test_engine_that_dies_leaves_what_it_captured_analysed_and_written(veth, tmp_path):
    need_engine("dumpcap")
    out = tmp_path / "out"
    live = start_live(veth, out, "--bpf", BPF, "--keep-pcap")
    live.wait_capturing()
    veth.replay(pps=2000)
    wait_for(lambda: len(list((out / "pcap").glob("live_*"))) >= 2)   # a file is complete
    os.kill(live.engine_pid(), signal.SIGKILL)
    rc, stdout, stderr = live.finish()
    assert rc == 1
    assert _error_lines(stderr) == ["flowscope: error: dumpcap stopped capturing (killed by SIGKILL)"]
    assert "drops unknown" in stdout.splitlines()[0]
    s = live_summary(out)
    assert s["live"]["stop_reason"] == "engine-failed" and "SIGKILL" in s["live"]["error"]
    assert s["live"]["dropped_kernel"] is None   # nobody could count them
    assert 0 < s["live"]["packets_analysed"] <= SAMPLE_PACKETS and s["flows"] > 0


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB tmpfs: the sample (490 KB) does not fit."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot mount a small tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.mark.parametrize("engine", ["dumpcap", "scapy"])
def test_full_disk_stops_with_one_line_and_keeps_what_was_captured(veth, tmp_path, small_disk, engine):
    need_engine(engine)
    out = tmp_path / "out"   # on the real disk: the outputs fit, the capture files do not
    live = start_live(veth, out, "--bpf", BPF, engine=engine, prefix=("env", f"TMPDIR={small_disk}"))
    live.wait_capturing()
    veth.replay(pps=2000)
    wait_for(lambda: live.proc.poll() is not None, timeout_s=60)   # it stops by itself
    rc, stdout, stderr = live.finish()
    assert rc == 1
    errors = _error_lines(stderr)
    assert len(errors) == 1 and "no space left on the file system holding the capture files" in errors[0]
    s = live_summary(out)
    assert s["live"]["stop_reason"] == "engine-failed"
    assert s["flows"] > 0 and 0 < s["live"]["packets_analysed"] < SAMPLE_PACKETS
    assert list(small_disk.iterdir()) == []   # the temp dir is removed all the same


NO_CAPTURE_CAPS = ("setpriv", "--bounding-set=-net_raw,-net_admin", "--inh-caps=-net_raw,-net_admin")


@pytest.mark.parametrize("engine, hint", [("dumpcap", "setcap cap_net_raw,cap_net_admin=eip"),
                                          ("scapy", "no CAP_NET_RAW")])
def test_without_capture_capabilities_one_line_names_what_is_missing(veth, tmp_path, engine, hint):
    need_engine(engine)
    out = tmp_path / "out"
    live = start_live(veth, out, engine=engine, prefix=NO_CAPTURE_CAPS)   # root, minus the capabilities
    rc, stdout, stderr = live.finish()
    assert rc == 2 and stdout == ""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"flowscope: error: cannot capture on {veth.capture}: ")
    assert "CAP_NET_RAW" in lines[0] and hint in lines[0]
    assert not out.exists()


@pytest.mark.parametrize("engine", ["dumpcap", "scapy"])
def test_bad_filter_is_refused_before_capturing(veth, tmp_path, engine):
    need_engine(engine)
    out = tmp_path / "out"
    rc, stdout, stderr = start_live(veth, out, "--bpf", "ip or bogus", "--keep-pcap", engine=engine).finish()
    assert rc == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("flowscope: error: bad capture filter (BPF) 'ip or bogus': ")
    assert "syntax error" in lines[0]
    assert not out.exists()
