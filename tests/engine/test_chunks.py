"""Chunks of a classic pcap: planned at any offset, each record read exactly once."""
from __future__ import annotations

import gzip
import struct

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

import flowscope
from conftest import SAMPLE, pcap_records, write_records
from engine_checks import assert_same, run_parts_here
from flowscope import Settings
from flowscope.engine import chunks, tasks

pytestmark = pytest.mark.slow  # not in `make check` (whole analyses, browsers, live capture)

SIZE = SAMPLE.stat().st_size


def test_plan_splits_only_large_uncompressed_classic_pcaps(tmp_path, corpus):
    specs = chunks.plan([str(SAMPLE)], 100_000)
    assert len(specs) == 5 and [s.file for s in specs] == [0] * 5
    assert specs[0].start == 24 and specs[0].exact and not any(s.exact for s in specs[1:])
    assert [s.limit for s in specs[:-1]] == [s.start for s in specs[1:]] and specs[-1].limit == chunks.END
    packed = tmp_path / "sample.pcap.gz"
    packed.write_bytes(gzip.compress(SAMPLE.read_bytes()))
    pcapng = corpus / "pcap" / "quic-mvfst-27.pcapng"
    others = chunks.plan([str(packed), str(pcapng), str(tmp_path / "missing.pcap"), str(tmp_path)], 1000)
    assert [(s.file, s.whole) for s in others] == [(0, True), (1, True), (2, True), (3, True)]
    assert all(s.whole for s in chunks.plan([str(SAMPLE)], None) + chunks.plan([str(SAMPLE)], SIZE))


@pytest.mark.parametrize("chunk_bytes", [SIZE // 2, 50_000, 7_000, 1_500])
def test_each_chunk_begins_where_the_previous_one_stopped(chunk_bytes):
    specs = chunks.plan([str(SAMPLE)], chunk_bytes)
    results = [tasks.read(s, k, Settings(classify=False), len(specs)) for k, s in enumerate(specs)]
    for before, after in zip(results, results[1:]):
        assert after.start == before.stop   # the guessed start is right on a real capture
    assert results[-1].stop == SIZE
    whole = tasks.read(chunks.PartSpec(str(SAMPLE), 0), 0, Settings(classify=False), 1)
    assert (sum(r.capture.stats for r in results) == whole.capture.stats).all()


@pytest.mark.parametrize("chunk_bytes", [SIZE, 30_000, 2_000])
def test_chunked_sample_gives_the_same_analysis(chunk_bytes, sample_default):
    chunked, rereads = run_parts_here([SAMPLE], Settings(), chunk_bytes)
    assert rereads == 0
    assert_same(sample_default, chunked)


@hsettings(max_examples=10, deadline=None,
           suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(chunk_bytes=st.integers(min_value=3_000, max_value=SIZE))
def test_any_chunk_size_gives_the_same_flows(chunk_bytes, sample_default):
    chunked, _ = run_parts_here([SAMPLE], Settings(), chunk_bytes)
    assert_same(sample_default, chunked)


def test_corpus_chunked_and_together_gives_the_same_analysis(corpus):
    paths = sorted(str(p) for p in (corpus / "pcap").iterdir())
    for path in paths:  # each file alone, in chunks of a few dozen packets
        assert_same(flowscope.analyze(path), run_parts_here([path], Settings(), 8_000)[0])
    assert_same(flowscope.analyze(paths), run_parts_here(paths, Settings(), 20_000)[0])


@pytest.fixture(scope="module")
def long_capture(tmp_path_factory):
    """3.4 MB: the sample seven times, 700 s apart (flows come back after their timeouts),
    so reads cross several buffers and, with small batches, expire flows many times."""
    header, records = pcap_records(SAMPLE)
    shifted = [struct.pack("<I", struct.unpack_from("<I", r, 0)[0] + rep * 700) + r[4:]
               for rep in range(7) for r in records]
    return write_records(tmp_path_factory.mktemp("long") / "long.pcap", header, shifted)


@pytest.mark.parametrize("batch_packets", [7, 300])
def test_flows_expired_idle_in_one_pass_end_idle_in_chunks_too(long_capture, batch_packets):
    settings = Settings(batch_packets=batch_packets)
    local = flowscope.analyze(long_capture, settings)
    assert set(local.flows.end_reason) >= {"idle", "eof"}
    for chunk_bytes in (100_000, 1 << 20):
        assert_same(local, run_parts_here([long_capture], settings, chunk_bytes)[0])


def _fake_records(sec: int, n: int) -> bytes:
    """A run of well-formed pcap records, to hide inside a packet's payload."""
    return b"".join(struct.pack("<IIII", sec, 1000 * k, 40, 40) + bytes(40) for k in range(n))


def _udp_frame(payload: bytes) -> bytes:
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + 8 + len(payload), 1, 0, 64, 17, 0,
                     bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + struct.pack("!HHHH", 4000, 5000, 8 + len(payload), 0) + payload


def test_a_pcap_inside_a_payload_fools_the_guess_and_the_chunk_is_read_again(tmp_path):
    header, records = pcap_records(SAMPLE)
    sec = struct.unpack_from("<I", records[500], 0)[0]
    frame = _udp_frame(_fake_records(sec, 1000)[:60_000])
    lure = struct.pack("<IIII", sec, 999_999, len(frame), len(frame)) + frame
    path = write_records(tmp_path / "lure.pcap", header, records[:500] + [lure] + records[500:])
    chunked, rereads = run_parts_here([path], Settings(), 10_000)
    assert rereads >= 2   # several chunks begin inside the 60 kB payload
    assert_same(flowscope.analyze(path), chunked)


def test_a_corrupt_record_ends_the_file_as_in_process(tmp_path):
    header, records = pcap_records(SAMPLE)
    bad = records[600][:8] + struct.pack("<II", 5 << 20, 5 << 20) + records[600][16:]
    path = write_records(tmp_path / "corrupt.pcap", header, records[:600] + [bad] + records[601:])
    local = flowscope.analyze(path)
    assert "absurd record length" in local.errors[0]
    for chunk_bytes in (20_000, 3_000):
        chunked, _ = run_parts_here([path], Settings(), chunk_bytes)
        assert chunked.errors == local.errors
        assert_same(local, chunked)


def test_a_truncated_last_record_is_reported_as_in_process(tmp_path):
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(SAMPLE.read_bytes()[:-100])
    local = flowscope.analyze(cut)
    assert "truncated last record" in local.errors[0]
    chunked, _ = run_parts_here([cut], Settings(), 40_000)
    assert_same(local, chunked)
