"""Rotated live capture (--rotate, --rotate-packets): one evidence directory per period, flows
open at a boundary counted once, in the period where they end.

The union of a rotated run's periods must be the single analysis of the same packets: the
sample capture is cut into ring files (filering.FileRing: no interface needed, the packets
keep their timestamps) and fed through the live session with rotation by packets, then
compared with `analyze` of the file. Every column must be equal but `flow_id` and `capture`
(per directory, and the ring file a flow began in) and `end_reason` where the carry rule
ends a flow at a rotation as idle (the single pass read the file without an idle sweep:
eof). Frames and events must be equal too.
"""
import json
import re
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from filering import FileRing, looped

import flowscope
from flowscope import report
from flowscope.live import LiveOptions
from flowscope.live.periods import period_dirs, verify_run
from flowscope.live.session import run
from flowscope.report.manifest import file_sha256

pytestmark = pytest.mark.slow  # not in `make check` (whole analyses, browsers, live capture)

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "captures" / "sample_session.pcap"
KEY = ["l4", "orig_ip", "orig_port", "resp_ip", "resp_port", "ts_start"]
PER_DIRECTORY = {"flow_id", "capture"}
DEFAULTS = flowscope.Settings()
TIMEOUT_S = {"tcp": DEFAULTS.tcp_idle_s, "udp": DEFAULTS.udp_idle_s}   # else other_idle_s


@pytest.fixture(scope="module")
def expected(sample_default):
    return sample_default


def rotated(tmp_path: Path, per_file: int, every: int, **write) -> tuple[Path, object]:
    out = tmp_path / "out"
    opts = LiveOptions(interface="lo", out=out, rotate_packets=every)
    live = run(opts, make_engine=lambda o, workdir: FileRing(SAMPLE, workdir, per_file),
               write_options={"report": False, "pseudonymize": False, **write})
    return out, live


def flow_key(row: dict) -> tuple:
    return tuple(str(row[k]) for k in KEY)


def keyed_rows(flows: pa.Table, table: pa.Table, drop=("flow_id", "event_id")) -> list:
    """Rows of frames/events with the flow named by its key (flow ids are per directory)."""
    key_of = {r["flow_id"]: flow_key(r) for r in flows.to_pylist()}

    def text(value):   # an event's detail lists flow ids: by key instead
        return re.sub(r"flows=([0-9,]+)", lambda m: "flows=" + "|".join(sorted(
            str(key_of[int(f)]) for f in m.group(1).split(","))), str(value))
    return [(key_of[r["flow_id"]], *(text(r[c]) for c in table.column_names if c not in drop))
            for r in table.to_pylist()]


@pytest.mark.parametrize("per_file, every", [(50, 200), (7, 13), (1, 37), (100, 333)])
def test_union_of_rotated_periods_is_the_single_analysis(tmp_path, expected, per_file, every):
    out, live = rotated(tmp_path, per_file, every)
    periods = period_dirs(out)
    assert len(periods) == live.rotation.periods >= 3
    flows, frames, events = [], [], []
    previous = None
    for d in periods:
        summary = json.loads((d / "summary.json").read_text())
        rot = summary["rotation"]
        flows.append(t := pq.read_table(d / "flows.parquet"))
        frames += keyed_rows(t, pq.read_table(d / "frames.parquet"))
        events += keyed_rows(t, pq.read_table(d / "events.parquet"))
        # every number traceable: the period's flows hold its own packets, plus those its
        # carried-in flows had before, minus those of the flows it carries out
        assert summary["packets"] == (rot["flow_packets_counted"] + rot["carried_in"]["packets"]
                                      - rot["carried_out"]["packets"])
        assert summary["bytes"] == rot["flow_bytes_counted"] + rot["carried_in"]["bytes"] - rot["carried_out"]["bytes"]
        if previous is not None:   # what one period carries out, the next carries in
            assert {k: previous["carried_out"][k] for k in ("flows", "packets", "bytes")} == \
                {k: rot["carried_in"][k] for k in ("flows", "packets", "bytes")}
            assert rot["previous"]["name"] == previous["name"]
        assert rot["period"] == periods.index(d) + 1 and rot["name"] == d.name
        assert report.verify(d, captures=False) == []
        previous = rot
    assert previous["final"] and previous["carried_out"]["flows"] == 0
    assert sum(json.loads((d / "summary.json").read_text())["rotation"]["carried_out"]["flows"]
               for d in periods) > 0   # the test is about something

    union = pa.concat_tables(flows)
    got = {flow_key(r): r for r in union.to_pylist()}
    want = {flow_key(r): r for r in expected.table.to_pylist()}
    assert union.num_rows == len(got) == len(want) == 25
    assert got.keys() == want.keys()
    last_packet = {}   # each flow's period: the newest packet when the carry rule decided
    for d in periods:
        s = json.loads((d / "summary.json").read_text())
        for r in pq.read_table(d / "flows.parquet").select(KEY).to_pylist():
            last_packet[flow_key(r)] = s["rotation"]["last_packet_utc"]
    ended_at_rotation = 0
    for k, w in want.items():
        g = got[k]
        differing = {c for c in w if c not in PER_DIRECTORY and g[c] != w[c]}
        if differing == {"end_reason"}:
            # ended at a rotation: no later packet could have continued it
            assert (g["end_reason"], w["end_reason"]) == ("idle", "eof")
            newest = pa.scalar(last_packet[k].replace("Z", ""), pa.string()).cast(pa.timestamp("us")).as_py()
            assert (newest - g["ts_end"].replace(tzinfo=None)).total_seconds() > TIMEOUT_S.get(g["l4"], DEFAULTS.other_idle_s)
            ended_at_rotation += 1
        else:
            assert differing == set(), (k, {c: (g[c], w[c]) for c in differing})
    # (those that had closed with FIN or RST end so in both)
    assert sum(json.loads((d / "summary.json").read_text())["rotation"]["ended_at_rotation"]
               for d in periods) >= ended_at_rotation > 0
    assert sorted(frames) == sorted(keyed_rows(expected.table, expected.frames_table))
    assert len(frames) == 95
    assert sorted(events) == sorted(keyed_rows(expected.table, expected.events_table))
    assert verify_run(out, captures=False) == ([], [])


def test_union_of_a_looped_replay_is_the_analysis_of_its_ring_files(tmp_path):
    """The sample 100 times over with new addresses, as tcpreplay --unique-ip sends it
    (filering.looped): thousands of flows, flows whose answers come a ring file later and
    break their frame walk (carried as two records), closed connections joined under their
    own timeout; short idle timeouts so that flows end at rotations too."""
    source = looped(SAMPLE, tmp_path / "looped.pcap", loops=100, pps=2000)
    settings = flowscope.Settings(tcp_idle_s=60, udp_idle_s=30)
    out = tmp_path / "out"
    rings = []

    def engine(options, workdir):
        rings.append(FileRing(source, workdir, 2000))
        return rings[0]
    run(LiveOptions(interface="lo", out=out, rotate_packets=20_000), settings, make_engine=engine,
        write_options={"report": False, "pseudonymize": False})
    files = tmp_path / "ring"   # the same ring files again, for analyze
    files.mkdir()
    whole = flowscope.analyze(FileRing(source, files, 2000).closed_files(), settings)
    periods = period_dirs(out)
    summaries = [json.loads((d / "summary.json").read_text()) for d in periods]
    assert len(periods) == 6 and sum(s["rotation"]["counts"].get("carry-two-records", 0) for s in summaries) > 100
    flows = [pq.read_table(d / "flows.parquet") for d in periods]
    got = {flow_key(r): r for r in pa.concat_tables(flows).to_pylist()}
    want = {flow_key(r): r for r in whole.table.to_pylist()}
    assert len(got) == len(want) == sum(t.num_rows for t in flows) == 3520
    assert sum(r["pkts_orig"] + r["pkts_resp"] for r in got.values()) == 103_700
    per_period = {"counterparts"}   # people and calls are counted within a period (docs/live.md)
    for k, w in want.items():
        differing = {c for c in w if c not in PER_DIRECTORY | per_period and got[k][c] != w[c]}
        assert differing <= {"end_reason"}, (k, {c: (got[k][c], w[c]) for c in differing})
        if differing:
            assert (got[k]["end_reason"], w["end_reason"]) == ("idle", "eof")
    frames = [row for d, t in zip(periods, flows) for row in keyed_rows(t, pq.read_table(d / "frames.parquet"))]
    assert sorted(frames) == sorted(keyed_rows(whole.table, whole.frames_table)) and len(frames) > 5000
    events = [row for d, t in zip(periods, flows) for row in keyed_rows(t, pq.read_table(d / "events.parquet"))]
    calls = [e for e in events if e[2] == "call"]
    assert sorted(e for e in events if e[2] != "call") == \
        sorted(e for e in keyed_rows(whole.table, whole.events_table) if e[2] != "call")
    assert len(calls) >= sum(1 for e in keyed_rows(whole.table, whole.events_table) if e[2] == "call")


def test_a_carried_flow_names_the_ring_file_it_began_in(tmp_path):
    out, _ = rotated(tmp_path, 50, 200)
    files_of = {}
    for d in period_dirs(out):
        s = json.loads((d / "summary.json").read_text())
        files_of[d.name] = {c["path"]: c["sha256"] for c in s["captures"]}
        begun_before = {e["path"]: e for e in s["rotation"]["carried_in"]["from"]}
        assert sum(e["flows"] for e in begun_before.values()) == s["rotation"]["carried_in"]["flows"]
        earlier = {p: h for name, files in files_of.items() if name < d.name for p, h in files.items()}
        for path, entry in begun_before.items():
            assert earlier[path] == entry["sha256"]   # a file of an earlier period, by name and hash
        for cap in pq.read_table(d / "flows.parquet")["capture"].to_pylist():
            assert cap in files_of[d.name] or cap in begun_before


def test_every_period_is_a_complete_evidence_directory_with_its_report(tmp_path):
    out, live = rotated(tmp_path, 100, 400, report=True, pseudonymize=True)
    periods = period_dirs(out)
    assert len(periods) == 3
    for d in periods:
        names = {p.name for p in d.iterdir()}
        assert {"flows.parquet", "summary.json", "manifest.json", "report.html"} <= names
        assert report.verify(d, captures=False) == []
        assert "10.215.173.1" not in (d / "summary.json").read_text() + (d / "report.html").read_text()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]   # no temp directory left
    report.render(periods[0], pdf=False)   # a period re-rendered later: its manifest changes, the chain holds
    assert verify_run(out, captures=False) == ([], [])


def test_verify_names_a_missing_or_changed_period(tmp_path):
    out, _ = rotated(tmp_path, 50, 300)
    periods = period_dirs(out)
    assert verify_run(out) [0] == []
    notes = verify_run(out)[1]
    assert notes and "without --keep-pcap" in notes[0]   # the ring files were deleted: said, not failed
    middle = periods[1]
    moved = tmp_path / "elsewhere"
    shutil.move(middle, moved)
    problems, _ = verify_run(out, captures=False)
    assert problems == [f"{periods[2]}: the period before it, {middle.name}, is missing"]
    shutil.move(moved, middle)
    # a table changed and its period's manifest made to match: the next period says so
    flows = pq.read_table(middle / "flows.parquet")
    pq.write_table(flows.slice(1), middle / "flows.parquet")
    manifest = json.loads((middle / "manifest.json").read_text())
    manifest["outputs"]["flows.parquet"]["sha256"] = file_sha256(middle / "flows.parquet")
    manifest["outputs"]["flows.parquet"]["bytes"] = (middle / "flows.parquet").stat().st_size
    (middle / "manifest.json").write_text(json.dumps(manifest))
    assert report.verify(middle, captures=False) == []
    problems, _ = verify_run(out, captures=False)
    assert problems == [f"{periods[2]}: flows.parquet of the period before it ({middle.name}) changed"]
    (out / ".2026-03-02T09-09-00Z.partial").mkdir()
    _, notes = verify_run(out, captures=False)
    assert any("unfinished period" in n for n in notes)


def test_a_later_run_continues_the_chain(tmp_path):
    out, _ = rotated(tmp_path, 100, 500)
    first_run = period_dirs(out)
    _, live = rotated(tmp_path, 100, 500)   # same packets, same names: suffixed, after them
    both = period_dirs(out)
    assert len(both) == 2 * len(first_run)
    second = [d for d in both if d not in first_run]
    assert [d.name for d in second] == [f"{d.name}-2" for d in first_run]
    s = json.loads((second[0] / "summary.json").read_text())
    assert s["rotation"]["previous"]["name"] == first_run[-1].name
    assert verify_run(out, captures=False)[0] == []


def test_a_period_that_cannot_be_written_stops_the_run_with_one_line(tmp_path, monkeypatch):
    import errno

    from flowscope.live import rotation
    from flowscope.live.options import LiveError
    written, real = [], rotation.write_period

    def full_disk(result, out, name, options):   # the second period meets a full disk
        if written:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(real(result, out, name, options))
        return written[-1]
    monkeypatch.setattr(rotation, "write_period", full_disk)
    with pytest.raises(LiveError, match=r"^cannot write period 2026-03-02T09-0.* No space left on device; "
                                        r"the capture stopped$"):
        rotated(tmp_path, 100, 400)
    assert [d.name for d in period_dirs(tmp_path / "out")] == [written[0].name]   # the first one stays
