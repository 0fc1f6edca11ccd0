"""`flowscope live` on a real interface: the sample capture replayed over a veth pair in a
private network namespace gives the flow table `analyze` gives for the file.

What legitimately differs, and why:
- timestamps and everything measured from them (ts_start, ts_end, duration_s, rtt_ms and the
  RTT-based geo columns): tcpreplay --pps 1000 compresses the sample's ten minutes into one
  second, and the packets carry the time they crossed the veth;
- `capture`: the ring file a flow started in, not the sample's path.
Everything else is equal, frame bytes and PCAPdroid app columns included: the sample's link
type is Ethernet (1), its frames have a zero-MAC Ethernet header and a 32-byte PCAPdroid
trailer after the IP packet, and a veth carries a frame whole (no FCS, no padding: every
sample frame is over 60 bytes), so the trailer and its app attribution survive the wire.
Idle timeouts and duplicate suppression do not fire at 1000 packets/s (1 ms apart, over the
1 ms dedup window), and the order of first packets, hence flow_id, is kept. The replay pauses
for longer than a ring file lasts halfway through, so flows that run across ring files (the
chat connection, the call) must be merged back into one.
"""
import hashlib
import json
import signal
import time

import pyarrow.parquet as pq
import pytest
from livetools import SAMPLE_PACKETS, live_summary, need_engine, split_sample, start_live
from livetools import veth_fixture  # noqa: F401  (the `veth` fixture)

import flowscope

pytestmark = pytest.mark.slow  # not in `make check` (whole analyses, browsers, live capture)

BPF = "ip or ip6"
# The replay sends the 10-minute sample in about a second: whatever is derived from packet
# timing differs. counterparts too: chat events are split by silences, call legs grouped
# within 60 s (frames_up/frames_down do not depend on timing and must match).
FROM_TIMING = {"capture", "ts_start", "ts_end", "duration_s", "rtt_ms", "max_distance_km", "geo_consistent",
               "geo_checks", "counterparts"}
KEY = ["l4", "orig_ip", "orig_port", "resp_ip", "resp_port"]


def _comparable(table):
    rows = table.drop_columns([c for c in FROM_TIMING if c in table.column_names]).to_pylist()
    return sorted(rows, key=lambda r: tuple(str(r[k]) for k in KEY))


@pytest.fixture(scope="module")
def expected(sample_default):
    return sample_default


@pytest.mark.parametrize("engine", ["dumpcap", "scapy"])
def test_live_flow_table_equals_analyze_of_the_replayed_capture(veth, tmp_path, expected, engine):
    need_engine(engine)
    out, tmp = tmp_path / "out", tmp_path / "tmp"
    tmp.mkdir()
    # in clear and without the report: compared with the in-memory table of analyze
    live = start_live(veth, out, "--bpf", BPF, "--packets", SAMPLE_PACKETS, "--no-pseudonymize", "--no-report",
                      engine=engine, prefix=("env", f"TMPDIR={tmp}"))
    live.wait_capturing()
    first, second = split_sample(tmp_path, 500)
    sent = veth.replay(first, pps=1000)
    time.sleep(2.5)   # over two ring-file lifetimes: the halves land in different files
    sent += veth.replay(second, pps=1000)
    assert sent == SAMPLE_PACKETS
    rc, stdout, stderr = live.finish()
    assert rc == 0, stderr
    assert stdout.splitlines()[0].startswith(f"captured {SAMPLE_PACKETS:,} packets on {veth.capture} ")
    assert "none dropped - stopped: packets" in stdout.splitlines()[0]

    table = pq.read_table(out / "flows.parquet")
    assert table.num_rows == expected.table.num_rows == 25
    got, want = _comparable(table), _comparable(expected.table)
    differing = sorted({k for g, w in zip(got, want) for k in g if g[k] != w.get(k)})
    assert got == want, f"columns differ: {differing}"
    assert table.column_names == expected.table.column_names
    # the chat frames, walked across ring files and stitched: sizes and order as analyze's
    # (their times are the replay's)
    cols = ["flow_id", "direction", "frame_index", "frame_bytes", "unit"]
    frames = pq.read_table(out / "frames.parquet").select(cols).to_pylist()
    assert len(frames) == 95
    assert sorted(frames, key=str) == sorted(expected.frames_table.select(cols).to_pylist(), key=str)

    summary = live_summary(out)
    s = summary["live"]
    assert s["engine"].startswith(f"{engine} ")
    assert (s["interface"], s["bpf"], s["stop_reason"], s["error"]) == (veth.capture, BPF, "packets", None)
    assert s["packets_captured"] == s["packets_analysed"] == s["packets_received"] == SAMPLE_PACKETS
    assert (s["dropped_kernel"], s["dropped_interface"], s["dropped_engine"]) == (0, 0, 0)
    assert s["local_nets"][:3] == ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
    assert s["started_utc"].endswith("Z") and s["started_utc"] < s["ended_utc"]
    assert summary["meta"] == expected.summary["meta"]
    # one part per ring file, and the flows that continue across them merged
    assert s["capture_files"] == len(summary["captures"]) >= 2
    assert all(c["sha256"] and len(c["sha256"]) == 64 for c in summary["captures"])
    # without --keep-pcap the ring files lived in a temp dir outside DIR, and are gone
    assert list(tmp.iterdir()) == [] and not (out / "pcap").exists()


@pytest.mark.parametrize("sig, reason", [(signal.SIGINT, "interrupted"), (signal.SIGTERM, "terminated")])
def test_signal_flushes_and_kept_capture_files_analyse_to_the_same_table(veth, tmp_path, sig, reason):
    need_engine("dumpcap")
    out = tmp_path / "out"
    # in clear: compared with the in-memory table of analyze (pseudonyms: tests/report)
    live = start_live(veth, out, "--bpf", BPF, "--keep-pcap", "--no-pseudonymize",
                      "--local-net", "10.215.173.0/24", "--local-net", "2001:db8::/32")
    live.wait_capturing()
    veth.replay(pps=2000)
    live.signal(sig)
    rc, stdout, stderr = live.finish()
    assert rc == 0, stderr
    assert f"stopped: {reason}" in stdout.splitlines()[0]
    assert f"capture files in {out / 'pcap'}" in stdout

    summary = live_summary(out)
    assert summary["live"]["stop_reason"] == reason
    assert summary["live"]["local_nets"] == ["10.215.173.0/24", "2001:db8::/32"]
    kept = sorted((out / "pcap").glob("live_*.pcapng"))
    assert [c["path"] for c in summary["captures"]] == [str(p) for p in kept]
    for entry, path in zip(summary["captures"], kept):
        assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    # the kept files are the evidence: analysing them again gives exactly the live table
    again = flowscope.analyze([str(p) for p in kept]).table
    assert pq.read_table(out / "flows.parquet").to_pylist() == again.to_pylist()
    assert summary["packets"] == SAMPLE_PACKETS


def test_duration_limit_stops_an_idle_capture(veth, tmp_path):
    out = tmp_path / "out"
    live = start_live(veth, out, "--duration", "2s", "-q")   # quiet: no "capturing on" line either
    rc, stdout, stderr = live.finish()
    assert (rc, stdout, stderr.strip()) == (0, "", ""), stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["flows"] == 0 and s["live"]["stop_reason"] == "duration"
    assert 2.0 <= s["live"]["duration_s"] < 10
