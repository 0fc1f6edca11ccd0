"""TLS ClientHello dissector: hand-made hellos, hostile input, and real captures vs tshark and nDPI.

The real captures are nDPI's test pcaps beside the project (../shared/corpus/ndpi/pcap), read in
place. Each TCP connection's client bytes are reassembled in sequence order (first 16 KiB) and
the SNI/ALPN found here must equal both tshark's and nDPI's (truth_flows.csv).
"""
from __future__ import annotations

import csv
import ipaddress
import shutil
import struct
import subprocess
import time
from pathlib import Path

import dpkt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from fuzzing import examples, fuzz

from conftest import corpus_ip_packets
from flowscope.dissect.tls import (
    MAX_HELLO_BYTES, ClientHello, parse_client_hello, parse_handshake_client_hello, safe_text,
)

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "ndpi"
PCAPS = CORPUS / "pcap"
STATUSES = {"ok", "need-more", "not-tls", "malformed", "limit"}
STREAM_LIMIT = 16 * 1024


# --- building ClientHellos --------------------------------------------------------------------

def ext(ext_type: int, data: bytes) -> bytes:
    return struct.pack(">HH", ext_type, len(data)) + data


def sni_ext(*names: bytes, name_type: int = 0) -> bytes:
    entries = b"".join(struct.pack(">BH", name_type, len(n)) + n for n in names)
    return ext(0, struct.pack(">H", len(entries)) + entries)


def alpn_ext(*protocols: bytes) -> bytes:
    names = b"".join(bytes([len(p)]) + p for p in protocols)
    return ext(16, struct.pack(">H", len(names)) + names)


def versions_ext(*versions: int) -> bytes:
    body = b"".join(struct.pack(">H", v) for v in versions)
    return ext(43, bytes([len(body)]) + body)


def hello_body(extensions: bytes | None, *, legacy_version: int = 0x0303) -> bytes:
    body = struct.pack(">H", legacy_version) + bytes(range(32))          # version, random
    body += bytes([32]) + b"\x11" * 32                                  # session id
    body += struct.pack(">H", 6) + bytes.fromhex("130113021303")       # cipher suites
    body += b"\x01\x00"                                                 # compression: null
    if extensions is not None:
        body += struct.pack(">H", len(extensions)) + extensions
    return body


def handshake(body: bytes, msg_type: int = 1) -> bytes:
    return bytes([msg_type]) + len(body).to_bytes(3, "big") + body


def records(message: bytes, sizes: list[int] | None = None, version: int = 0x0301) -> bytes:
    """Wrap a handshake message in TLS records of the given fragment sizes (rest in the last)."""
    out, pos = [], 0
    for size in [*(sizes or []), len(message)]:
        chunk = message[pos:pos + size]
        if not chunk:
            break
        out += [struct.pack(">BHH", 22, version, len(chunk)), chunk]
        pos += len(chunk)
    return b"".join(out)


def sample_hello(sni: bytes = b"web.whatsapp.com") -> bytes:
    exts = sni_ext(sni) + ext(10, b"\x00\x02\x00\x1d") + alpn_ext(b"h2", b"http/1.1")
    exts += versions_ext(0x0A0A, 0x0304, 0x0303) + ext(0x15, b"\x00" * 40)   # GREASE, padding
    return handshake(hello_body(exts))


HELLO = sample_hello()
STREAM = records(HELLO)
EXPECTED = ClientHello("web.whatsapp.com", ("h2", "http/1.1"), 0x0303, (0x0A0A, 0x0304, 0x0303))


# --- well-formed input ------------------------------------------------------------------------

def test_single_record_hello():
    assert parse_client_hello(STREAM) == ("ok", EXPECTED)


def test_bytes_after_the_hello_are_ignored():
    assert parse_client_hello(STREAM + b"\x14\x03\x03\x00\x01\x01" + b"\x17" * 50) == ("ok", EXPECTED)


def test_hello_split_over_two_records():
    stream = records(HELLO, [37])
    assert stream.count(b"\x16\x03\x01") >= 2
    assert parse_client_hello(stream) == ("ok", EXPECTED)


def test_hello_split_over_many_tiny_records_and_header_split():
    # 1- and 3-byte fragments: even the 4-byte handshake header spans records
    assert parse_client_hello(records(HELLO, [1, 3] * 20)) == ("ok", EXPECTED)


def test_three_tcp_segments_need_more_then_ok():
    stream = records(HELLO, [100])
    seg1, seg2, seg3 = stream[:3], stream[3:120], stream[120:]
    assert parse_client_hello(seg1) == ("need-more", None)
    assert parse_client_hello(seg1 + seg2) == ("need-more", None)
    assert parse_client_hello(seg1 + seg2 + seg3) == ("ok", EXPECTED)


def test_every_cut_short_prefix_needs_more():
    stream = records(HELLO, [50, 50])
    for cut in range(len(stream)):
        assert parse_client_hello(stream[:cut]) == ("need-more", None), cut
    assert parse_client_hello(stream)[0] == "ok"


def test_bare_handshake_message_shares_the_parser():
    assert parse_handshake_client_hello(HELLO) == EXPECTED
    assert parse_handshake_client_hello(HELLO + b"trailing") == EXPECTED
    assert parse_handshake_client_hello(HELLO[:-1]) is None
    assert parse_handshake_client_hello(b"\x02" + HELLO[1:]) is None
    assert parse_handshake_client_hello(b"") is None


def test_hello_without_extensions():
    stream = records(handshake(hello_body(None, legacy_version=0x0301)))
    assert parse_client_hello(stream) == ("ok", ClientHello(None, (), 0x0301, ()))


def test_hello_without_sni_and_unknown_name_types():
    assert parse_client_hello(records(handshake(hello_body(alpn_ext(b"h2")))))[1].sni is None
    only_other_type = sni_ext(b"opaque", name_type=7)
    assert parse_client_hello(records(handshake(hello_body(only_other_type)))) == \
        ("ok", ClientHello(None, (), 0x0303, ()))


def test_first_host_name_wins_and_case_and_trailing_dot_are_normalised():
    body = hello_body(sni_ext(b"WWW.Facebook.COM.", b"second.example"))
    assert parse_client_hello(records(handshake(body)))[1].sni == "www.facebook.com"


def test_hostile_sni_comes_back_as_inert_ascii():
    raw = b"<script>alert(1)</script>\x00 \\\xff\xc3\xa9\r\n.Evil.COM."
    status, hello = parse_client_hello(records(sample_hello(raw)))
    assert status == "ok"
    assert hello.sni == "<script>alert(1)</script>\\x00\\x20\\x5c\\xff\\xc3\\xa9\\x0d\\x0a.evil.com"
    assert all(0x21 <= ord(c) <= 0x7E for c in hello.sni)
    # Printable ASCII such as < > & survives (the rule keeps 0x21-0x7E): escaping for HTML is
    # the report's job. Control bytes, spaces, backslashes and non-ASCII cannot get through.
    assert "\x00" not in hello.sni and " " not in hello.sni


def test_hostile_alpn_is_escaped_but_keeps_case():
    status, hello = parse_client_hello(records(handshake(hello_body(alpn_ext(b"H2", b"a\x00b\n")))))
    assert (status, hello.alpn) == ("ok", ("H2", "a\\x00b\\x0a"))


def test_safe_text():
    assert safe_text(b"A.b\\c d\x7f\x80") == "A.b\\x5cc\\x20d\\x7f\\x80"
    assert safe_text(b"Host.Example.", host=True) == "host.example"
    assert safe_text(b"", host=True) == ""


# --- not TLS ----------------------------------------------------------------------------------

@pytest.mark.parametrize("data", [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"ED\x00\x01\x00\x00\x04\x08\x01\x02\x03\x04WA\x06\x03",   # WhatsApp mobile prologue
    b"WA\x05\x02\x00\x00\x10",
    b"\x80\x2e\x01\x03\x01",                                     # SSLv2-framed hello
    b"\x16\x01", b"\x16\x03\x09",                                # bad record version
    b"\x17\x03\x03\x00\x10" + b"\x00" * 16,                      # application data first
])
def test_not_tls(data):
    assert parse_client_hello(data) == ("not-tls", None)


def test_empty_stream_needs_more():
    assert parse_client_hello(b"") == ("need-more", None)
    assert parse_client_hello(b"\x16") == ("need-more", None)
    assert parse_client_hello(b"\x16\x03\x01\x02") == ("need-more", None)


# --- malformed --------------------------------------------------------------------------------

def _with_exts(exts: bytes) -> bytes:
    return records(handshake(hello_body(exts)))


@pytest.mark.parametrize("stream", [
    pytest.param(b"\x16\x03\x01\x00\x00" + HELLO, id="empty-record"),
    pytest.param(b"\x16\x03\x01\x40\x01" + HELLO, id="record-over-2^14"),
    pytest.param(records(handshake(hello_body(None), msg_type=2)), id="server-hello-first"),
    pytest.param(records(HELLO[:40]) + b"\x15\x03\x01\x00\x02\x02\x28", id="alert-mid-hello"),
    pytest.param(records(HELLO[:40]) + b"\x16\x02\x00\x00\x02ab", id="bad-version-second-record"),
    pytest.param(records(b"\x01\x01\x00\x00" + b"\x00" * 20), id="hello-over-64k"),
    pytest.param(records(handshake(hello_body(b"")[:-2] + b"\x00\x10")), id="ext-block-too-long"),
    pytest.param(records(handshake(hello_body(alpn_ext(b"h2")) + b"\x00")), id="trailing-byte"),
    pytest.param(_with_exts(b"\x00\x00\x00\x30" + b"\x00" * 5), id="ext-len-beyond-block"),
    pytest.param(_with_exts(ext(0, b"\x00\x20\x00\x00\x03abc")), id="sni-list-len-wrong"),
    pytest.param(_with_exts(ext(0, b"\x00\x06\x00\x00\x09abc")), id="sni-name-len-beyond"),
    pytest.param(_with_exts(ext(0, b"\x00\x00")), id="sni-empty-list"),
    pytest.param(_with_exts(ext(0, b"\x00\x03\x00\x00\x00")), id="sni-empty-name"),
    pytest.param(_with_exts(ext(16, b"\x00\x03\x03h2")), id="alpn-name-beyond"),
    pytest.param(_with_exts(ext(16, b"\x00\x03\x00\x01a")), id="alpn-empty-name"),
    pytest.param(_with_exts(ext(43, b"\x03\x03\x04\x03")), id="versions-odd"),
    pytest.param(_with_exts(sni_ext(b"a.example") + sni_ext(b"b.example")), id="duplicate-sni"),
    pytest.param(records(handshake(b"\x03\x03" + b"\x00" * 10)), id="body-cut-inside"),
    pytest.param(records(handshake(b"\x03\x03" + bytes(32) + b"\x21" + bytes(40))), id="session-id-33"),
])
def test_malformed(stream):
    assert parse_client_hello(stream) == ("malformed", None)


def test_declared_length_checks_happen_before_the_bytes_arrive():
    # A ServerHello or an absurd length is refused from the first 9 bytes, not after 16 KiB.
    assert parse_client_hello(b"\x16\x03\x01\x00\x30\x02\x00\x00\x2c")[0] == "malformed"
    assert parse_client_hello(b"\x16\x03\x01\x00\x30\x01\xff\xff\xff")[0] == "malformed"


# --- hostile input: never raise, bounded work -------------------------------------------------

def _check(result):
    status, hello = result
    assert status in STATUSES
    assert (hello is not None) == (status == "ok")
    if hello is not None and hello.sni is not None:
        assert all(0x21 <= ord(c) <= 0x7E for c in hello.sni)


@fuzz
@settings(max_examples=examples(400), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_random_bytes(data):
    _check(parse_client_hello(data))
    _check(parse_client_hello(b"\x16\x03\x01" + data))
    assert parse_handshake_client_hello(data) is None or data[:1] == b"\x01"


def mutate(data, stream: bytes) -> bytearray:
    """1-6 random flips, cuts, insertions and deletions (hypothesis draws them from `data`)."""
    stream = bytearray(stream)
    for _ in range(data.draw(st.integers(1, 6))):
        action = data.draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        pos = data.draw(st.integers(0, max(0, len(stream) - 1)))
        if action == "flip" and stream:
            stream[pos] ^= data.draw(st.integers(1, 255))
        elif action == "cut":
            del stream[pos:]
        elif action == "insert":
            stream[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
        elif stream:
            del stream[pos]
    return stream


@fuzz
@settings(max_examples=examples(400), deadline=None)
@given(st.data())
def test_mutated_hellos(data):
    stream = mutate(data, records(HELLO, [data.draw(st.integers(1, len(HELLO)))]))
    _check(parse_client_hello(bytes(stream)))
    message = bytes(stream[5:])
    hello = parse_handshake_client_hello(message)
    assert hello is None or isinstance(hello, ClientHello)


def test_worst_case_inputs_are_fast():
    one_byte_records = records(handshake(hello_body(ext(0x15, bytes(MAX_HELLO_BYTES - 200)))),
                               [1] * MAX_HELLO_BYTES)
    many_exts = records(handshake(hello_body(b"".join(ext(0x1000 + i, b"") for i in range(16000)))),
                        [16384] * 4)
    huge_sni = records(sample_hello(b"\x00" * 60000), [16384] * 4)
    # 65,000 one-byte records or 16,000 extensions: past MAX_RECORDS / MAX_EXTENSIONS, "limit"
    expected = ["limit", "limit", "limit", "ok", "malformed"]
    for stream, status in zip((one_byte_records[:STREAM_LIMIT], one_byte_records, many_exts,
                               huge_sni, b"\x16\x03\x01" + bytes(10**6)), expected):
        start = time.perf_counter()
        result = parse_client_hello(stream)
        assert time.perf_counter() - start < 1.0
        _check(result)
        assert result[0] == status


# --- real captures ----------------------------------------------------------------------------

TLS_PCAPS = ["facebook.pcap", "instagram.pcap", "wa_voice.pcap", "whatsappfiles.pcap",
             "signal.pcap", "telegram.pcap"]


def tcp_client_streams(path: Path, limit: int = STREAM_LIMIT) -> dict[tuple, bytes]:
    """Client payload of each TCP connection, in sequence order up to the first gap.

    The client is the SYN sender; connections without a SYN are left out (no sure direction).
    Keys are (client ip, client port, server ip, server port).
    """
    isn: dict[tuple, int] = {}
    segments: dict[tuple, list[tuple[int, bytes]]] = {}
    for ip in corpus_ip_packets(path):
        tcp = ip.data
        if not isinstance(tcp, dpkt.tcp.TCP):
            continue
        key = (str(ipaddress.ip_address(ip.src)), tcp.sport, str(ipaddress.ip_address(ip.dst)), tcp.dport)
        if tcp.flags & dpkt.tcp.TH_SYN and not tcp.flags & dpkt.tcp.TH_ACK:
            isn.setdefault(key, tcp.seq)
        if tcp.data:
            segments.setdefault(key, []).append((tcp.seq, bytes(tcp.data)))
    streams = {}
    for key, start in isn.items():
        out = bytearray()
        for seq, data in sorted(segments.get(key, []), key=lambda s: (s[0] - start - 1) % 2**32):
            rel = (seq - start - 1) % 2**32
            if rel > len(out):
                break
            out += data[len(out) - rel:]
            if len(out) >= limit:
                break
        streams[key] = bytes(out[:limit])
    return streams


def _tshark_hellos(path: Path) -> dict[tuple, tuple[str, tuple[str, ...]]]:
    fields = ["ip.src", "ipv6.src", "tcp.srcport", "ip.dst", "ipv6.dst", "tcp.dstport",
              "tls.handshake.extensions_server_name", "tls.handshake.extensions_alpn_str"]
    cmd = ["tshark", "-r", str(path), "-Y", "tls.handshake.type==1", "-T", "fields",
           "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=,", *sum((["-e", f] for f in fields), [])]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    found = {}
    for line in out.splitlines():
        src4, src6, sport, dst4, dst6, dport, sni, alpn = (line.split("\t") + [""] * 8)[:8]
        key = (src4 or src6, int(sport.split(",")[0]), dst4 or dst6, int(dport.split(",")[0]))
        found[key] = (sni.split(",")[0].lower(), tuple(a for a in alpn.split(",") if a))
    return found


def _truth(pcap: str) -> dict[tuple, tuple[str, tuple[str, ...]]]:
    rows = {}
    with open(CORPUS / "truth_flows.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            if r["pcap"] == pcap and r["l4"] == "TCP" and r["hostname_sni"] and r["tls"]:
                rows[(r["src"], int(r["sport"]), r["dst"], int(r["dport"]))] = \
                    (r["hostname_sni"], tuple(a for a in r["alpn"].split(";") if a))
    return rows


needs_corpus = pytest.mark.skipif(not (PCAPS / "facebook.pcap").exists(),
                                  reason=f"nDPI corpus not found at {PCAPS} (lives beside the project)")
needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")


@pytest.mark.corpus
@needs_corpus
@needs_tshark
@pytest.mark.parametrize("pcap", TLS_PCAPS)
def test_real_captures_match_tshark_and_ndpi(pcap):
    path = PCAPS / pcap
    ours = {}
    for key, stream in tcp_client_streams(path).items():
        status, hello = parse_client_hello(stream)
        assert status in STATUSES
        if status == "ok":
            ours[key] = (hello.sni, hello.alpn)
    tshark, truth = _tshark_hellos(path), _truth(pcap)
    # Every ClientHello tshark decodes, we decode to the same SNI and ALPN ...
    for key, (sni, alpn) in tshark.items():
        assert key in ours, f"{pcap}: tshark has a ClientHello on {key} that we missed"
        assert ours[key] == ((sni or None), alpn), f"{pcap} {key}"
    # ... and nDPI's SNI/ALPN for TLS flows agree too (nDPI's key may be either direction).
    for key, (sni, alpn) in truth.items():
        mine = ours.get(key) or ours.get((key[2], key[3], key[0], key[1]))
        assert mine == (sni, alpn), f"{pcap} {key}: nDPI {sni} {alpn}, ours {mine}"
    # We find no ClientHello tshark does not see.
    assert set(ours) <= set(tshark)
    if pcap != "telegram.pcap":
        assert ours, f"{pcap}: expected TLS ClientHellos"
