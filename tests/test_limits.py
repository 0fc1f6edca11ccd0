"""Limits against hostile input (docs/security.md): each is hit by a crafted capture, stops
only what it must with a one-line message naming the file, and keeps the rest.

- a decompression bomb (xz at ~6,600x; gzip under a lowered --max-expansion);
- a flood of one-packet flows against the flow-table guard (--max-flows);
- a flow whose segments exceed the per-flow payload budget, a DNS flow that never ends;
- one packet per dissector built to exceed its per-message bounds (counted as *-limit).
"""
from __future__ import annotations

import gzip
import lzma
import struct
import subprocess
import sys

import pytest

import flowscope
from flowscope import testing as t
from flowscope.dissect import dns, evidence, stun, tls
from flowscope.errors import LimitError
from flowscope.flows.table import FlowTable
from flowscope.flows.timeouts import timeouts_ns
from flowscope.settings import Settings

pytestmark = pytest.mark.slow  # not in `make check` (whole analyses, browsers, live capture)

TS = 1_700_000_000_000_000_000
MS = 1_000_000
DEVICE = "192.168.178.23"


def _udp(src_port: int, dst: str, dport: int, payload: bytes, src: str = DEVICE) -> bytes:
    return t.ethernet(t.ipv4(src, dst, 17, t.udp(src_port, dport, payload)))


def repeated_capture(records: int) -> bytes:
    """A pcap of one UDP packet repeated: compresses like a bomb, decodes like a capture."""
    one = t.pcap_bytes([(TS, _udp(40000, "157.240.0.1", 3478, b"x" * 60))])
    return one[:24] + one[24:] * records


def good_capture(path):
    return t.write_pcap(path, [(TS + k * MS, _udp(41000 + k, "157.240.0.2", 443, b"q")) for k in range(5)])


# --- decompression ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bombs(tmp_path_factory):
    d = tmp_path_factory.mktemp("bombs")
    data = repeated_capture(300_000)  # 35 MB decompressed
    (d / "bomb.pcap.xz").write_bytes(lzma.compress(data, preset=1))      # ~6,600x
    (d / "dense.pcap.gz").write_bytes(gzip.compress(data, 6))            # ~290x
    good_capture(d / "good.pcap")
    return d


def test_decompression_bomb_stops_with_one_line_and_keeps_the_rest(bombs):
    result = flowscope.analyze([bombs / "bomb.pcap.xz", bombs / "good.pcap"])
    bomb, good = result.summary["captures"]
    assert bomb["error"].startswith(f"{bombs / 'bomb.pcap.xz'}: xz output exceeds 1000x the compressed bytes")
    assert "decompression bomb" in bomb["error"] and "\n" not in bomb["error"]
    assert 100_000 < bomb["packets_read"] < 300_000  # what came before the limit is kept
    assert good["error"] is None and good["packets_read"] == 5
    assert len(result.errors) == 1


def test_expansion_limit_is_a_setting(bombs):
    dense = bombs / "dense.pcap.gz"
    whole = flowscope.analyze(dense)  # ~290x: within the default, read to the end
    assert whole.errors == [] and whole.summary["captures"][0]["packets_read"] == 300_000
    low = flowscope.analyze(dense, max_expansion=100)
    assert "gzip output exceeds 100x" in low.errors[0] and low.summary["captures"][0]["packets_read"] < 300_000
    off = flowscope.analyze(bombs / "bomb.pcap.xz", max_expansion=0)
    assert off.errors == [] and off.summary["captures"][0]["packets_read"] == 300_000


def test_cli_exit_status_and_message(bombs, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "flowscope.cli", "analyze", str(bombs / "bomb.pcap.xz"),
                           str(bombs / "good.pcap"), "--out", str(tmp_path / "out"), "--no-report", "-q"],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "bomb.pcap.xz: xz output exceeds" in lines[0]
    assert (tmp_path / "out" / "flows.parquet").is_file()


# --- the flow-table guard ----------------------------------------------------------------------

def flood(path, flows: int):
    """One packet per flow, every one a new source port: the cheapest way to fill a flow table."""
    return t.write_pcap(path, [(TS + k * 1000, _udp(1024 + k % 60000, f"10.{k // 60000}.0.9", 53, b""))
                               for k in range(flows)])


def test_flood_of_flows_ends_the_read_of_that_file_cleanly(tmp_path):
    flooded = flood(tmp_path / "flood.pcap", 3000)
    result = flowscope.analyze([flooded, good_capture(tmp_path / "good.pcap")], max_flows=1000)
    first, second = result.summary["captures"]
    assert first["error"] == (f"{flooded}: more than 1,000 concurrent flows (a flood of flows?): reading "
                              "stopped here, the flows so far are kept (--max-flows)")
    assert second["error"] is None
    per_file = result.flows.groupby("capture").size().to_dict()
    assert per_file == {str(flooded): 1000, str(tmp_path / "good.pcap"): 5}


def test_guard_below_a_power_of_two_still_counts_every_flow(tmp_path):
    """Growth up to a max_flows that is not a power of two (16,384 -> 20,000 rows)."""
    result = flowscope.analyze(flood(tmp_path / "many.pcap", 18_000), max_flows=20_000, classify=False, geo=False)
    assert result.errors == [] and len(result.flows) == 18_000


def test_table_guard_raises_a_limit_error_naming_the_source():
    table = FlowTable(timeouts_ns(Settings()), 0, max_flows=4, source="x.pcap")
    from flowscope.decode.layout import new_batch
    P = new_batch(8)
    assert len(table.T) == 4
    with pytest.raises(LimitError, match=r"^x\.pcap: more than 4 concurrent flows"):
        _fill(table, P)


def _fill(table, P):
    from flowscope.decode import layout as pk
    for i in range(8):
        P[i, :] = 0
        P[i, pk.STATUS], P[i, pk.TS], P[i, pk.IPVER], P[i, pk.PROTO] = pk.OK, TS + i, 4, 17
        P[i, pk.SRC_LO], P[i, pk.DST_LO], P[i, pk.SPORT], P[i, pk.DPORT] = 1, 2, 1000 + i, 53
    table.add(P, 8, part=0, capture=0)


# --- per-flow bounds ---------------------------------------------------------------------------

def test_payload_kept_per_flow_is_bounded(tmp_path):
    """A client sending 60 KiB segments (an offload capture): each record keeps at most
    KEEP_FLOW_BYTES a direction, counted; the ClientHello at the front is still read."""
    hello = t.tls_client_hello("chat.example.org")
    seg = hello + b"\0" * (60_000 - len(hello))
    c, s = ("192.168.178.23", 40000), ("93.184.216.34", 443)

    def pkt(ts, src, dst, **kw):
        return (ts, t.ethernet(t.ipv4(src[0], dst[0], 6, t.tcp(src[1], dst[1], **kw))))
    packets = [pkt(TS, c, s, flags="S", seq=0), pkt(TS + MS, s, c, flags="SA", seq=0, ack=1),
               pkt(TS + 2 * MS, c, s, flags="A", seq=1, ack=1)]
    packets += [pkt(TS + (3 + k) * MS, c, s, flags="PA", seq=1 + k * len(seg), ack=1, payload=seg) for k in range(4)]
    result = flowscope.analyze(t.write_pcap(tmp_path / "big.pcap", packets), geo=False)
    assert result.flows["sni"].tolist() == ["chat.example.org"]
    assert result.summary["dissectors"]["payload-bytes-cut"] == 4


def test_flow_bytes_budget():
    kept = evidence.FlowBytes(6)
    assert kept.add(0, 1, TS, b"a" * 10_000) and not kept.add(0, 10_001, TS, b"b" * 10_000)
    assert not kept.add(0, 20_001, TS, b"c")
    assert kept.kept == [evidence.KEEP_FLOW_BYTES, 0]
    assert len(evidence.reassemble(kept.segments[0])) == evidence.KEEP_FLOW_BYTES


def dns_query(ident: int, name: bytes) -> bytes:
    labels = b"".join(bytes([len(x)]) + x for x in name.split(b".")) + b"\0"
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + labels + b"\0\1\0\1"


def test_a_dns_flow_that_never_ends_keeps_a_bounded_name_list(tmp_path):
    """One socket asking 1,100 different names (a tunnel, a fixed-port forwarder)."""
    packets = [(TS + k * MS, _udp(5300, "192.168.178.1", 53, dns_query(k, b"n%d.example.org" % k)))
               for k in range(1100)]
    result = flowscope.analyze(t.write_pcap(tmp_path / "dns.pcap", packets), geo=False)
    assert len(result.flows) == 1 and len(result.flows["dns_queries"].iloc[0]) == evidence.MAX_FLOW_NAMES
    assert result.summary["dissectors"]["dns-flow-limit"] == 1100 - evidence.MAX_FLOW_NAMES


# --- per-packet bounds in every dissector ------------------------------------------------------

def _stun_many_attributes() -> bytes:
    attrs = struct.pack("!HH", 0x8022, 0) * 200
    return struct.pack("!HHI", 0x0001, len(attrs), stun.MAGIC_COOKIE) + b"t" * 12 + attrs


def _tls_many_records() -> bytes:
    msg = t.tls_client_hello("x.example.org")[5:]  # the handshake message without its record header
    return b"".join(b"\x16\x03\x01\x00\x01" + msg[i:i + 1] for i in range(len(msg)))


def _http_many_headers() -> bytes:
    return b"GET / HTTP/1.1\r\n" + b"X-Pad: 1\r\n" * 200 + b"Host: late.example.org\r\n\r\n"


def _dhcp_padded() -> bytes:
    return bytes([1, 1, 6, 0]) + b"\0" * 232 + b"\x63\x82\x53\x63" + b"\0" * 600 + b"\x0c\x05julia\xff"


def _dns_many_questions() -> bytes:
    q = b"\x01a\0\0\1\0\1"
    return struct.pack("!HHHHHH", 7, 0x0100, 200, 0, 0, 0) + q * 200


def test_every_dissector_counts_the_limit_it_hit(tmp_path):
    srv = "93.184.216.34"

    def tcp_flow(port, payload, k):
        c, base = 42000 + k, TS + k * 10 * MS
        return [(base, t.ethernet(t.ipv4(DEVICE, srv, 6, t.tcp(c, port, flags="S", seq=0)))),
                (base + MS, t.ethernet(t.ipv4(srv, DEVICE, 6, t.tcp(port, c, flags="SA", seq=0, ack=1)))),
                (base + 2 * MS, t.ethernet(t.ipv4(DEVICE, srv, 6, t.tcp(c, port, flags="PA", seq=1, ack=1,
                                                                         payload=payload))))]
    packets = tcp_flow(443, _tls_many_records(), 0) + tcp_flow(80, _http_many_headers(), 1)
    packets += [(TS + 100 * MS, _udp(40000, "157.240.0.1", 3478, _stun_many_attributes())),
                (TS + 101 * MS, _udp(5301, "192.168.178.1", 53, _dns_many_questions())),
                (TS + 102 * MS, _udp(68, "255.255.255.255", 67, _dhcp_padded(), src="0.0.0.0"))]
    result = flowscope.analyze(t.write_pcap(tmp_path / "hostile.pcap", packets), geo=False)
    counts = result.summary["dissectors"]
    for reason in ("tls-limit", "http-limit", "stun-limit", "dns-limit", "dhcp-limit"):
        assert counts.get(reason) == 1, (reason, counts)
    assert result.errors == []  # bounds in dissectors stop work, never the read


def test_dissector_bounds_are_below_real_traffic():
    """The caps leave real messages alone: a normal hello, DNS answer and STUN message pass."""
    assert tls.parse_client_hello(t.tls_client_hello("g.whatsapp.net"))[0] == "ok"
    assert not dns.parse_dns(dns_query(1, b"g.whatsapp.net")).limited
    assert not stun.parse_stun(_stun_many_attributes()[:20].replace(struct.pack("!H", 800), b"\0\0", 1)).limited
