"""Reading dumpcap: its stderr (files, counters, drops) and its errors, as dumpcap 4.0 prints them."""
import pytest

from flowscope.live.dumpcap import StderrState, explain, parse_drop_line
from flowscope.live.engines import Drops, drops_from_isb
from flowscope.sources import CaptureStats

pytestmark = pytest.mark.slow  # not in `make check` (whole analyses, browsers, live capture)

# Recorded from dumpcap 4.0.17: a ring capture stopped by -c 1037. The counter rewrites its
# line with \r, and the next "File:" follows it on the same line.
RING_RUN = (b"Capturing on 'vb'\nFile: /tmp/w/live_00001_20261128062732.pcapng\n"
            b"File: /tmp/w/live_00002_20261128062733.pcapng\n"
            b"\rPackets: 456 File: /tmp/w/live_00003_20261128062735.pcapng\n"
            b"\rPackets: 956 \rPackets: 1037 \rPackets captured: 1037\n"
            b"Packets received/dropped on interface 'vb': 1037/7 (pcap:5/dumpcap:1/flushed:1/ps_ifdrop:3) (99.3%)\n")
PERMISSION = """dumpcap: cap_set_proc() fail return: Operation not permitted
Capturing on 'vb'
dumpcap: You do not have permission to capture on device "vb".
(socket: Operation not permitted)
Please check to make sure you have sufficient permissions.""".splitlines()
NO_DEVICE = ["Capturing on 'nosuch'", 'dumpcap: There is no device named "nosuch".', "(No such device exists)"]
BAD_FILTER = ["Capturing on 'vb'", "dumpcap: Invalid capture filter \"ip or bogus\" for interface 'vb'.", "",
              "That string isn't a valid capture filter (syntax error in filter expression).",
              "See the User's Guide for a description of the capture filter syntax."]
DISK_FULL = ["dumpcap: Not all the packets could be written to the file to which the capture was being saved",
             '("/tmp/small/x_00003_20261128062829.pcapng") because there is no space left on the file system',
             "on which that file resides."]


@pytest.mark.parametrize("chunk_bytes", [1, 7, 4096])
def test_stderr_stream_gives_files_counters_and_drops_in_any_chunking(chunk_bytes):
    state = StderrState()
    for k in range(0, len(RING_RUN), chunk_bytes):
        state.feed(RING_RUN[k:k + chunk_bytes])
    state.close()
    assert [f.rsplit("_", 2)[1] for f in state.files] == ["00001", "00002", "00003"]
    assert state.started.is_set()
    assert state.packets_seen == state.captured == 1037
    assert state.final == Drops(kernel=5, interface=3, engine=2, received=1037, source="dumpcap")


def test_drop_line_maps_pcap_to_kernel_ifdrop_to_interface_and_the_rest_to_the_engine():
    d = parse_drop_line("Packets received/dropped on interface 'eth1': 120000/1500 "
                        "(pcap:1400/dumpcap:0/flushed:100/ps_ifdrop:12) (98.8%)")
    assert (d.kernel, d.interface, d.engine, d.received, d.total) == (1400, 12, 100, 120000, 1512)
    assert d.known
    # before ps_ifdrop was printed (Wireshark < 3.x): interface drops read as 0
    old = parse_drop_line("Packets received/dropped on interface 'eth1': 10/2 (pcap:2/dumpcap:0/flushed:0)")
    assert (old.kernel, old.interface, old.engine) == (2, 0, 0)
    assert parse_drop_line("Packets captured: 10") is None


def test_permission_error_names_the_missing_capabilities_and_the_fix():
    msg = explain(PERMISSION, "vb", None, "/usr/bin/dumpcap")
    assert msg.startswith("cannot capture on vb: ") and "\n" not in msg
    assert "CAP_NET_RAW" in msg and "setcap cap_net_raw,cap_net_admin=eip /usr/bin/dumpcap" in msg


def test_missing_interface_filter_and_disk_errors_become_one_line():
    assert "no such interface" in explain(NO_DEVICE, "nosuch", None, "dumpcap")
    bad = explain(BAD_FILTER, "vb", "ip or bogus", "dumpcap")
    assert bad == "bad capture filter (BPF) 'ip or bogus': syntax error in filter expression"
    full = explain(DISK_FULL, "vb", None, "dumpcap", "/tmp/small")
    assert "no space left" in full and "/tmp/small" in full and "\n" not in full
    # dumpcap's harmless capability notice alone is no error
    assert explain(["dumpcap: cap_set_proc() fail return: Operation not permitted", "Capturing on 'vb'"],
                   "vb", None, "dumpcap") is None
    assert explain(["dumpcap: something new went wrong."], "vb", None, "dumpcap") == "dumpcap: something new went wrong"


def test_isb_counters_are_cumulative_so_the_largest_counts():
    caps = [CaptureStats(path="a", interface_stats={"0": {"ifrecv": 100, "ifdrop": 2, "osdrop": 1}}),
            CaptureStats(path="b", interface_stats={"0": {"ifrecv": 250, "ifdrop": 5, "osdrop": 4},
                                                    "1": {"ifrecv": 10, "ifdrop": 1}}),
            CaptureStats(path="c")]
    d = drops_from_isb(caps)
    assert (d.kernel, d.interface, d.engine, d.received, d.source) == (4, 6, 0, 260, "pcapng ISB")
    assert drops_from_isb([CaptureStats(path="x")]) is None


def test_closed_files_are_handed_over_once_and_then_forgotten():
    from types import SimpleNamespace

    from flowscope.live.dumpcap import DumpcapEngine
    engine = DumpcapEngine.__new__(DumpcapEngine)
    engine.err = StderrState()
    engine.proc = SimpleNamespace(poll=lambda: None)           # still capturing
    engine.reader = SimpleNamespace(is_alive=lambda: True)
    engine.err.feed(RING_RUN)
    got = engine.closed_files()
    assert [f.rsplit("_", 2)[1] for f in got] == ["00001", "00002"]   # the third is still open
    assert engine.closed_files() == [] and len(engine.err.files) == 1  # a run of days keeps one name
    engine.proc = SimpleNamespace(poll=lambda: 0)               # exited, its stderr drained
    engine.reader = SimpleNamespace(is_alive=lambda: False)
    assert [f.rsplit("_", 2)[1] for f in engine.closed_files()] == ["00003"]
    assert engine.err.files == [] and engine.closed_files() == []
