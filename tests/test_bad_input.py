"""Bad input never crashes flowscope: each damaged file gives one clean error line naming
it, what came before the damage is still analysed, and the other files are too.

(a) via the API: result.errors; (b) via the CLI (a subprocess): exit status 1 (2 for
usage), one stderr line naming the file, no traceback, summary.json listing the error.
Then property tests: random and mutated captures through flowscope.analyze, and random
frames through the compiled decoder.
"""
from __future__ import annotations

import gzip
import json
import lzma
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from fuzzing import examples, fuzz

import flowscope
from flowscope import testing as t
from flowscope.decode import layout as L
from flowscope.decode.frame import decode_frame

pytestmark = pytest.mark.slow  # not in `make check` (whole analyses, browsers, live capture)

T0 = 1_700_000_000_000_000_000
SEC = 1_000_000_000



def udp_frame(k: int) -> bytes:
    return t.ethernet(t.ipv4("192.0.2.1", "198.51.100.2", 17, t.udp(10000 + k, 53, b"abcdefgh"), ident=k))


def good_pcap(n: int = 3) -> bytes:
    return t.pcap_bytes([(T0 + k * SEC, udp_frame(k)) for k in range(n)], nanosecond=True)


def good_pcapng(n: int = 3, tsoffset: int | None = None) -> bytes:
    s = t.Section()
    i = s.interface(1, tsresol=9, tsoffset=tsoffset)
    for k in range(n):
        s.epb(i, T0 + k * SEC, udp_frame(k))
    return bytes(s)


def _pcap_record_offset(k: int) -> int:
    return 24 + k * (16 + len(udp_frame(0)))


def _pcapng_block_offset(k: int) -> int:
    s = t.Section()
    s.interface(1, tsresol=9)
    head = len(bytes(s))
    s.epb(0, T0, udp_frame(0))
    return head + k * (len(bytes(s)) - head)


def _absurd_incl(data: bytes) -> bytes:
    o = _pcap_record_offset(2) + 8
    return data[:o] + (0x7FFFFFFF).to_bytes(4, "little") + data[o + 4:]


def _absurd_block(data: bytes, blen: int) -> bytes:
    o = _pcapng_block_offset(2) + 4
    return data[:o] + blen.to_bytes(4, "little") + data[o + 4:]


def _corrupt_gzip() -> bytes:
    packed = bytearray(gzip.compress(good_pcap(200)))
    for k in range(len(packed) - 40, len(packed) - 8):
        packed[k] ^= 0xA5
    return bytes(packed)


# name: (how to make it in a directory -> path, packets read before the damage, message part)
def _file(data: bytes):
    def make(d: Path) -> Path:
        p = d / "input"
        p.write_bytes(data)
        return p
    return make


def _directory(d: Path) -> Path:
    p = d / "a-directory"
    p.mkdir()
    return p


def _unreadable(d: Path) -> Path:
    p = d / "unreadable"
    p.write_bytes(good_pcap())
    p.chmod(0)
    return p


CASES = {
    "empty-file": (_file(b""), 0, "empty"),
    "wrong-magic": (_file(b"GIF89a" + bytes(100)), 0, "not a pcap or pcapng"),
    "three-bytes": (_file(b"\xd4\xc3\xb2"), 0, "truncated"),
    "truncated-pcap-header": (_file(good_pcap()[:20]), 0, "truncated pcap header"),
    "truncated-pcapng-header": (_file(good_pcapng()[:20]), 0, "truncated"),
    "truncated-last-record": (_file(good_pcap()[:-5]), 2, "truncated last record"),
    "truncated-record-header": (_file(good_pcap()[:_pcap_record_offset(2) + 9]), 2, "truncated last record"),
    "absurd-record-length": (_file(_absurd_incl(good_pcap())), 2, "absurd record length"),
    "absurd-block-length": (_file(_absurd_block(good_pcapng(), 0x7FFFFFF0)), 2, "block length"),
    "block-length-not-multiple-of-4": (_file(_absurd_block(good_pcapng(), 66)), 2, "block length"),
    "block-length-below-12": (_file(_absurd_block(good_pcapng(), 8)), 2, "block length"),
    "truncated-last-block": (_file(good_pcapng()[:-7]), 2, "truncated last block"),
    "directory": (_directory, 0, "directory"),
    "missing-file": (lambda d: d / "no-such-capture", 0, "no such file"),
    "unreadable-file": (_unreadable, 0, "permission denied"),
    # xz cut inside its footer: every packet was already decoded, then the stream error
    "corrupt-xz": (_file(lzma.compress(good_pcap())[:-20]), 3, "xz"),
    # gzip damaged near its end: 198 of 200 packets decode before garbage stops the reader
    "corrupt-gzip": (_file(_corrupt_gzip()), 198, "gzip"),
}
AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def case_params():
    for name in CASES:
        marks = []
        if name == "unreadable-file":
            marks.append(pytest.mark.skipif(AS_ROOT, reason="running as root: chmod 000 does not prevent reading"))
        yield pytest.param(name, marks=marks, id=name)


# --- (a) the API -------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(case_params()))
def test_api_reports_one_error_line(tmp_path, name):
    make, before, words = CASES[name]
    bad = make(tmp_path)
    good = t.write_pcap(tmp_path / "good", [(T0 + 100 * SEC, udp_frame(50))])

    result = flowscope.analyze([bad, good])

    assert len(result.errors) == 1
    (err,) = result.errors
    assert err.startswith(f"{bad}: ")
    assert words in err.lower()
    assert "\n" not in err and "Traceback" not in err
    bad_entry, good_entry = result.summary["captures"]
    assert bad_entry["error"] == err
    assert bad_entry["packets_read"] == before                     # what came before the damage
    assert good_entry["error"] is None and good_entry["packets_read"] == 1
    # (flows continuing across the two files merge, so count packets over all flows)
    assert int(result.flows["pkts_orig"].sum() + result.flows["pkts_resp"].sum()) == before + 1
    json.dumps(result.summary)


def test_api_error_is_a_capture_error_message(tmp_path):
    """The recorded message is exactly str(CaptureError(path, problem))."""
    bad = _file(b"")(tmp_path)
    (err,) = flowscope.analyze(bad).errors
    assert err == str(flowscope.CaptureError(str(bad), err.split(": ", 1)[1]))


def test_huge_if_tsoffset_is_a_capture_error(tmp_path):
    path = tmp_path / "capture"
    path.write_bytes(good_pcapng(tsoffset=2**40))
    result = flowscope.analyze(path)
    (err,) = result.errors
    assert err.startswith(f"{path}: ")


def test_epb_before_any_interface(tmp_path):
    s = t.Section()
    s.epb(0, T0, udp_frame(0))      # no IDB yet
    i = s.interface(1)
    s.epb(i, T0 + 1000, udp_frame(1))
    path = t.write_pcapng(tmp_path / "capture", [s])
    result = flowscope.analyze(path)
    assert result.errors == []
    (c,) = result.summary["captures"]
    assert (c["packets_read"], c.get("packets_unknown_interface")) == (1, 1)


def test_spb_before_any_interface_is_an_error(tmp_path):
    s = t.Section()
    s.spb(udp_frame(0))
    path = t.write_pcapng(tmp_path / "capture", [s])
    (err,) = flowscope.analyze(path).errors
    assert err.startswith(f"{path}: ")


# --- (b) the CLI -------------------------------------------------------------------------

def run_cli(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flowscope.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


CLI_SEPARATE = {"corrupt-gzip"}  # its own run: a decompressor failure must not affect the others


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """One CLI run over every bad input and a good file (the rest in separate runs)."""
    d = tmp_path_factory.mktemp("cli")
    good = t.write_pcap(d / "good", [(T0 + 100 * SEC, udp_frame(50))])
    bad = {}
    for name in CASES:
        if name == "unreadable-file" and AS_ROOT:
            continue
        (d / name).mkdir()
        bad[name] = CASES[name][0](d / name)
    runs = {}
    together = [n for n in bad if n not in CLI_SEPARATE]
    groups = [together] + [[n] for n in bad if n in CLI_SEPARATE]
    procs = []
    for k, names in enumerate(groups):
        out = d / f"out{k}"
        args = [str(bad[n]) for n in names] + [str(good)]
        procs.append((names, out, subprocess.Popen(
            [sys.executable, "-m", "flowscope.cli", "analyze", *args, "--out", str(out), "--no-progress"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
    for names, out, proc in procs:
        stdout, stderr = proc.communicate(timeout=300)
        for n in names:
            runs[n] = dict(rc=proc.returncode, stdout=stdout, stderr=stderr, out=out, bad=bad[n], good=good,
                           n_inputs=len(names) + 1)
    return runs


@pytest.mark.parametrize("name", list(case_params()))
def test_cli_reports_one_error_line(cli_run, name):
    run = cli_run[name]
    bad, good, out, stderr = run["bad"], run["good"], run["out"], run["stderr"]
    assert "Traceback" not in stderr, stderr
    assert run["rc"] == 1, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == run["n_inputs"] - 1, stderr            # one line per bad input
    mine = [ln for ln in lines if ln.startswith(f"flowscope: error: {bad}: ")]
    assert len(mine) == 1, stderr
    summary = json.loads((out / "summary.json").read_text())
    entries = {c["path"]: c for c in summary["captures"]}
    assert entries[str(bad)]["error"] == mine[0].removeprefix("flowscope: error: ")
    assert entries[str(bad)]["packets_read"] == CASES[name][1]
    assert entries[str(good)]["error"] is None
    assert entries[str(good)]["packets_read"] == entries[str(good)]["packets_decoded"] == 1
    assert (out / "flows.parquet").is_file()
    assert f"1/{run['n_inputs']} captures read" in run["stdout"]


def test_cli_usage_errors_exit_2(tmp_path):
    good = t.write_pcap(tmp_path / "good", [(T0, udp_frame(0))])
    no_captures = run_cli("analyze", "--out", tmp_path / "out")
    assert no_captures.returncode == 2
    assert "Traceback" not in no_captures.stderr
    assert "usage:" in no_captures.stderr
    # --out is a file: a usage error, one line naming it
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    r = run_cli("analyze", good, "--out", not_a_dir)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [r.stderr.strip()]
    assert str(not_a_dir) in r.stderr


def test_cli_refuses_to_overwrite_another_analysis(tmp_path):
    a = t.write_pcap(tmp_path / "a", [(T0, udp_frame(0))])
    b = t.write_pcap(tmp_path / "b", [(T0, udp_frame(1))])
    out = tmp_path / "out"
    flowscope.analyze(a).write(out)
    r = run_cli("analyze", b, "--out", out)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and str(out) in r.stderr
    assert json.loads((out / "summary.json").read_text())["captures"][0]["path"] == str(a)


# --- property tests ----------------------------------------------------------------------

TIME_LIMIT_S = 5.0


@pytest.fixture(scope="module")
def scratch():
    with tempfile.TemporaryDirectory() as d:
        yield Path(d) / "fuzzed"


def analyze_guarded(path: Path, data: bytes):
    """Write `data` to `path`, analyze it in a thread; fail on any exception or > 5 s."""
    path.write_bytes(data)
    box: dict = {}

    def work():
        try:
            box["result"] = flowscope.analyze(path)
        except BaseException as exc:  # noqa: BLE001 - reported below
            box["exc"] = exc

    th = threading.Thread(target=work, daemon=True)
    start = time.monotonic()
    th.start()
    th.join(TIME_LIMIT_S)
    assert not th.is_alive(), f"flowscope.analyze did not finish in {TIME_LIMIT_S} s on {data[:64].hex()}"
    if "exc" in box:
        raise box["exc"]
    result = box["result"]
    assert time.monotonic() - start < TIME_LIMIT_S
    for err in result.errors:
        assert err.startswith(f"{path}: ") and "\n" not in err, err
    (c,) = result.summary["captures"]
    assert c["packets_read"] == c["packets_decoded"] + sum(c["packets_undecodable"].values())
    assert int(result.flows["pkts_orig"].sum() + result.flows["pkts_resp"].sum()) <= c["packets_decoded"]
    json.dumps(result.summary)
    return result


def _seed_pcapng() -> bytes:
    """A small pcapng with most block kinds (if_tsoffset is fuzzed by its own test)."""
    s = t.Section()
    s.pcapdroid_uid_map(10123, "com.whatsapp", "WhatsApp")
    i = s.interface(1, tsresol=9)
    raw = s.interface(101, tsresol=0x80 | 20)
    s.epb(i, T0, udp_frame(0), comment="u-10123")
    s.epb(raw, T0 + STEP_NS, t.ipv6("2001:db8::1", "2001:db8::2", 6, t.tcp(1, 443, flags="S"),
                                    ext_headers=[(0, b"")]))
    s.spb(t.pcapdroid_frame(t.ipv4("10.0.0.1", "10.0.0.2", 17, t.udp(5, 6, b"x")), 10123, "WhatsApp"))
    s.opb(i, T0 + 2 * STEP_NS, udp_frame(2))
    s.isb(i, T0 + 3 * STEP_NS, ifdrop=1)
    s.nrb([("10.0.0.1", ["a"])])
    s.block(0x1234, b"?")
    return bytes(s)


STEP_NS = 1_953_125
SEEDS = {
    "pcap": good_pcap(4),
    "pcap-be-us": t.pcap_bytes([(T0 + k * SEC, t.sll(t.ipv4("192.0.2.1", "198.51.100.2", 1, t.icmp(8, 0, b"\0\1\0\1"))))
                                for k in range(3)], linktype=113, big_endian=True),
    "pcapng": _seed_pcapng(),
    "xz-pcap": lzma.compress(good_pcap(3)),
}


@st.composite
def mutated(draw):
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "truncate", "insert", "delete"]))
        if not data:
            break
        k = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[k] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            data[k] = draw(st.sampled_from([0x00, 0xFF, 0x7F, 0x80, 0x01]))
        elif op == "truncate":
            del data[k:]
        elif op == "insert":
            data[k:k] = draw(st.binary(min_size=1, max_size=8))
        else:
            del data[k:k + draw(st.integers(1, 8))]
    return bytes(data)


PREFIXES = [b"", b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\x0a\x0d\x0d\x0a",
            b"\x0a\x0d\x0d\x0a\x1c\x00\x00\x00\x4d\x3c\x2b\x1a", b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00"]
FUZZ = settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.too_slow])


@fuzz
@FUZZ
@given(prefix=st.sampled_from(PREFIXES), body=st.binary(max_size=600))
def test_random_bytes_never_crash(scratch, prefix, body):
    analyze_guarded(scratch, prefix + body)


@fuzz
@FUZZ
@given(data=mutated())
def test_mutated_captures_never_crash(scratch, data):
    analyze_guarded(scratch, data)


# --- the compiled decoder on random frames ----------------------------------------------

LINKTYPES = [1, 101, 12, 14, 228, 229, 113, 276, 0, 108, 9, 50, 147]


def _frames_for_fuzz():
    ip4 = [t.ipv4("192.0.2.1", "198.51.100.2", 6, t.tcp(1, 443, flags="SA", payload=b"x" * 9), options=b"\x01" * 4),
           t.ipv4("192.0.2.1", "198.51.100.2", 17, t.udp(1, 4789, bytes(30))),
           t.ipv4("192.0.2.1", "198.51.100.2", 1, t.icmp(8, 0, b"\0\1\0\1")),
           t.ipv4("192.0.2.1", "198.51.100.2", 4, t.ipv4("10.0.0.1", "10.0.0.2", 17, t.udp(3, 4, b"in"))),
           t.ipv4("192.0.2.1", "198.51.100.2", 47, b"\0\0\x08\x00" + t.ipv4("10.0.0.1", "10.0.0.2", 6, t.tcp(5, 6))),
           t.ipv4("192.0.2.1", "198.51.100.2", 17, t.udp(1, 2, bytes(100)), frag_offset=0, more_fragments=True)]
    ip6 = [t.ipv6("2001:db8::1", "2001:db8::2", 17, t.udp(1, 53, b"q"), ext_headers=[(0, b""), (43, b""), (60, b"")]),
           t.ipv6("2001:db8::1", "2001:db8::2", 58, t.icmp(128, 0, b"\0\1\0\1")),
           t.ipv6("2001:db8::1", "2001:db8::2", 6, t.tcp(1, 2), ext_headers=[(44, b"\0\x01\0\0\0\1"), (51, bytes(10))]),
           t.ipv6("2001:db8::1", "2001:db8::2", 41, t.ipv6("fd00::1", "fd00::2", 17, t.udp(7, 8)))]
    frames = {}
    for ip in ip4 + ip6:
        frames.setdefault(1, []).extend([t.ethernet(ip), t.ethernet(ip, vlans=[1, 2], qinq=True),
                                         t.pcapdroid_frame(ip, 10123, "WhatsApp"),
                                         t.ethernet(b"\0\x01\0\0\0\0" + ip[:2] + b"\0\x21" + ip, ethertype=0x8864),
                                         t.ethernet(b"\0\0\x11\x40" + ip, ethertype=0x8847)])
        for lt in (101, 12, 14):
            frames.setdefault(lt, []).append(ip)
        frames.setdefault(228 if ip[0] >> 4 == 4 else 229, []).append(ip)
        frames.setdefault(113, []).append(t.sll(ip))
        frames.setdefault(276, []).append(t.sll2(ip))
        frames.setdefault(0, []).extend([t.null_loopback(ip), t.null_loopback(ip, big_endian=True)])
        frames.setdefault(108, []).append(t.loop(ip))
        frames.setdefault(9, []).extend([t.ppp(ip), t.ppp(ip, hdlc=False)])
        frames.setdefault(50, []).append(t.ppp(ip))
        frames.setdefault(147, []).append(t.ethernet(ip))
    return frames


FUZZ_FRAMES = _frames_for_fuzz()


@st.composite
def fuzz_frame(draw):
    linktype = draw(st.sampled_from(LINKTYPES))
    if draw(st.booleans()):
        frame = bytearray(draw(st.binary(max_size=120)))
    else:
        frame = bytearray(draw(st.sampled_from(FUZZ_FRAMES[linktype])))
        for _ in range(draw(st.integers(0, 4))):
            if frame:
                k = draw(st.integers(0, len(frame) - 1))
                frame[k] = draw(st.integers(0, 255))
        if draw(st.booleans()):
            del frame[draw(st.integers(0, len(frame))):]
    wire_extra = draw(st.sampled_from([0, 0, 1, 40, 1500]))
    return linktype, bytes(frame), len(frame) + wire_extra


def _decode_in(frame: bytes, linktype: int, wirelen: int, off: int, fill: int):
    buf = np.full(off + len(frame) + 256, fill, dtype=np.uint8)
    buf[off:off + len(frame)] = np.frombuffer(frame, dtype=np.uint8)
    P = L.new_batch(2)
    P[1] = 12345
    stats = L.new_stats()
    decode_frame(buf, off, len(frame), wirelen, linktype, P, 0, stats)
    assert (P[1] == 12345).all(), "decode_frame wrote outside its row"
    return P[0].copy(), stats


@fuzz
@settings(max_examples=examples(400), deadline=None)
@given(case=fuzz_frame(), off=st.integers(0, 40))
def test_decoder_stays_inside_the_frame(case, off):
    linktype, frame, wirelen = case
    row, stats = _decode_in(frame, linktype, wirelen, off, 0x00)
    end = off + len(frame)
    assert row[L.STATUS] in range(len(L.REASONS))
    assert row[L.CAPLEN] == len(frame) and row[L.WIRELEN] == wirelen
    assert row[L.PCAP] >= 0 and row[L.PLEN] >= 0
    if row[L.PCAP] > 0:          # payload bytes that a dissector may read
        assert off <= row[L.POFF] and row[L.POFF] + row[L.PCAP] <= end
    if row[L.TRAILER] >= 0:
        assert off <= row[L.TRAILER] and row[L.TRAILER] + 32 <= end
    assert stats[:len(L.REASONS)].sum() == 0      # reasons are counted by the walkers
    # the row depends on the frame's bytes only, never on the bytes around it
    other, other_stats = _decode_in(frame, linktype, wirelen, off, 0xFF)
    assert (row == other).all()
    assert (stats == other_stats).all()
