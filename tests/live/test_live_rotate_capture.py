"""`flowscope live --rotate` on a real interface (dumpcap, a veth pair in a private network
namespace, tcpreplay): periods by the clock, a stop (SIGINT) mid-period that writes the
partial period, a crash (SIGKILL) mid-period that leaves the periods already written intact
and verifiable, and idle periods that still end."""
import json
import os
import signal
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from livetools import SAMPLE_PACKETS, need_engine, start_live, wait_for
from livetools import veth_fixture  # noqa: F401  (the `veth` fixture)

import flowscope
from flowscope import report
from flowscope.live.periods import partial_dirs, period_dirs, verify_run

pytestmark = pytest.mark.slow  # not in `make check` (whole analyses, browsers, live capture)

BPF = "ip or ip6"
KEY = ["l4", "orig_ip", "orig_port", "resp_ip", "resp_port", "ts_start"]
EVERY_S = 2
NS = 1_000_000_000


def _summary(d):
    return json.loads((d / "summary.json").read_text())


def _ns(iso: str) -> int:
    return pa.scalar(iso.replace("Z", ""), pa.string()).cast(pa.timestamp("ns")).value


def _rows(table) -> dict:
    drop = {"flow_id", "capture", "end_reason"}
    return {tuple(str(r[k]) for k in KEY): {c: v for c, v in r.items() if c not in drop} for r in table.to_pylist()}


@pytest.mark.parametrize("engine", ["dumpcap", "scapy"])
def test_sigint_mid_period_writes_it_and_the_periods_add_up_to_the_ring_files(veth, tmp_path, engine):
    need_engine(engine)
    out = tmp_path / "out"
    live = start_live(veth, out, "--bpf", BPF, "--rotate", f"{EVERY_S}s", "--keep-pcap",
                      "--no-pseudonymize", "--no-report", engine=engine)
    live.wait_capturing()
    sent = veth.replay(pps=200)    # about 5 s: the sample runs across two or three boundaries
    assert sent == SAMPLE_PACKETS
    live.signal(signal.SIGINT)     # within a period: it is written as the last one
    rc, stdout, stderr = live.finish()
    assert rc == 0, stderr
    lines = stdout.splitlines()
    assert lines[0].startswith(f"captured {SAMPLE_PACKETS:,} packets on {veth.capture} ") and \
        "none dropped - stopped: interrupted" in lines[0], stdout
    periods = period_dirs(out)
    assert len(periods) >= 3 and f"{len(periods)} period directories" in lines[1]
    assert verify_run(out) == ([], [])   # hashes of every period, its ring files and the chain
    assert partial_dirs(out) == []
    summaries = [_summary(d) for d in periods]
    rots = [s["rotation"] for s in summaries]
    assert [r["period"] for r in rots] == list(range(1, len(periods) + 1))
    assert [r["final"] for r in rots] == [False] * (len(periods) - 1) + [True]
    assert summaries[-1]["live"]["stop_reason"] == "interrupted"
    # drops: scapy counts them as it goes, dumpcap when it stops (the last period, the run's)
    scopes = [r["drops_scope"] for r in rots]
    assert scopes == (["period"] * len(rots) if engine == "scapy" else [None] * (len(rots) - 1) + ["run"])
    assert all(s["live"]["stop_reason"] == "rotated" for s in summaries[:-1])
    last = 0
    for r in rots[1:]:   # by the clock: aligned, 2 s, named after the start
        start, end = _ns(r["nominal_start_utc"]), _ns(r["nominal_end_utc"])
        assert end - start == EVERY_S * NS and start % (EVERY_S * NS) == 0
        assert r["name"] == r["nominal_start_utc"][:19].replace(":", "-") + "Z"
        if r["first_packet_utc"]:   # whole ring files: from the period's start, in order, none shared
            assert start <= _ns(r["first_packet_utc"]) and last < _ns(r["first_packet_utc"])
            last = _ns(r["last_packet_utc"])
    # every packet in exactly one period, every flow in exactly one
    assert sum(r["flow_packets_counted"] for r in rots) == sum(s["packets"] for s in summaries) == SAMPLE_PACKETS
    ring_files = sorted(str(p) for p in (out / "pcap").glob("live_*.pcap*"))
    listed = sorted(c["path"] for s in summaries for c in s["captures"])
    assert listed == ring_files
    # the periods' flows are the single analysis of the ring files they were read from
    union = pa.concat_tables([pq.read_table(d / "flows.parquet") for d in periods])
    whole = flowscope.analyze(ring_files).table
    assert union.num_rows == whole.num_rows == len(_rows(whole))
    assert _rows(union) == _rows(whole)
    assert sum(r["carried_out"]["flows"] for r in rots) > 0


def test_sigkill_mid_period_leaves_the_written_periods_intact(veth, tmp_path):
    need_engine("dumpcap")
    out = tmp_path / "out"
    live = start_live(veth, out, "--bpf", BPF, "--rotate", f"{EVERY_S}s", "--keep-pcap", "--no-report")
    live.wait_capturing()
    dumpcap = live.engine_pid()
    veth.replay(pps=200)
    wait_for(lambda: len(period_dirs(out)) >= 2, timeout_s=60)
    time.sleep(0.3)                # into the next period
    live.signal(signal.SIGKILL)
    rc, _stdout, _stderr = live.finish()
    assert rc == -signal.SIGKILL
    wait_for(lambda: not os.path.exists(f"/proc/{dumpcap}"), timeout_s=10)   # dumpcap follows its parent
    periods = period_dirs(out)
    assert len(periods) >= 2
    problems, notes = verify_run(out)
    assert problems == [], problems
    assert all(report.verify(d) == [] for d in periods)   # each on its own, ring files included
    assert all("unfinished period" in n for n in notes)   # killed while writing one: named, not evidence
    assert not any(_summary(d)["rotation"]["final"] for d in periods)
    # what the killed period had read is still in its ring files, listed by no period
    listed = {c["path"] for d in periods for c in _summary(d)["captures"]}
    assert listed < {str(p) for p in (out / "pcap").glob("live_*.pcapng")}


def test_idle_periods_end_by_the_clock(veth, tmp_path):
    need_engine("dumpcap")
    out = tmp_path / "out"
    live = start_live(veth, out, "--rotate", f"{EVERY_S}s", "--duration", "7s", "-q")
    rc, stdout, stderr = live.finish()
    assert (rc, stdout, stderr.strip()) == (0, "", ""), stderr
    periods = period_dirs(out)
    assert len(periods) >= 4   # 7 s and more (capture starts before the clock of --duration)
    rots = [_summary(d)["rotation"] for d in periods]
    assert all(r["flow_packets_counted"] == 0 for r in rots)
    # one after the other, none skipped
    assert all(a["nominal_end_utc"] == b["nominal_start_utc"] for a, b in zip(rots, rots[1:]))
    assert all(r["previous"]["name"] == d.name for r, d in zip(rots[1:], periods))
    assert verify_run(out, captures=False) == ([], [])
