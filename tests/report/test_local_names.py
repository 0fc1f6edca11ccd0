"""Local names are personal data: a device that announces its name by DHCP, mDNS, LLMNR and
a DNS query to its router leaves that name in no file flowscope writes (issue 16).

The capture is crafted here: the phone 192.168.178.23 ("Julias-iPhone") behind a FRITZ!Box
asks for its own name, is named by PTR, announces itself, resolves a NAS in the house under a
public-looking name, and then talks to WhatsApp (whose names are the evidence and stay)."""
from __future__ import annotations

import json
import struct
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from flowscope import testing as t
from flowscope.dissect import localnames
from flowscope.report import pseudonym as ps
from flowscope.report.pdf import find_chromium

TS = 1_700_000_000_000_000_000
MS = 1_000_000
PHONE, ROUTER, NAS, WA = "192.168.178.23", "192.168.178.1", "192.168.178.40", "157.240.20.53"
SECRET = b"julias"  # in every local name below; found nowhere in the output, in any case


def wire_name(name: str) -> bytes:
    return b"".join(bytes([len(x)]) + x for x in name.encode().split(b".") if x) + b"\0"


def dns_message(ident: int, questions=(), answers=(), response: bool = False, flags: int | None = None) -> bytes:
    """questions: (name, qtype); answers: (owner, rtype, rdata)."""
    flags = flags if flags is not None else (0x8180 if response else 0x0100)
    out = struct.pack("!HHHHHH", ident, flags, len(questions), len(answers), 0, 0)
    out += b"".join(wire_name(q) + struct.pack("!HH", qt, 1) for q, qt in questions)
    for owner, rtype, rdata in answers:
        out += wire_name(owner) + struct.pack("!HHIH", rtype, 1, 120, len(rdata)) + rdata
    return out


def a(ip: str) -> bytes:
    return bytes(int(x) for x in ip.split("."))


def dhcp_request(host: str) -> bytes:
    fqdn = bytes([0x01, 0, 0]) + f"{host}.fritz.box".encode()
    opts = b"\x35\x01\x03" + bytes([12, len(host)]) + host.encode() + bytes([81, len(fqdn)]) + fqdn + b"\xff"
    chaddr = bytes.fromhex("a4d1d2c3b4a5") + bytes(10)
    return bytes([1, 1, 6, 0]) + b"\x12\x34\x56\x78" + bytes(20) + chaddr + bytes(192) + b"\x63\x82\x53\x63" + opts


def udp(ts, src, sport, dst, dport, payload):
    return (ts, t.ethernet(t.ipv4(src, dst, 17, t.udp(sport, dport, payload))))


def tcp(ts, src, sport, dst, dport, **kw):
    return (ts, t.ethernet(t.ipv4(src, dst, 6, t.tcp(sport, dport, **kw))))


def crafted_packets() -> list[tuple]:
    own, rev = "Julias-iPhone.fritz.box", "23.178.168.192.in-addr.arpa"
    p = [udp(TS, "0.0.0.0", 68, "255.255.255.255", 67, dhcp_request("Julias-iPhone")),
         # mDNS announcement (no questions) and an LLMNR query for the bare name
         udp(TS + 1 * MS, PHONE, 5353, "224.0.0.251", 5353, dns_message(
             0, answers=[("Julias-iPhone.local", 1, a(PHONE)), (rev, 12, wire_name("Julias-iPhone.local"))],
             flags=0x8400)),
         udp(TS + 2 * MS, PHONE, 5355, "224.0.0.252", 5355, dns_message(9, questions=[("Julias-iPhone", 1)])),
         # the phone asks the router for its own name, and for a PTR of its address
         udp(TS + 3 * MS, PHONE, 40001, ROUTER, 53, dns_message(1, questions=[(own, 1)])),
         udp(TS + 4 * MS, ROUTER, 53, PHONE, 40001, dns_message(1, [(own, 1)], [(own, 1, a(PHONE))], True)),
         udp(TS + 5 * MS, PHONE, 40002, ROUTER, 53, dns_message(2, questions=[(rev, 12)])),
         udp(TS + 6 * MS, ROUTER, 53, PHONE, 40002, dns_message(2, [(rev, 12)], [(rev, 12, wire_name(own))], True)),
         # a public-looking name that resolves into the house, then a flow to it
         udp(TS + 7 * MS, PHONE, 40003, ROUTER, 53, dns_message(3, [("juliasnas.example.org", 1)])),
         udp(TS + 8 * MS, ROUTER, 53, PHONE, 40003,
             dns_message(3, [("juliasnas.example.org", 1)], [("juliasnas.example.org", 1, a(NAS))], True)),
         tcp(TS + 9 * MS, PHONE, 50000, NAS, 5000, flags="S"),
         tcp(TS + 10 * MS, NAS, 5000, PHONE, 50000, flags="SA", ack=1),
         # WhatsApp: the evidence
         udp(TS + 11 * MS, PHONE, 40004, ROUTER, 53, dns_message(4, [("g.whatsapp.net", 1)])),
         udp(TS + 12 * MS, ROUTER, 53, PHONE, 40004,
             dns_message(4, [("g.whatsapp.net", 1)], [("g.whatsapp.net", 1, a(WA))], True)),
         tcp(TS + 13 * MS, PHONE, 50001, WA, 443, flags="S"),
         tcp(TS + 14 * MS, WA, 443, PHONE, 50001, flags="SA", ack=1),
         tcp(TS + 15 * MS, PHONE, 50001, WA, 443, flags="PA", seq=1, ack=1,
             payload=t.tls_client_hello("g.whatsapp.net"))]
    return p


@pytest.fixture(scope="module")
def crafted(tmp_path_factory):
    return t.write_pcap(tmp_path_factory.mktemp("names") / "julia.pcap", crafted_packets())


def analyse(capture, out, *extra) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flowscope.cli", "analyze", str(capture), "--out", str(out),
                           "--no-geo", *extra], capture_output=True, text=True)


def all_text(out) -> str:
    """Every file in the output directory as text: raw bytes (PNG text chunks, manifest, HTML),
    the Parquet tables' values and the PDF's text (its streams are compressed)."""
    parts = []
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        parts.append(path.read_bytes().decode("latin-1"))
        if path.suffix == ".parquet":
            parts.append(json.dumps(pq.read_table(path).to_pylist(), default=str))
        elif path.suffix == ".pdf":
            import pypdf
            parts.append(" ".join(page.extract_text() for page in pypdf.PdfReader(path).pages))
    return "\n".join(parts)


def test_no_local_name_in_any_written_file(crafted, tmp_path):
    out = tmp_path / "out"
    proc = analyse(crafted, out)
    assert proc.returncode == 0, proc.stderr
    assert SECRET.decode() not in proc.stdout.lower()
    files = {p.name for p in out.rglob("*") if p.is_file()}
    assert {"flows.parquet", "summary.json", "manifest.json", "report.html"} <= files
    if find_chromium():
        assert "report.pdf" in files
    text = all_text(out)
    assert SECRET.decode() not in text.lower()
    flows = pq.read_table(out / "flows.parquet").to_pandas()
    names = {n for ns in flows["local_names"] for n in ns}
    assert len(names) >= 4 and all(n.startswith("device-") for n in names)  # shown, pseudonymised
    assert "g.whatsapp.net" in set(flows["hostname"]) and "g.whatsapp.net" in text  # evidence stays
    nas = flows[flows["resp_port"] == 5000]
    assert nas["dns_name"].iloc[0].startswith("device-")  # named by an answer with a local address


def test_no_pseudonymize_keeps_them_in_clear(crafted, tmp_path):
    out = tmp_path / "clear"
    assert analyse(crafted, out, "--no-pseudonymize", "--no-report").returncode == 0
    flows = pq.read_table(out / "flows.parquet").to_pandas()
    names = {n for ns in flows["local_names"] for n in ns}
    assert {"julias-iphone", "julias-iphone.fritz.box", "julias-iphone.local", "juliasnas.example.org"} <= names
    assert ["julias-iphone.fritz.box"] in [list(q) for q in flows["dns_queries"]]


def test_local_name_rules():
    for name in ("julias-iphone.fritz.box", "tv.lan", "printer.home.arpa", "x.internal.", "wpad",
                 "23.178.168.192.in-addr.arpa", "box.localdomain"):
        assert localnames.is_local_name(name), name
    for name in ("g.whatsapp.net", "media-mxp1-1.cdn.whatsapp.net", "8.8.8.8.in-addr.arpa", "",
                 "fritz.box.example.com"):
        assert not localnames.is_local_name(name), name
    assert "fritz.box" in localnames.suffixes() and "home.arpa" in localnames.suffixes()


def test_mentions_local_suffix_is_the_substring_test():
    """The one-pattern test says what "some .<suffix> occurs in the text" says."""
    texts = ["julias-iphone.fritz.box", "x.local", "web.whatsapp.com", "a.lan b", ".home.arpa", "fritz.box",
             "see host.localdomain.", "", "box.fritz", "x.internal:80"]
    texts += [f"pre{tail}post" for tail in localnames._tails()]
    for text in texts:
        assert localnames.mentions_local_suffix(text) == any(tail in text for tail in localnames._tails()), text


def test_pseudonymizer_names_in_columns_and_text():
    p = ps.Pseudonymizer(b"k" * 32, names=["juliasnas.example.org", "julias-laptop"])
    token = p.token("device", "julias-iphone.fritz.box")
    assert p.name("Julias-iPhone.fritz.box.") == token and token.startswith("device-")
    assert p.name("juliasnas.example.org").startswith("device-") and p.name("g.whatsapp.net") == "g.whatsapp.net"
    assert p.name("fe80::1").startswith("local-")  # an address literal is an address, not a label
    assert p.text("asked julias-iphone.fritz.box. then julias-laptop and g.whatsapp.net") == \
        f"asked {token}. then {p.token('device', 'julias-laptop')} and g.whatsapp.net"
    assert p.text("https://julias-iphone.fritz.box:8443/x") == f"https://{token}:8443/x"
    assert p.json({"note": "julia's-ipad.local"}) == {"note": p.token("device", "julia's-ipad.local")}


# --- property tests over hostile input (make fuzz) ---------------------------------------------

from collections import Counter  # noqa: E402

from hypothesis import given, settings, strategies as st  # noqa: E402

from flowscope.dissect import evidence  # noqa: E402
from fuzzing import examples, fuzz  # noqa: E402

pytestmark = pytest.mark.slow  # not in `make check` (whole analyses, browsers, live capture)


@fuzz
@settings(max_examples=examples(200), deadline=None)
@given(before=st.text(max_size=40), after=st.text(max_size=40))
def test_a_local_name_never_survives_in_free_text(before, after):
    p = ps.Pseudonymizer(b"k" * 32, names=["juliasnas.example.org"])
    for name in ("Julias-iPhone.fritz.box", "juliasnas.example.org"):
        out = p.text(f"{before} {name} {after}").lower()
        assert out.count("julias") == f"{before} {after}".lower().count("julias")


@fuzz
@settings(max_examples=examples(300), deadline=None)
@given(data=st.binary(max_size=700), port=st.sampled_from([53, 5353, 5355, 67]), l4=st.sampled_from([6, 17]))
def test_name_dissection_of_random_payloads_never_raises(data, port, l4):
    ev, counts = evidence.Evidence(), Counter()
    if port == 67:
        evidence.add_dhcp(ev, data, counts)
    else:
        evidence.add_dns(ev, l4, TS, data, counts, port)
    assert len(ev.local_names) <= evidence.MAX_FLOW_NAMES
    assert all(isinstance(n, str) and all(0x20 < ord(c) < 0x7F for c in n) for n in ev.local_names)
