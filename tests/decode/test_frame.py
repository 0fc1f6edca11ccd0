"""Frame decoding: every supported link type, IPv4 options and fragments, IPv6 extension
headers, TCP/UDP/ICMP/ICMPv6, unsupported link types, non-IP frames, PCAPdroid trailers.

Most tests write a capture with flowscope.testing and read it with flowscope.analyze;
tshark (when installed) reads the same files as a check on the writers.
"""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

import flowscope
from flowscope import testing as t
from flowscope.decode import layout as L
from flowscope.decode.frame import decode_frame

T0 = 1_700_000_000_000_000_000
SEC = 1_000_000_000
A4, B4 = "192.0.2.10", "198.51.100.20"
A6, B6 = "2001:db8::10", "2001:db8:1::20"
has_tshark = shutil.which("tshark") is not None
needs_tshark = pytest.mark.skipif(not has_tshark, reason="tshark not installed")


def conversation(v6: bool) -> list[bytes]:
    """IP packets: a TCP handshake + data, a UDP exchange, an ICMP echo pair."""
    a, b = (A6, B6) if v6 else (A4, B4)
    ipf = t.ipv6 if v6 else t.ipv4
    echo, reply, icmp_proto = (128, 129, 58) if v6 else (8, 0, 1)
    kw = (lambda k: {"flow_label": k}) if v6 else (lambda k: {"ident": k})
    return [
        ipf(a, b, 6, t.tcp(40000, 443, flags="S", seq=100), **kw(1)),
        ipf(b, a, 6, t.tcp(443, 40000, flags="SA", seq=900, ack=101), **kw(2)),
        ipf(a, b, 6, t.tcp(40000, 443, flags="A", seq=101, ack=901), **kw(3)),
        ipf(a, b, 6, t.tcp(40000, 443, flags="PA", seq=101, ack=901, payload=b"hello"), **kw(4)),
        ipf(a, b, 17, t.udp(5353, 53, b"query"), **kw(5)),
        ipf(b, a, 17, t.udp(53, 5353, b"answer!"), **kw(6)),
        ipf(a, b, icmp_proto, t.icmp(echo, 0, b"\x00\x07\x00\x01ping"), **kw(7)),
        ipf(b, a, icmp_proto, t.icmp(reply, 0, b"\x00\x07\x00\x01ping"), **kw(8)),
    ]


def expected_flows(v6: bool, packets: list[bytes], frames: list[bytes]) -> list[dict]:
    a, b = (A6, B6) if v6 else (A4, B4)
    n = [len(p) for p in packets]
    f = [len(x) for x in frames]
    return [
        dict(l4="tcp", ip_version=6 if v6 else 4, orig_ip=a, orig_port=40000, resp_ip=b, resp_port=443,
             pkts_orig=3, pkts_resp=1, bytes_orig=n[0] + n[2] + n[3], bytes_resp=n[1],
             payload_bytes_orig=5, payload_bytes_resp=0,
             frame_bytes_orig=f[0] + f[2] + f[3], frame_bytes_resp=f[1], tcp_state="S1"),
        dict(l4="udp", ip_version=6 if v6 else 4, orig_ip=a, orig_port=5353, resp_ip=b, resp_port=53,
             pkts_orig=1, pkts_resp=1, bytes_orig=n[4], bytes_resp=n[5], payload_bytes_orig=5,
             payload_bytes_resp=7, frame_bytes_orig=f[4], frame_bytes_resp=f[5], tcp_state=""),
        dict(l4="icmp6" if v6 else "icmp", ip_version=6 if v6 else 4, orig_ip=a, orig_port=0, resp_ip=b,
             resp_port=0, pkts_orig=1, pkts_resp=1, bytes_orig=n[6], bytes_resp=n[7],
             payload_bytes_orig=4, payload_bytes_resp=4, frame_bytes_orig=f[6], frame_bytes_resp=f[7],
             tcp_state=""),
    ]


def flow_rows(result, keys) -> list[dict]:
    rows = result.flows[list(keys)].to_dict("records")
    return sorted(({k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in rows),
                  key=lambda r: r["l4"])


def capture(result) -> dict:
    (entry,) = result.summary["captures"]
    return entry


LINKS = {  # name: (LINKTYPE, wrapper, IPv6 supported by the wrapper)
    "ethernet": (1, t.ethernet, True),
    "802.1q": (1, lambda p: t.ethernet(p, vlans=[100]), True),
    "qinq": (1, lambda p: t.ethernet(p, vlans=[100, 200], qinq=True), True),
    "802.1q-stacked": (1, lambda p: t.ethernet(p, vlans=[100, 200]), True),
    "raw-101": (101, lambda p: p, True),
    "raw-12": (12, lambda p: p, True),
    "raw-ipv4-228": (228, lambda p: p, False),
    "raw-ipv6-229": (229, lambda p: p, True),
    "sll": (113, t.sll, True),
    "sll-outgoing": (113, lambda p: t.sll(p, packet_type=4), True),
    "sll2": (276, t.sll2, True),
    "null-le": (0, t.null_loopback, True),
    "null-be": (0, lambda p: t.null_loopback(p, big_endian=True), True),
    "null-af24": (0, lambda p: t.null_loopback(p, af6=24), True),
    "null-af28": (0, lambda p: t.null_loopback(p, af6=28), True),
    "loop": (108, t.loop, True),
    "ppp": (9, t.ppp, True),
    "ppp-no-hdlc": (9, lambda p: t.ppp(p, hdlc=False), True),
}
CASES = [(name, v6) for name, (_, _, ok6) in LINKS.items() for v6 in (False, True) if ok6 or not v6]
CASES = [c for c in CASES if not (c[0] == "raw-ipv6-229" and not c[1])]


@pytest.mark.parametrize("link, v6", CASES, ids=[f"{n}-v{6 if v else 4}" for n, v in CASES])
def test_link_types(tmp_path, link, v6):
    linktype, wrap, _ = LINKS[link]
    packets = conversation(v6)
    frames = [wrap(p) for p in packets]
    path = t.write_pcap(tmp_path / "capture", [(T0 + k * SEC, f) for k, f in enumerate(frames)],
                        linktype=linktype, nanosecond=True)

    result = flowscope.analyze(path)

    c = capture(result)
    assert result.errors == []
    assert c["link_types"] == [linktype]
    assert (c["packets_read"], c["packets_decoded"], c["packets_undecodable"]) == (8, 8, {})
    expected = expected_flows(v6, packets, frames)
    keys = [k for k in expected[0] if k != "ip_version"]   # ip_version: see below
    assert flow_rows(result, keys) == sorted(({k: e[k] for k in keys} for e in expected), key=lambda r: r["l4"])
    versions = dict(zip(result.flows["l4"], result.flows["ip_version"].tolist()))
    assert {versions["tcp"], versions["icmp6" if v6 else "icmp"]} == {6 if v6 else 4}
    assert sorted(ts.value for ts in result.flows["ts_start"]) == [T0, T0 + 4 * SEC, T0 + 6 * SEC]


@needs_tshark
@pytest.mark.parametrize("link", list(LINKS))
def test_tshark_reads_link_types(tmp_path, link):
    linktype, wrap, _ = LINKS[link]
    packets = conversation(False)[:2] + conversation(True)[-2:]
    if linktype == 228:
        packets = packets[:2]
    if linktype == 229:
        packets = packets[2:]
    path = t.write_pcap(tmp_path / "capture", [(T0 + k, wrap(p)) for k, p in enumerate(packets)],
                        linktype=linktype, nanosecond=True)
    assert t.tshark_times(path) == [T0 + k for k in range(len(packets))]



@pytest.mark.parametrize("v6", [False, True], ids=["v4", "v6"])
def test_udp_flow_ip_version(tmp_path, v6):
    packets = conversation(v6)[4:6]
    path = t.write_pcap(tmp_path / "capture", [(T0 + k * SEC, t.ethernet(p)) for k, p in enumerate(packets)])
    (row,) = flowscope.analyze(path).flows.itertuples()
    assert (row.l4, row.ip_version) == ("udp", 6 if v6 else 4)


def test_decoder_ip_version_of_udp():
    row, _ = decode(t.ipv4(A4, B4, 17, t.udp(1, 2, b"x")), 101)
    assert (row[L.STATUS], row[L.IPVER], row[L.PROTO]) == (L.OK, 4, 17)


def test_unknown_link_type_is_counted_not_fatal(tmp_path):
    frames = [t.ethernet(p) for p in conversation(False)[:3]]
    path = t.write_pcap(tmp_path / "capture", [(T0 + k * SEC, f) for k, f in enumerate(frames)],
                        linktype=147)  # LINKTYPE_USER0: valid, but not decoded by flowscope
    result = flowscope.analyze(path)
    c = capture(result)
    assert result.errors == []
    assert c["error"] is None
    assert c["link_types"] == [147]
    assert (c["packets_read"], c["packets_decoded"]) == (3, 0)
    assert c["packets_undecodable"] == {"unsupported-linktype": 3}
    assert len(result.flows) == 0
    if has_tshark:
        assert t.tshark_times(path) == [T0, T0 + SEC, T0 + 2 * SEC]


def arp_request() -> bytes:
    return (bytes.fromhex("0001 0800 06 04 0001".replace(" ", "")) + b"\x02\0\0\0\0\x01"
            + bytes([192, 0, 2, 10]) + b"\0" * 6 + bytes([192, 0, 2, 1]))


@pytest.mark.parametrize("linktype, frame", [
    (1, t.ethernet(arp_request(), ethertype=0x0806)),
    (1, t.ethernet(arp_request(), ethertype=0x0806, vlans=[7])),
    (113, t.sll(arp_request(), ethertype=0x0806)),
    (276, t.sll2(arp_request(), ethertype=0x0806)),
    (0, (7).to_bytes(4, "little") + b"\0" * 20),   # AF 7: not IP
    (9, b"\xff\x03\xc0\x21" + b"\x01\x01\x00\x04"),  # PPP LCP
], ids=["eth-arp", "vlan-arp", "sll-arp", "sll2-arp", "null-af7", "ppp-lcp"])
def test_non_ip_frames(tmp_path, linktype, frame):
    ok = t.ethernet(conversation(False)[4]) if linktype == 1 else None
    pkts = [(T0, frame)] + ([(T0 + SEC, ok)] if ok else [])
    path = t.write_pcap(tmp_path / "capture", pkts, linktype=linktype)
    result = flowscope.analyze(path)
    c = capture(result)
    assert result.errors == []
    assert c["packets_undecodable"] == {"non-ip": 1}
    assert c["packets_decoded"] == (1 if ok else 0)
    if has_tshark:
        assert len(t.tshark_times(path)) == len(pkts)


def test_ipv4_options(tmp_path):
    rr = bytes([7, 11, 4]) + bytes(8)          # record route, room for 2 addresses
    ts = bytes([68, 12, 5, 0]) + bytes(8)      # timestamp option
    p1 = t.ipv4(A4, B4, 6, t.tcp(40001, 80, flags="S"), options=rr + b"\x01" + ts, ident=1)
    p2 = t.ipv4(B4, A4, 6, t.tcp(80, 40001, flags="SA", ack=1), options=b"\x94\x04\x00\x00", ident=2)  # router alert
    p3 = t.ipv4(A4, B4, 17, t.udp(1, 2, b"data"), options=bytes(40), ident=3)  # maximal IHL 15
    assert (p1[0] & 15, p2[0] & 15, p3[0] & 15) == (11, 6, 15)
    path = t.write_pcap(tmp_path / "capture", [(T0 + k * SEC, t.ethernet(p)) for k, p in enumerate((p1, p2, p3))])
    result = flowscope.analyze(path)
    assert capture(result)["packets_decoded"] == 3
    rows = flow_rows(result, ["l4", "orig_port", "resp_port", "bytes_orig", "bytes_resp",
                              "payload_bytes_orig", "tcp_state"])
    assert rows == [
        dict(l4="tcp", orig_port=40001, resp_port=80, bytes_orig=len(p1), bytes_resp=len(p2),
             payload_bytes_orig=0, tcp_state="S1"),
        dict(l4="udp", orig_port=1, resp_port=2, bytes_orig=len(p3), bytes_resp=0, payload_bytes_orig=4,
             tcp_state=""),
    ]
    if has_tshark:
        assert len(t.tshark_times(path)) == 3


def fragments_v4(payload_len: int = 3000) -> list[bytes]:
    seg = t.udp(7000, 7001, bytes(range(256)) * (payload_len // 256) + bytes(payload_len % 256))
    # checksum over the whole datagram, as the sender computes it before fragmenting
    whole = t.ipv4(A4, B4, 17, seg, ident=77)
    seg = whole[20:]
    return [t.ipv4(A4, B4, 17, seg[o:o + 1480], ident=77, frag_offset=o, more_fragments=o + 1480 < len(seg))
            for o in range(0, len(seg), 1480)]


def test_ipv4_fragments(tmp_path):
    frags = fragments_v4()
    assert len(frags) == 3
    later = t.ipv4(A4, B4, 6, t.tcp(1, 2, flags="A"), ident=78, frag_offset=8)  # a lone later fragment
    pkts = [(T0 + k * SEC, t.ethernet(f)) for k, f in enumerate(frags + [later])]
    path = t.write_pcap(tmp_path / "capture", pkts)
    result = flowscope.analyze(path)
    c = capture(result)
    assert result.errors == []
    assert c["packets_read"] == 4
    assert c["packets_decoded"] == 1                     # the first fragment, with the UDP header
    assert c["packets_undecodable"] == {"ip-fragment": 3}
    assert c["ip_fragments"] == 4
    (row,) = result.flows.itertuples()
    assert (row.l4, row.orig_port, row.resp_port, row.pkts_orig) == ("udp", 7000, 7001, 1)
    assert row.bytes_orig == len(frags[0])
    if has_tshark:
        assert len(t.tshark_times(path)) == 4


def test_ipv6_fragments(tmp_path):
    seg = t.udp(7000, 7001, bytes(2000))
    first = t.ipv6(A6, B6, 17, seg[:1232], ext_headers=[(44, (0 | 1).to_bytes(2, "big") + b"\0\0\0\x09")])
    second = t.ipv6(A6, B6, 17, seg[1232:], ext_headers=[(44, (1232 | 0).to_bytes(2, "big") + b"\0\0\0\x09")])
    atomic = t.ipv6(A6, B6, 17, t.udp(7002, 7003, b"whole"), ext_headers=[(44, b"\0\0\0\0\0\x0a")])
    path = t.write_pcap(tmp_path / "capture", [(T0 + k * SEC, t.ethernet(p))
                                               for k, p in enumerate((first, second, atomic))])
    result = flowscope.analyze(path)
    c = capture(result)
    assert c["packets_undecodable"] == {"ip-fragment": 1}
    assert c["packets_decoded"] == 2
    assert c["ip_fragments"] == 2                  # the atomic fragment is a whole packet
    assert sorted(result.flows["orig_port"].tolist()) == [7000, 7002]


def test_ipv6_extension_headers(tmp_path):
    exts = [(0, b"\x01\x04\0\0\0\0"),               # hop-by-hop: PadN
            (43, b"\x04\x00" + bytes(4)),            # routing (type 4, segments left 0)
            (60, b"\x01\x0c" + bytes(12))]           # destination options, 16 bytes
    p1 = t.ipv6(A6, B6, 6, t.tcp(40002, 443, flags="S"), ext_headers=exts)
    p2 = t.ipv6(A6, B6, 17, t.udp(40003, 53, b"x" * 9), ext_headers=exts)
    p3 = t.ipv6(A6, B6, 58, t.icmp(128, 0, b"\0\1\0\1"), ext_headers=exts[:1])
    ext_len = 8 + 8 + 16
    assert len(p1) == 40 + ext_len + 20
    path = t.write_pcap(tmp_path / "capture", [(T0 + k * SEC, t.ethernet(p)) for k, p in enumerate((p1, p2, p3))])
    result = flowscope.analyze(path)
    assert capture(result)["packets_decoded"] == 3
    rows = flow_rows(result, ["l4", "orig_port", "resp_port", "bytes_orig", "payload_bytes_orig"])
    assert rows == [
        dict(l4="icmp6", orig_port=0, resp_port=0, bytes_orig=len(p3), payload_bytes_orig=0),
        dict(l4="tcp", orig_port=40002, resp_port=443, bytes_orig=len(p1), payload_bytes_orig=0),
        dict(l4="udp", orig_port=40003, resp_port=53, bytes_orig=len(p2), payload_bytes_orig=9),
    ]
    assert set(result.flows["ip_version"]) == {6}
    if has_tshark:
        assert len(t.tshark_times(path)) == 3


# --- PCAPdroid trailer ------------------------------------------------------------------

def test_pcapdroid_trailer(tmp_path):
    wa, fb = (10123, "WhatsApp"), (10145, "Facebook")
    pkts = []
    expected = {}
    for k, pad in enumerate(range(4)):          # IP lengths giving 0, 1, 2, 3 padding bytes
        body = b"m" * (10 + (4 - pad) % 4)
        p = t.ipv4("10.215.173.1", "157.240.20.53", 17, t.udp(41000 + k, 3478, body), ident=k)
        frame = t.pcapdroid_frame(p, *wa)
        assert (len(frame) - 32 - 14 - len(p)) == (-(14 + len(p))) % 4
        pkts.append(frame)
        expected[41000 + k] = (10123, "WhatsApp", len(p), len(frame))
    p6 = t.ipv6("fd00:2:fd00:1::1", "2a03:2880:f208:c5:face:b00c:0:167", 6, t.tcp(42000, 443, flags="S"))
    pkts.append(t.pcapdroid_frame(p6, *fb))
    expected[42000] = (10145, "Facebook", len(p6), len(pkts[-1]))
    p = t.ipv4("10.215.173.1", "216.239.35.4", 17, t.udp(43000, 123, bytes(48)))
    pkts.append(t.ethernet(p, src=b"\0" * 6, dst=b"\0" * 6))           # no trailer
    expected[43000] = (None, None, len(p), len(pkts[-1]))
    p = t.ipv4("10.215.173.1", "1.1.1.1", 17, t.udp(44000, 53, b"q"))
    pkts.append(t.pcapdroid_frame(p, -1, ""))                        # PCAPdroid did not know
    expected[44000] = (-1, "", len(p), len(pkts[-1]))
    path = t.write_pcap(tmp_path / "capture", [(T0 + k * SEC, f) for k, f in enumerate(pkts)])

    result = flowscope.analyze(path)

    c = capture(result)
    assert c["packets_decoded"] == len(pkts)
    assert c["pcapdroid_trailers"] == len(pkts) - 1
    assert c["apps"] == {"-1": "", "10123": "WhatsApp", "10145": "Facebook"}
    got = {int(r.orig_port): (None if pd.isna(r.app_uid) else int(r.app_uid), None if pd.isna(r.app) else r.app,
                              int(r.bytes_orig),
                              int(r.frame_bytes_orig)) for r in result.flows.itertuples()}
    assert got == expected
    if has_tshark:
        assert t.tshark_times(path) == [T0 + k * SEC for k in range(len(pkts))]


def test_pcapdroid_flow_takes_the_first_uid_seen(tmp_path):
    a = t.ipv4("10.215.173.1", "157.240.20.53", 6, t.tcp(41000, 5222, flags="S"), ident=1)
    b = t.ipv4("157.240.20.53", "10.215.173.1", 6, t.tcp(5222, 41000, flags="SA", ack=1), ident=2)
    c = t.ipv4("10.215.173.1", "157.240.20.53", 6, t.tcp(41000, 5222, flags="A", seq=1, ack=1), ident=3)
    frames = [t.ethernet(a, src=b"\0" * 6, dst=b"\0" * 6), t.pcapdroid_frame(b, 10123, "WhatsApp"),
              t.pcapdroid_frame(c, 10123, "WhatsApp")]
    path = t.write_pcap(tmp_path / "capture", [(T0 + k * SEC, f) for k, f in enumerate(frames)])
    (row,) = flowscope.analyze(path).flows.itertuples()
    assert (row.app_uid, row.app, row.pkts_orig, row.pkts_resp) == (10123, "WhatsApp", 2, 1)
    assert row.bytes_orig == len(a) + len(c)


# --- the decoder on its own --------------------------------------------------------------

def decode(frame: bytes, linktype: int = 1, wirelen: int | None = None, off: int = 5):
    """decode_frame on `frame` placed at `off` in a buffer with 0xEE bytes around it."""
    buf = np.full(off + len(frame) + 64, 0xEE, dtype=np.uint8)
    buf[off:off + len(frame)] = np.frombuffer(frame, dtype=np.uint8)
    P = L.new_batch(1)
    stats = L.new_stats()
    decode_frame(buf, off, len(frame), len(frame) if wirelen is None else wirelen, linktype, P, 0, stats)
    return P[0], stats


def test_decoded_row_fields():
    ip = t.ipv4(A4, B4, 6, t.tcp(40000, 443, flags="PA", seq=7, ack=9, payload=b"abcdef"), ident=5)
    row, stats = decode(t.ethernet(ip, vlans=[3]))
    assert row[L.STATUS] == L.OK
    assert (row[L.IPVER], row[L.PROTO], row[L.SPORT], row[L.DPORT]) == (4, 6, 40000, 443)
    assert (row[L.SEQ], row[L.ACK], row[L.FLAGS]) == (7, 9, 0x18)
    assert (row[L.IPLEN], row[L.PLEN], row[L.PCAP]) == (len(ip), 6, 6)
    assert row[L.POFF] == 5 + 18 + 20 + 20
    assert row[L.SRC_LO] & 0xFFFFFFFF == 0xC000020A
    assert (row[L.FRAG], row[L.TRUNC], row[L.TRAILER], row[L.UID]) == (0, 0, -1, L.NO_UID)
    assert stats[L.OK] == 0            # decode_frame counts side stats only; walkers count STATUS


UDP4 = t.ipv4(A4, B4, 17, t.udp(1, 2, b"data"))
TCP4 = t.ipv4(A4, B4, 6, t.tcp(1, 2, payload=b"data"))
ICMP4 = t.ipv4(A4, B4, 1, t.icmp(8, 0, b"\0\1\0\1"))
UDP6 = t.ipv6(A6, B6, 17, t.udp(1, 2))
UNDECODABLE = {  # id: (linktype, frame, wire length or None (= caplen), reason)
    "eth-13-bytes": (1, b"\0" * 13, None, L.TRUNC_LINK),
    "vlan-tag-cut": (1, b"\0" * 12 + b"\x81\x00\0", 100, L.TRUNC_LINK),
    "sll-15-bytes": (113, b"\0" * 15, None, L.TRUNC_LINK),
    "sll2-19-bytes": (276, b"\0" * 19, None, L.TRUNC_LINK),
    "null-3-bytes": (0, b"\x02\0\0", None, L.TRUNC_LINK),
    "ppp-no-protocol": (9, b"\xff\x03", None, L.TRUNC_LINK),
    "ipv4-header-cut": (1, t.ethernet(UDP4)[:14 + 19], 14 + len(UDP4), L.TRUNC_IP),
    "ipv6-header-cut": (101, UDP6[:39], len(UDP6), L.TRUNC_IP),
    "ipv4-total-length-10": (101, b"\x45\x00\x00\x0a" + b"\0" * 27, None, L.BAD_IP),
    "ipv4-ihl-3": (101, b"\x43" + b"\0" * 30, None, L.BAD_IP),
    "ipv6-in-linktype-228": (228, UDP6, None, L.BAD_IP),
    "ip-version-9": (101, b"\x95" + b"\0" * 40, None, L.BAD_IP),
    "tcp-header-cut": (101, TCP4[:30], len(TCP4), L.TRUNC_L4),
    "udp-header-cut": (101, UDP4[:27], len(UDP4), L.TRUNC_L4),
    "icmp-header-cut": (101, ICMP4[:23], len(ICMP4), L.TRUNC_L4),
    "tcp-data-offset-16": (101, TCP4[:32] + b"\x40" + TCP4[33:], None, L.BAD_L4),
    "linktype-147": (147, TCP4, None, L.BAD_LINKTYPE),
}


@pytest.mark.parametrize("case", list(UNDECODABLE))
def test_undecodable_reasons(case):
    linktype, frame, wirelen, reason = UNDECODABLE[case]
    row, _ = decode(frame, linktype, wirelen=wirelen)
    assert L.REASONS[row[L.STATUS]] == L.REASONS[reason]



@pytest.mark.parametrize("frame", [
    t.ipv4(A4, B4, 1, t.icmp(8, 0, b"\0\1\0\1"))[:20 + 5],
    t.ipv4(A4, B4, 6, t.tcp(1, 2, options=bytes(20)))[:20 + 24],
    t.ipv6(A6, B6, 47, b"", ext_headers=[(60, bytes(30))])[:40 + 8],
], ids=["icmp-5-bytes", "tcp-options-cut", "ipv6-ext-cut"])
def test_payload_offset_stays_inside_the_frame(frame):
    row, _ = decode(frame, 101, wirelen=len(frame) + 100)
    assert row[L.POFF] + row[L.PCAP] <= 5 + len(frame)


def test_snaplen_cut_frame_keeps_header_lengths():
    ip = t.ipv4(A4, B4, 17, t.udp(1, 2, bytes(1000)))
    frame = t.ethernet(ip)
    row, stats = decode(frame[:60], wirelen=len(frame))
    assert row[L.STATUS] == L.OK
    assert (row[L.TRUNC], stats[L.ST_TRUNCATED]) == (1, 1)
    assert (row[L.IPLEN], row[L.PLEN], row[L.PCAP]) == (len(ip), 1000, 60 - 14 - 28)


def test_trailer_detected_only_after_the_ip_packet():
    ip = t.ipv4("10.215.173.1", "157.240.20.53", 17, t.udp(1, 2, b"abc"))
    row, stats = decode(t.pcapdroid_frame(ip, 10123, "WhatsApp"))
    assert (row[L.UID], stats[L.ST_TRAILERS]) == (10123, 1)
    assert row[L.PCAP] == 3                        # the trailer is not payload
    # a payload ending with a trailer's bytes is inside the IP packet: not a trailer
    tail = t.pcapdroid_frame(ip, 7, "x")[-32:]
    inner = t.ipv4("10.215.173.1", "157.240.20.53", 17, t.udp(1, 2, tail))
    row, stats = decode(t.ethernet(inner))
    assert (row[L.UID], stats[L.ST_TRAILERS]) == (L.NO_UID, 0)
