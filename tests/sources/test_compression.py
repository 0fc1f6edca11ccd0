"""gzip, bzip2 and xz captures: detected by their magic bytes, never by the file name.

Files are named without telling extensions (and some with lying ones).
"""
from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import shutil
import zlib

import pytest

import flowscope
from flowscope import testing as t

T0 = 1_700_000_000_000_000_000
COMPRESSORS = {
    "gzip": gzip.compress,
    "bzip2": lambda d: bz2.compress(d, compresslevel=1),  # 100 kB blocks
    "xz": lzma.compress,
}


COMPRESSIONS = list(COMPRESSORS)


def frame(k: int, size: int = 64) -> bytes:
    return t.ethernet(t.ipv4("192.0.2.1", "198.51.100.2", 17, t.udp(30000 + k % 1000, 443, bytes(size)), ident=k))


def inner_file(kind: str, n: int = 5, size: int = 64) -> tuple[bytes, list[int]]:
    times = [T0 + k * 1_000_000_007 for k in range(n)]
    if kind == "pcapng":
        s = t.Section()
        i = s.interface(1, tsresol=9)
        for k, ts in enumerate(times):
            s.epb(i, ts, frame(k, size))
        return t.pcapng_bytes([s]), times
    nano = kind == "pcap-ns"
    data = t.pcap_bytes([(ts, frame(k, size)) for k, ts in enumerate(times)], nanosecond=nano,
                        big_endian=nano)
    return data, times if nano else [ts // 1000 * 1000 for ts in times]


def capture(result) -> dict:
    (entry,) = result.summary["captures"]
    return entry


@pytest.mark.parametrize("kind", ["pcap", "pcap-ns", "pcapng"])
@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_compressed_capture(tmp_path, compression, kind):
    data, times = inner_file(kind)
    path = tmp_path / "capture-1"
    path.write_bytes(COMPRESSORS[compression](data))

    result = flowscope.analyze(path)

    assert result.errors == []
    c = capture(result)
    assert c["compression"] == compression
    assert c["format"] == kind
    assert (c["packets_read"], c["packets_decoded"]) == (len(times), len(times))
    assert c["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()   # of the compressed bytes
    assert sorted(ts.value for ts in result.flows["ts_start"]) == times


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_misleading_file_name(tmp_path, compression):
    data, times = inner_file("pcapng")
    path = tmp_path / "capture.pcap"          # says pcap, holds compressed pcapng
    path.write_bytes(COMPRESSORS[compression](data))
    c = capture(flowscope.analyze(path))
    assert (c["compression"], c["format"], c["packets_read"]) == (compression, "pcapng", len(times))


def test_uncompressed_file_named_gz(tmp_path):
    data, times = inner_file("pcap")
    path = tmp_path / "capture.pcap.gz"
    path.write_bytes(data)
    c = capture(flowscope.analyze(path))
    assert (c["compression"], c["format"], c["packets_read"]) == (None, "pcap", len(times))


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_larger_than_one_read_chunk(tmp_path, compression):
    """~3 MB decompressed: records straddle the 1 MiB read chunks of the stream."""
    data, times = inner_file("pcap-ns", n=2100, size=1400)
    assert len(data) > 2 * (1 << 20)
    path = tmp_path / "big-capture"
    path.write_bytes(COMPRESSORS[compression](data))
    result = flowscope.analyze(path)
    assert result.errors == []
    c = capture(result)
    assert (c["packets_read"], c["packets_decoded"]) == (2100, 2100)
    assert int(result.flows["pkts_orig"].sum()) == 2100
    assert result.flows["ts_end"].max().value == times[-1]


def test_multi_member_gzip(tmp_path):
    """`cat a.gz b.gz` is one valid gzip stream; the split falls inside a record."""
    data, times = inner_file("pcap-ns", n=6)
    cut = len(data) // 2 + 3
    path = tmp_path / "joined"
    path.write_bytes(gzip.compress(data[:cut]) + gzip.compress(data[cut:]))
    result = flowscope.analyze(path)
    assert result.errors == []
    assert capture(result)["packets_read"] == 6


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
@pytest.mark.parametrize("kind", ["pcap-ns", "pcapng"])
def test_tshark_reads_gzip_files(tmp_path, kind):
    """tshark 4.0 reads gzip (not bzip2/xz): it sees the same packets and timestamps."""
    data, times = inner_file(kind)
    path = tmp_path / "capture-gz"
    path.write_bytes(gzip.compress(data))
    assert t.tshark_times(path) == times


def _complete_records(data: bytes) -> int:
    """Complete records in a prefix of a little-endian microsecond pcap."""
    pos, n = 24, 0
    while pos + 16 <= len(data):
        incl = int.from_bytes(data[pos + 8:pos + 12], "little")
        if pos + 16 + incl > len(data):
            break
        pos += 16 + incl
        n += 1
    return n


def _recoverable(compression: str, damaged: bytes) -> bytes:
    """What a streaming decompressor yields before it meets the damage."""
    if compression == "gzip":
        d = zlib.decompressobj(31)
    elif compression == "bzip2":
        d = bz2.BZ2Decompressor()
    else:
        d = lzma.LZMADecompressor()
    out = b""
    for k in range(0, len(damaged), 4096):
        try:
            out += d.decompress(damaged[k:k + 4096])
        except (OSError, EOFError, zlib.error, lzma.LZMAError):
            break
    return out


def _damaged_capture(tmp_path, compression: str, how: str):
    data, _ = inner_file("pcap", n=3000, size=200)        # ~750 kB, < one read chunk
    packed = COMPRESSORS[compression](data)
    if how == "truncated":
        damaged = packed[: len(packed) * 3 // 4]
    else:
        damaged = bytearray(packed)
        for k in range(len(packed) * 3 // 4, len(packed) * 3 // 4 + 64):
            damaged[k] ^= 0x5A
        damaged = bytes(damaged)
    path = tmp_path / f"damaged-{compression}"
    path.write_bytes(damaged)
    return path, _complete_records(_recoverable(compression, damaged))


@pytest.mark.parametrize("how", ["truncated", "corrupted"])
@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_damaged_compressed_capture_reports_the_file(tmp_path, compression, how):
    path, _ = _damaged_capture(tmp_path, compression, how)
    result = flowscope.analyze(path)
    (err,) = result.errors
    assert err.startswith(f"{path}: ")
    assert "\n" not in err
    assert capture(result)["error"] == err


@pytest.mark.parametrize("how", ["truncated", "corrupted"])
@pytest.mark.parametrize("compression", list(COMPRESSORS))
def test_damaged_compressed_capture_keeps_packets_before_the_damage(tmp_path, compression, how):
    path, recoverable = _damaged_capture(tmp_path, compression, how)
    assert recoverable > 1000   # the damage is late in the file
    result = flowscope.analyze(path)
    assert len(result.errors) == 1
    read = capture(result)["packets_read"]
    # Everything before the damage is kept. Deflate and LZMA notice corruption only at
    # their next integrity check, so some records decoded from damaged data may follow;
    # the capture's error says the data was corrupt.
    assert read >= recoverable - 100

