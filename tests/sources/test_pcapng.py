"""pcapng: sections, interfaces, if_tsresol/if_tsoffset, byte orders, every block type,
PCAPdroid's EPB comments and UID-map block.

tshark (when installed) reads every generated file: same packets, same timestamps.
"""
from __future__ import annotations

import shutil

import pandas as pd
import pytest

import flowscope
from flowscope import testing as t

T0 = 1_700_000_000_000_000_000
STEP = 1_953_125  # 1e9 / 2^9 ns: exact at 10^-9 and at 2^-n s resolution for n >= 9
needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")



def ip(k: int, v6: bool = False) -> bytes:
    """An IP/UDP packet with source port 20000+k: one flow per packet."""
    if v6:
        return t.ipv6("2001:db8::1", "2001:db8::2", 17, t.udp(20000 + k, 53, b"q" * 12), flow_label=k)
    return t.ipv4("192.0.2.1", "198.51.100.2", 17, t.udp(20000 + k, 53, b"q" * 12), ident=k)


def starts(result) -> list[int]:
    return sorted(ts.value for ts in result.flows["ts_start"])


def capture(result) -> dict:
    (entry,) = result.summary["captures"]
    return entry


def rich_section(big_endian: bool, base: int, k0: int) -> tuple[t.Section, list[int]]:
    """A section with three interfaces (Ethernet 10^-9, raw IP 10^-6 default, SLL2 2^-20
    with if_tsoffset) and every block type. Returns it and its packets' timestamps in
    file order (a simple packet block takes the previous packet's)."""
    s = t.Section(big_endian=big_endian)
    eth = s.interface(1, tsresol=9)
    s.nrb([("192.0.2.1", ["a.example"]), ("2001:db8::1", ["b.example", "c.example"])])
    times = []
    s.epb(eth, base + 1, t.ethernet(ip(k0)), comment="first packet")
    times.append(base + 1)
    raw = s.interface(101)                                   # IDB after a packet: allowed
    s.epb(raw, base + 2_000, ip(k0 + 1, v6=True))
    times.append(base + 2_000)
    cooked = s.interface(276, tsresol=0x80 | 20, tsoffset=3600)
    s.epb(cooked, base + 3 * STEP, t.sll2(ip(k0 + 2)))
    times.append(base + 3 * STEP)
    s.opb(eth, base + 4 * STEP, t.ethernet(ip(k0 + 3)))    # obsolete packet block, type 2
    times.append(base + 4 * STEP)
    s.spb(t.ethernet(ip(k0 + 4)))                            # simple packet block: interface 0
    times.append(times[-1])
    s.isb(eth, base + 5 * STEP, ifrecv=10, ifdrop=3)
    s.custom(32473, b"any data")                             # not PCAPdroid's PEN
    s.block(0x7E57B10C, b"unknown block type")
    s.epb(raw, base + 6_000_000, ip(k0 + 5))                # 10^-6 s ticks
    times.append(base + 6_000_000)
    return s, times


def write_sections(tmp_path, orders: str):
    """One rich section per character of `orders` ("<" little-, ">" big-endian)."""
    sections, times = [], []
    for n, o in enumerate(orders):
        s, ts = rich_section(o == ">", T0 + n * 10**9, k0=10 * n)
        sections.append(s)
        times += ts
    return t.write_pcapng(tmp_path / "capture", sections), times


@pytest.mark.parametrize("orders", ["<", ">", "<<", "<>", "><", ">>"])
def test_sections_interfaces_and_blocks(tmp_path, orders):
    path, times = write_sections(tmp_path, orders)

    result = flowscope.analyze(path)

    assert result.errors == []
    c = capture(result)
    n = len(orders)
    assert c["format"] == "pcapng"
    assert c["link_types"] == [1, 101, 276]
    assert (c["packets_read"], c["packets_decoded"], c["packets_undecodable"]) == (6 * n, 6 * n, {})
    assert c["sections"] == n
    assert c["interfaces"] == 3 * n
    assert c["interface_stats"] == {"0": {"ifrecv": 10, "ifdrop": 3}}
    assert c["name_records"] == 2 * n
    assert c["blocks_skipped"] == {"custom": n, "0x7E57B10C": n}
    assert c["packets_without_timestamp"] == n
    assert starts(result) == sorted(times)
    assert sorted(result.flows["orig_ip"].tolist()) == sorted((["2001:db8::1"] + ["192.0.2.1"] * 5) * n)


@needs_tshark
@pytest.mark.parametrize("orders", ["<", ">", "<>", "><"])
def test_tshark_reads_sections(tmp_path, orders):
    path, times = write_sections(tmp_path, orders)
    seen = t.tshark_times(path)
    assert len(seen) == len(times)
    # tshark leaves simple packet blocks without a time; flowscope uses the previous packet's
    assert [ts for ts, w in zip(times, seen) if w is not None] == [w for w in seen if w is not None]
    assert [k for k, w in enumerate(seen) if w is None] == [4 + 6 * n for n in range(len(orders))]


RESOLUTIONS = [  # (if_tsresol byte or None, a timestamp exact at that resolution)
    (None, T0 + 123_456_000),
    (0, T0 + 2 * 10**9),
    (3, T0 + 123_000_000),
    (6, T0 + 123_456_000),
    (9, T0 + 123_456_789),
    (0x80 | 9, T0 + 7 * STEP),
    (0x80 | 10, T0 + 511 * STEP),
    (0x80 | 20, T0 + 3 * STEP),
    (0x80 | 30, T0 + 77 * STEP),
    (0x80 | 32, T0 + 500 * STEP),
]


@pytest.mark.parametrize("tsresol, ts", RESOLUTIONS, ids=[str(r) for r, _ in RESOLUTIONS])
@pytest.mark.parametrize("tsoffset", [None, 0, 86400, -86400], ids=lambda v: f"off{v}")
def test_tsresol_and_tsoffset(tmp_path, tsresol, ts, tsoffset):
    s = t.Section()
    i = s.interface(101, tsresol=tsresol, tsoffset=tsoffset)
    s.epb(i, ts, ip(0))
    s.epb(i, ts + 10**9, ip(1))
    path = t.write_pcapng(tmp_path / "capture", [s])
    result = flowscope.analyze(path)
    assert result.errors == []
    assert starts(result) == [ts, ts + 10**9]


@needs_tshark
def test_tshark_agrees_on_every_resolution(tmp_path):
    """One file, one interface per resolution (so one tshark run checks them all)."""
    s = t.Section()
    times = []
    for k, (tsresol, ts) in enumerate(RESOLUTIONS):
        i = s.interface(101, tsresol=tsresol, tsoffset=(k % 3 - 1) * 86400)
        s.epb(i, ts, ip(k))
        times.append(ts)
    path = t.write_pcapng(tmp_path / "capture", [s])
    assert t.tshark_times(path) == times
    assert starts(flowscope.analyze(path)) == sorted(times)


def test_interfaces_with_different_link_types(tmp_path):
    s = t.Section()
    frames = {1: t.ethernet(ip(0)), 113: t.sll(ip(1)), 276: t.sll2(ip(2, v6=True)),
              0: t.null_loopback(ip(3)), 108: t.loop(ip(4, v6=True)), 9: t.ppp(ip(5)),
              101: ip(6), 228: ip(7), 229: ip(8, v6=True)}
    for k, (link, frame) in enumerate(frames.items()):
        s.epb(s.interface(link, tsresol=9), T0 + k, frame)
    path = t.write_pcapng(tmp_path / "capture", [s])
    result = flowscope.analyze(path)
    c = capture(result)
    assert c["link_types"] == sorted(frames)
    assert (c["packets_read"], c["packets_decoded"]) == (len(frames), len(frames))
    assert starts(result) == [T0 + k for k in range(len(frames))]
    if shutil.which("tshark"):
        assert t.tshark_times(path) == [T0 + k for k in range(len(frames))]


def test_interface_ids_restart_in_each_section(tmp_path):
    a = t.Section()
    a.interface(1)
    a.epb(a.interface(101, tsresol=9), T0, ip(0))        # interface 1: raw IP
    b = t.Section()
    b.epb(b.interface(101, tsresol=9), T0 + 1, ip(1))    # interface 0 again
    b.epb(1, T0 + 2, ip(2))                              # undeclared in this section
    path = t.write_pcapng(tmp_path / "capture", [a, b])
    result = flowscope.analyze(path)
    c = capture(result)
    assert result.errors == []
    assert c["packets_decoded"] == 2
    assert c["packets_unknown_interface"] == 1
    assert c["interfaces"] == 3


def test_snaplen_truncated_epb_and_spb(tmp_path):
    s = t.Section()
    i = s.interface(1, tsresol=9, snaplen=60)
    frame = t.ethernet(t.ipv4("192.0.2.1", "198.51.100.2", 17, t.udp(1, 2, bytes(300))))
    s.epb(i, T0, frame)
    s.spb(frame)
    s.opb(i, T0 + 1, frame)  # the same packet thrice within 1 ms: two mirror-port duplicates
    path = t.write_pcapng(tmp_path / "capture", [s])
    result = flowscope.analyze(path)
    c = capture(result)
    assert (c["packets_read"], c["packets_decoded"], c["packets_truncated"]) == (3, 3, 3)
    (row,) = result.flows.itertuples()
    assert (row.pkts_orig, row.duplicates) == (1, 2)
    assert row.frame_bytes_orig == len(frame)
    assert row.bytes_orig == len(frame) - 14
    if shutil.which("tshark"):
        assert t.tshark_times(path) == [T0, None, T0 + 1]


# --- PCAPdroid pcapng ------------------------------------------------------------------

def pcapdroid_section(map_first: bool = True) -> t.Section:
    s = t.Section()
    if map_first:
        s.pcapdroid_uid_map(10123, "com.whatsapp", "WhatsApp")
        s.pcapdroid_uid_map(10145, "com.facebook.katana", "Facebook")
    i = s.interface(101, tsresol=9)
    chat = lambda k, **kw: t.ipv4("10.215.173.1", "157.240.20.53", 6, t.tcp(41000, 5222, seq=k, **kw))
    s.epb(i, T0, chat(0, flags="S"), comment="u-10123")
    s.epb(i, T0 + 20_000_000, t.ipv4("157.240.20.53", "10.215.173.1", 6,
                                     t.tcp(5222, 41000, flags="SA", ack=1)), comment="u-10123")
    s.epb(i, T0 + 30_000_000, t.ipv4("10.215.173.1", "157.240.0.35", 17, t.udp(42000, 443, b"x")),
          comment="u-10145")
    s.epb(i, T0 + 40_000_000, t.ipv4("10.215.173.1", "1.1.1.1", 1, t.icmp(8, 0, b"\0\1\0\1")), comment="u--1")
    s.epb(i, T0 + 50_000_000, t.ipv4("10.215.173.1", "216.239.35.4", 17, t.udp(43000, 123, bytes(48))))
    if not map_first:
        s.pcapdroid_uid_map(10123, "com.whatsapp", "WhatsApp")
        s.pcapdroid_uid_map(10145, "com.facebook.katana", "Facebook")
    return s


def _apps(result) -> dict:
    """(responder ip, port) -> (app_uid or None, app or None)."""
    f = result.flows
    return {(ip_, port): (None if pd.isna(uid) else int(uid), None if pd.isna(app) else app)
            for ip_, port, uid, app in zip(f["resp_ip"], f["resp_port"], f["app_uid"], f["app"])}


def test_pcapdroid_comments_and_uid_map(tmp_path):
    path = t.write_pcapng(tmp_path / "capture", [pcapdroid_section()])
    result = flowscope.analyze(path)
    assert result.errors == []
    assert _apps(result) == {
        ("157.240.20.53", 5222): (10123, "WhatsApp"),
        ("157.240.0.35", 443): (10145, "Facebook"),
        ("1.1.1.1", 0): (-1, None),
        ("216.239.35.4", 123): (None, None),
    }
    c = capture(result)
    assert c["apps"] == {"-1": None, "10123": "WhatsApp", "10145": "Facebook"}
    assert "custom" not in c.get("blocks_skipped", {})
    if shutil.which("tshark"):
        assert t.tshark_times(path) == [T0 + k * 10_000_000 for k in (0, 2, 3, 4, 5)]


def test_pcapdroid_uid_map_after_the_packets(tmp_path):
    path = t.write_pcapng(tmp_path / "capture", [pcapdroid_section(map_first=False)])
    result = flowscope.analyze(path)
    assert _apps(result)[("157.240.20.53", 5222)] == (10123, "WhatsApp")


def test_pcapdroid_comment_among_other_options(tmp_path):
    s = t.Section()
    s.pcapdroid_uid_map(10123, "com.whatsapp", "")   # no app label: the package name stands in
    i = s.interface(101, tsresol=9)
    s.epb(i, T0, ip(0), options=[(2, b"\0\0\0\1"), (1, b"not a uid"), (1, b"u-10123")])
    path = t.write_pcapng(tmp_path / "capture", [s])
    result = flowscope.analyze(path)
    assert _apps(result)[("198.51.100.2", 53)] == (10123, "com.whatsapp")


def test_blocks_larger_than_the_read_chunk(tmp_path, monkeypatch):
    """Packet and non-packet blocks that do not fit in one read are completed by refills."""
    import functools

    import flowscope.sources
    from flowscope.sources.stream import ByteStream
    monkeypatch.setattr(flowscope.sources, "ByteStream", functools.partial(ByteStream, chunk=64))
    s = t.Section(options=[(4, b"flowscope test " * 20)])       # shb_userappl: a 400-byte SHB
    s.pcapdroid_uid_map(10123, "com.whatsapp" + "x" * 200, "WhatsApp")
    i = s.interface(1, tsresol=9, options=[(2, b"eth0" * 50)])
    s.epb(i, T0, t.ethernet(t.ipv4("192.0.2.1", "198.51.100.2", 17, t.udp(1, 2, bytes(3000)))), comment="u-10123")
    s.custom(32473, bytes(700))
    s.epb(i, T0 + 1, t.ethernet(ip(1)))
    path = t.write_pcapng(tmp_path / "capture", [s, s])
    result = flowscope.analyze(path)
    assert result.errors == []
    c = capture(result)
    assert (c["packets_read"], c["packets_decoded"], c["sections"]) == (4, 4, 2)
    assert c["apps"] == {"10123": "WhatsApp"}
