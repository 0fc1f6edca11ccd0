"""Periods of a rotated run: names that sort and stay unique, clock-aligned bounds, the first
packet time of a ring file (pcap and pcapng, any resolution), the atomic write."""
import struct

import pytest

from flowscope.live.periods import (
    PARTIAL, Schedule, first_packet_ns, is_period_name, iso_ns, period_name, unique_dir, write_period,
)

T = 1_796_378_400 * 10**9 + 123_456_789   # 2026-12-04T10:00:00.123456789Z


def test_names_are_the_start_in_utc_and_sort_in_time_order():
    assert period_name(T) == "2026-12-04T10-00-00Z"
    assert period_name(T, fraction=True) == "2026-12-04T10-00-00.123456Z"
    names = [period_name(T + k * 37 * 10**9) for k in range(200)]
    assert names == sorted(names) and len(set(names)) == len(names)
    assert all(is_period_name(n) for n in names)
    assert not is_period_name("pcap") and not is_period_name(".2026-12-04T10-00-00Z.partial")
    assert iso_ns(T) == "2026-12-04T10:00:00.123456Z"


def test_time_periods_are_aligned_to_the_clock():
    hour = Schedule(every_s=3600)
    start, end = hour.bounds_ns(T + 1234 * 10**9)
    assert (period_name(start), period_name(end)) == ("2026-12-04T10-00-00Z", "2026-12-04T11-00-00Z")
    ten = Schedule(every_s=600)
    assert period_name(ten.bounds_ns(T + 17 * 60 * 10**9)[0]) == "2026-12-04T10-10-00Z"
    assert (hour.text(), ten.text(), Schedule(every_s=45).text(), Schedule(every_packets=5000).text()) == \
        ("1h", "10m", "45s", "5,000 packets")
    assert Schedule(every_packets=10).describe() == {"by": "packets", "every_s": None, "every_packets": 10}


def test_an_existing_name_gets_a_suffix(tmp_path):
    assert unique_dir(tmp_path, "2026-12-04T10-00-00Z") == "2026-12-04T10-00-00Z"
    (tmp_path / "2026-12-04T10-00-00Z").mkdir()
    assert unique_dir(tmp_path, "2026-12-04T10-00-00Z") == "2026-12-04T10-00-00Z-2"
    (tmp_path / f".2026-12-04T10-00-00Z-2{PARTIAL}").mkdir()   # being written, or left by a crash
    assert unique_dir(tmp_path, "2026-12-04T10-00-00Z") == "2026-12-04T10-00-00Z-3"


def _pcapng(order: str, tsresol: int | None, ticks: int, offset_s: int = 0) -> bytes:
    def block(btype, body):
        n = 12 + len(body)
        return struct.pack(order + "II", btype, n) + body + struct.pack(order + "I", n)
    shb = block(0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1))
    opts = b""
    if tsresol is not None:
        opts += struct.pack(order + "HH", 9, 1) + bytes([tsresol, 0, 0, 0])
    if offset_s:
        opts += struct.pack(order + "HHq", 14, 8, offset_s)
    idb = block(1, struct.pack(order + "HHI", 1, 0, 65535) + opts + (struct.pack(order + "HH", 0, 0) if opts else b""))
    data = b"\0" * 60
    epb = block(6, struct.pack(order + "IIIII", 0, ticks >> 32, ticks & 0xFFFFFFFF, 60, 60) + data)
    nrb = block(4, struct.pack(order + "HH", 0, 0))
    return shb + idb + nrb + epb


@pytest.mark.parametrize("order", ["<", ">"])
def test_first_packet_time_of_pcapng_in_each_resolution_and_byte_order(tmp_path, order):
    p = tmp_path / "x.pcapng"
    p.write_bytes(_pcapng(order, None, T // 1000))                  # default: microseconds
    assert first_packet_ns(p) == T // 1000 * 1000
    p.write_bytes(_pcapng(order, 9, T))                             # dumpcap's nanoseconds
    assert first_packet_ns(p) == T
    p.write_bytes(_pcapng(order, 0x80 | 20, (T * 2**20) // 10**9))  # 2^-20 s ticks
    assert abs(first_packet_ns(p) - T) < 1000
    p.write_bytes(_pcapng(order, 9, T - 3600 * 10**9, offset_s=3600))
    assert first_packet_ns(p) == T


def test_first_packet_time_of_pcap_and_of_files_without_packets(tmp_path):
    p = tmp_path / "x.pcap"
    head = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    p.write_bytes(head + struct.pack("<IIII", T // 10**9, (T // 1000) % 10**6, 60, 60) + b"\0" * 60)
    assert first_packet_ns(p) == T // 1000 * 1000
    nano = struct.pack(">IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1)
    p.write_bytes(nano + struct.pack(">IIII", T // 10**9, T % 10**9, 60, 60) + b"\0" * 60)
    assert first_packet_ns(p) == T
    p.write_bytes(head)
    assert first_packet_ns(p) is None
    p.write_bytes(_pcapng("<", 9, T)[:-80])     # header blocks only, the packet cut off
    assert first_packet_ns(p) is None
    p.write_bytes(b"")
    assert first_packet_ns(p) is None
    assert first_packet_ns(tmp_path / "absent") is None


def test_a_period_appears_under_its_name_only_complete(tmp_path):
    seen = []

    class Result:
        def write(self, out, force, **options):
            seen.append((out.name, options))
            (out / "flows.parquet").parent.mkdir(parents=True, exist_ok=True)
            (out / "flows.parquet").write_bytes(b"x")

    final = write_period(Result(), tmp_path, "2026-12-04T10-00-00Z", {"report": False})
    assert seen == [(f".2026-12-04T10-00-00Z{PARTIAL}", {"report": False})]   # written under the temp name
    assert final == tmp_path / "2026-12-04T10-00-00Z" and (final / "flows.parquet").read_bytes() == b"x"
    assert [p.name for p in tmp_path.iterdir()] == ["2026-12-04T10-00-00Z"]
