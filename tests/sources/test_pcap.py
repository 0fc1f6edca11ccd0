"""Classic pcap: both byte orders x micro/nanosecond timestamps, snaplen truncation.

Every generated file is also read by tshark (when installed): same packet count and
timestamps, which proves that flowscope.testing writes valid files.
"""
from __future__ import annotations

import hashlib
import shutil

import pytest

import flowscope
from flowscope import testing as t

T0 = 1_700_000_000_123_456_789  # 2023-11-14T22:13:20.123456789Z: every digit matters
needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")


def udp_frame(k: int, size: int = 20) -> bytes:
    """One Ethernet/IPv4/UDP frame; k picks the source port, so each packet is its own flow."""
    return t.ethernet(t.ipv4("192.0.2.1", "198.51.100.2", 17, t.udp(10000 + k, 53, bytes(size)), ident=k))


def starts(result) -> list[int]:
    return sorted(ts.value for ts in result.flows["ts_start"])


def capture(result) -> dict:
    (entry,) = result.summary["captures"]
    return entry


@pytest.mark.parametrize("nanosecond", [False, True], ids=["usec", "nsec"])
@pytest.mark.parametrize("big_endian", [False, True], ids=["le", "be"])
def test_byte_order_and_resolution(tmp_path, big_endian, nanosecond):
    times = [T0, T0 + 1, T0 + 999, T0 + 1_000_000_001, T0 + 3_600 * 10**9 + 7]
    path = t.write_pcap(tmp_path / "capture", [(ts, udp_frame(k)) for k, ts in enumerate(times)],
                        big_endian=big_endian, nanosecond=nanosecond)
    expected = times if nanosecond else [ts // 1000 * 1000 for ts in times]

    result = flowscope.analyze(path)

    assert result.errors == []
    c = capture(result)
    assert c["format"] == ("pcap-ns" if nanosecond else "pcap")
    assert c["compression"] is None
    assert c["link_types"] == [1]
    assert (c["packets_read"], c["packets_decoded"], c["packets_undecodable"]) == (5, 5, {})
    assert c["packets_truncated"] == 0
    assert c["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert starts(result) == sorted(expected)          # exact to the ns (or the us)
    assert len(result.flows) == 5
    assert set(result.flows["capture"]) == {str(path)}


@needs_tshark
@pytest.mark.parametrize("nanosecond", [False, True], ids=["usec", "nsec"])
@pytest.mark.parametrize("big_endian", [False, True], ids=["le", "be"])
def test_tshark_agrees(tmp_path, big_endian, nanosecond):
    times = [T0, T0 + 1, T0 + 999, T0 + 1_000_000_001]
    path = t.write_pcap(tmp_path / "capture", [(ts, udp_frame(k)) for k, ts in enumerate(times)],
                        big_endian=big_endian, nanosecond=nanosecond)
    result = flowscope.analyze(path)
    assert t.tshark_times(path) == [ts if nanosecond else ts // 1000 * 1000 for ts in times]
    assert sorted(t.tshark_times(path)) == starts(result)


def test_float_seconds_and_int_nanoseconds_agree(tmp_path):
    a = t.pcap_bytes([(1_700_000_000.5, udp_frame(0))], nanosecond=True)
    b = t.pcap_bytes([(1_700_000_000_500_000_000, udp_frame(0))], nanosecond=True)
    assert a == b


def test_record_with_explicit_orig_len_counts_as_truncated(tmp_path):
    frame = udp_frame(0, size=100)
    path = t.write_pcap(tmp_path / "capture", [(T0, frame[:60], len(frame))])
    result = flowscope.analyze(path)
    c = capture(result)
    assert c["packets_truncated"] == 1
    assert c["packets_decoded"] == 1
    (row,) = result.flows.itertuples()
    assert row.frame_bytes_orig == len(frame)
    assert row.bytes_orig == len(frame) - 14      # IP total length, from the header
    assert row.payload_bytes_orig == 100


@pytest.mark.parametrize("snaplen, decoded, reason", [
    (64, 3, None),                           # headers survive: decoded, counted truncated
    (14 + 20 + 4, 0, "truncated-l4-header"),  # UDP header cut
    (14 + 10, 0, "truncated-ip-header"),
    (10, 0, "truncated-link-header"),
])
def test_snaplen_truncated_packets(tmp_path, snaplen, decoded, reason):
    frames = [udp_frame(k, size=200) for k in range(3)]
    path = t.write_pcap(tmp_path / "capture", [(T0 + k * 10**9, f) for k, f in enumerate(frames)],
                        snaplen=snaplen)
    result = flowscope.analyze(path)
    c = capture(result)
    assert result.errors == []
    assert c["packets_read"] == 3
    assert c["packets_truncated"] == 3
    assert c["packets_decoded"] == decoded
    assert c["packets_undecodable"] == ({reason: 3} if reason else {})
    if decoded:
        assert list(result.flows["frame_bytes_orig"]) == [len(frames[0])] * 3
        assert list(result.flows["bytes_orig"]) == [len(frames[0]) - 14] * 3
        assert list(result.flows["payload_bytes_orig"]) == [200] * 3


@needs_tshark
def test_snaplen_truncated_file_reads_in_tshark(tmp_path):
    frames = [udp_frame(k, size=200) for k in range(3)]
    path = t.write_pcap(tmp_path / "capture", [(T0 + k, f) for k, f in enumerate(frames)],
                        snaplen=64, nanosecond=True)
    assert t.tshark_times(path) == [T0, T0 + 1, T0 + 2]


def test_many_packets_across_batches(tmp_path):
    """More packets than one batch and a flow spanning several batches."""
    n = 2500
    pkts = [(T0 + k * 1_000_000_000, t.ethernet(t.ipv4("192.0.2.1", "198.51.100.2", 17,
                                                       t.udp(5000, 53, bytes(k % 50)), ident=k)))
            for k in range(n)]
    path = t.write_pcap(tmp_path / "capture", pkts, nanosecond=True)
    result = flowscope.analyze(path, batch_packets=1000, udp_idle_s=10.0)
    c = capture(result)
    assert (c["packets_read"], c["packets_decoded"]) == (n, n)
    assert len(result.flows) == 1
    assert int(result.flows["pkts_orig"].iloc[0]) == n
    assert result.flows["ts_end"].iloc[0].value == T0 + (n - 1) * 1_000_000_000


def test_record_larger_than_the_read_chunk(tmp_path, monkeypatch):
    """A record that does not fit in the first read is completed by the next fill."""
    import functools

    import flowscope.sources
    from flowscope.sources.stream import ByteStream
    monkeypatch.setattr(flowscope.sources, "ByteStream", functools.partial(ByteStream, chunk=64))
    big = t.ethernet(t.ipv4("192.0.2.1", "198.51.100.2", 17, t.udp(1, 2, bytes(3000))))
    path = t.write_pcap(tmp_path / "capture", [(T0, udp_frame(0)), (T0 + 1, big), (T0 + 2, udp_frame(2))],
                        nanosecond=True)
    result = flowscope.analyze(path)
    assert result.errors == []
    assert capture(result)["packets_decoded"] == 3
    assert starts(result) == [T0, T0 + 1, T0 + 2]
