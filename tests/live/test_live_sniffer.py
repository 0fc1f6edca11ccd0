"""The scapy engine's pcap ring writer: what it writes, flowscope reads as the original."""
import struct
from pathlib import Path

import pytest

import flowscope

pytest.importorskip("scapy", reason="scapy (the test extra) provides the fallback engine")
from flowscope.live.sniffer import PcapRing  # noqa: E402

pytestmark = pytest.mark.slow  # not in `make check` (whole analyses, browsers, live capture)

SAMPLE = Path(__file__).resolve().parents[2] / "captures" / "sample_session.pcap"


def _frames(path):
    data = path.read_bytes()
    pos = 24
    while pos < len(data):
        sec, usec, incl, _orig = struct.unpack_from("<IIII", data, pos)
        yield sec + usec / 1e6, data[pos + 16:pos + 16 + incl]
        pos += 16 + incl


def test_ring_files_read_back_as_the_original_capture(tmp_path):
    ring = PcapRing(tmp_path, linktype=1, file_s=3600)
    files = []
    for k, (ts, frame) in enumerate(_frames(SAMPLE)):
        if k % 400 == 0:          # cut into three files, as rotation would
            files.append(ring.open_next())
        ring.write(frame, ts)
    files.append(ring.close())
    files = [f for f in files if f]
    assert len(files) == 3 and all(Path(f).name.startswith("live_") for f in files)
    live = flowscope.analyze(files).table.drop_columns(["capture"])
    batch = flowscope.analyze(SAMPLE).table.drop_columns(["capture"])
    assert live.to_pylist() == batch.to_pylist()   # timestamps too: microseconds survive


def test_microsecond_rounding_never_writes_a_million(tmp_path):
    ring = PcapRing(tmp_path, linktype=1, file_s=3600)
    ring.open_next()
    ring.write(b"\0" * 60, 1_700_000_000.9999996)
    path = ring.close()
    sec, usec = struct.unpack_from("<II", Path(path).read_bytes(), 24)
    assert (sec, usec) == (1_700_000_001, 0)
