"""flowscope.dissect.dns: hand-made messages, malformed input, fuzzing, tshark on real captures."""
from __future__ import annotations

import ipaddress
import re
import struct
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from fuzzing import examples, fuzz
from scapy.layers.dns import DNS, DNSQR, DNSRR

from conftest import l4_payloads
from flowscope.dissect.dns import (
    MAX_JUMPS, DnsMessage, DnsRecord, address_names, cname_chain, parse_dns, parse_dns_tcp,
)

SAFE = re.compile(r"(?:[!-@\[\]-~]|\\x[0-9a-f]{2})*")  # printable, no upper case, escapes only


# --- builders -------------------------------------------------------------------------

def name(*labels: bytes) -> bytes:
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\0"


def header(ident=0x1234, flags=0x8180, qd=1, an=0, ns=0, ar=0) -> bytes:
    return struct.pack("!HHHHHH", ident, flags, qd, an, ns, ar)


def question(owner: bytes, qtype=1) -> bytes:
    return owner + struct.pack("!HH", qtype, 1)


def record(owner: bytes, rtype: int, rdata: bytes, ttl=60) -> bytes:
    return owner + struct.pack("!HHIH", rtype, 1, ttl, len(rdata)) + rdata


def ptr(offset: int) -> bytes:
    return struct.pack("!H", 0xC000 | offset)


def compressed_chain() -> bytes:
    """g.whatsapp.net CNAME chat.cdn.whatsapp.net A 157.240.20.53, hand-compressed.

    offsets: question name 12 (whatsapp at 14); CNAME rdata at 44 ends in a pointer to 14;
    the A record's owner is a pointer to 44, itself ending in a pointer.
    """
    msg = header(ident=7, an=2) + question(name(b"g", b"whatsapp", b"net"))
    msg += record(ptr(12), 5, b"\x04chat\x03cdn" + ptr(14), ttl=300)
    assert msg.index(b"\x04chat") == 44
    msg += record(ptr(44), 1, bytes([157, 240, 20, 53]), ttl=60)
    return msg


def scapy_chain(compress: bool) -> bytes:
    pkt = DNS(id=9, qr=1, rd=1, ra=1,
              qd=[DNSQR(qname="G.WhatsApp.net"), DNSQR(qname="web.whatsapp.com", qtype="AAAA")],
              an=[DNSRR(rrname="g.whatsapp.net", type="CNAME", rdata="chat.cdn.whatsapp.net"),
                  DNSRR(rrname="chat.cdn.whatsapp.net", type="A", rdata="157.240.20.53"),
                  DNSRR(rrname="web.whatsapp.com", type="CNAME", rdata="mmx-ds.cdn.whatsapp.net"),
                  DNSRR(rrname="mmx-ds.cdn.whatsapp.net", type="AAAA",
                        rdata="2a03:2880:f208:00c5:face:b00c:0000:0167")],
              ar=[DNSRR(rrname="ns.example", type="A", rdata="192.0.2.1")])
    return bytes(pkt.compress() if compress else pkt)


SEEDS = [compressed_chain(), scapy_chain(True), scapy_chain(False)]


def safe_strings(msg: DnsMessage) -> list[str]:
    return [q for q, _ in msg.questions] + [s for r in msg.answers for s in (r.name, r.value)]


# --- valid messages ---------------------------------------------------------------------

def test_hand_compressed_cname_chain():
    msg = parse_dns(compressed_chain())
    assert msg == DnsMessage(7, True, 0, (("g.whatsapp.net", 1),), (
        DnsRecord("g.whatsapp.net", 5, 300, "chat.cdn.whatsapp.net"),
        DnsRecord("chat.cdn.whatsapp.net", 1, 60, "157.240.20.53")), True)
    assert cname_chain(msg) == ("g.whatsapp.net", "chat.cdn.whatsapp.net")
    assert address_names(msg) == {"157.240.20.53": "g.whatsapp.net"}


@pytest.mark.parametrize("compress", [False, True])
def test_scapy_two_questions_cname_aaaa(compress):
    msg = parse_dns(scapy_chain(compress))
    assert msg.id == 9 and msg.is_response and msg.rcode == 0 and msg.complete
    assert msg.questions == (("g.whatsapp.net", 1), ("web.whatsapp.com", 28))
    assert [r.value for r in msg.answers] == [
        "chat.cdn.whatsapp.net", "157.240.20.53", "mmx-ds.cdn.whatsapp.net",
        "2a03:2880:f208:c5:face:b00c:0:167"]  # canonical IPv6 text; additional not in answers
    assert address_names(msg) == {"157.240.20.53": "g.whatsapp.net",
                                  "2a03:2880:f208:c5:face:b00c:0:167": "web.whatsapp.com"}
    assert cname_chain(msg) == ("g.whatsapp.net", "chat.cdn.whatsapp.net")


def test_query_rcode_and_other_types():
    msg = parse_dns(header(flags=0x0100, qd=1) + question(name(b"v", b"whatsapp", b"net"), 28))
    assert msg == DnsMessage(0x1234, False, 0, (("v.whatsapp.net", 28),), ())
    nx = parse_dns(header(flags=0x8183, an=1) + question(name(b"x"))
                   + record(ptr(12), 16, b"\x03txt") + b"\0\0")  # TXT, then link padding
    assert nx.rcode == 3 and nx.answers == (DnsRecord("x", 16, 60, ""),) and nx.complete


def test_root_name_and_maximum_name():
    longest = name(b"a" * 63, b"b" * 63, b"c" * 63, b"d" * 61)  # 255 bytes on the wire
    assert len(longest) == 255
    msg = parse_dns(header(qd=2) + question(b"\0") + question(longest))
    assert msg.questions[0] == ("", 1) and len(msg.questions[1][0]) == 253
    assert parse_dns(header() + question(name(b"a" * 63, b"b" * 63, b"c" * 63, b"d" * 62))) is None


def test_hostile_labels_are_escaped_lower_case():
    owner = name(b"G.WhatsApp", b"a\\b \x00\xff\x7f~", b"NET")
    msg = parse_dns(header(an=1) + question(owner) + record(ptr(12), 5, name(b"X\ny")))
    assert msg.questions[0][0] == r"g\x2ewhatsapp.a\x5cb\x20\x00\xff\x7f~.net"
    assert msg.answers[0].value == r"x\x0ay"
    assert all(SAFE.fullmatch(s) for s in safe_strings(msg))


def test_address_names_rules():
    # unrelated record (not on the question's chain) is not attributed; CNAME loop terminates
    msg = parse_dns(header(an=4) + question(name(b"a", b"example"))
                    + record(name(b"a", b"example"), 5, name(b"b", b"example"))
                    + record(name(b"b", b"example"), 5, name(b"a", b"example"))
                    + record(name(b"b", b"example"), 1, bytes([192, 0, 2, 7]))
                    + record(name(b"g", b"whatsapp", b"net"), 1, bytes([192, 0, 2, 66])))
    assert cname_chain(msg) == ("a.example", "b.example")
    assert address_names(msg) == {"192.0.2.7": "a.example"}
    # mDNS announcement: no question, the owner (head of its chain) names the address
    mdns = parse_dns(header(ident=0, flags=0x8400, qd=0, an=2)
                     + record(name(b"svc", b"local"), 5, name(b"host", b"local"))
                     + record(name(b"host", b"local"), 28, bytes(15) + b"\x01"))
    assert address_names(mdns) == {"::1": "svc.local"}
    assert cname_chain(mdns) == ("svc.local", "host.local")
    assert cname_chain(parse_dns(header(qd=0))) == () and address_names(parse_dns(header(qd=0))) == {}


# --- malformed ----------------------------------------------------------------------------

def test_pointer_to_itself():
    assert parse_dns(header() + ptr(12) + b"\0\1\0\1") is None


def test_pointers_pointing_at_each_other():
    # id field holds a pointer to offset 2, the flags a pointer to offset 0: 12 -> 2 -> 0 -> 2
    msg = struct.pack("!HHHHHH", 0xC002, 0xC000, 1, 0, 0, 0) + ptr(2) + b"\0\1\0\1"
    assert parse_dns(msg) is None
    # the same loop reached from an answer's owner: the answers stop there, flagged
    msg = struct.pack("!HHHHHH", 0xC002, 0xC000, 1, 1, 0, 0) + question(name(b"a")) \
        + record(ptr(2), 1, bytes(4))
    got = parse_dns(msg)
    assert got.answers == () and not got.complete


def test_pointer_forward_and_out_of_range():
    assert parse_dns(header() + ptr(200) + b"\0\1\0\1") is None
    assert parse_dns(header() + ptr(14) + name(b"a") + b"\0\1\0\1") is None  # forward, in range
    assert parse_dns(header() + b"\x01a" + ptr(12) + b"\0\1\0\1") is None  # into its own run


def test_label_types_and_lengths():
    for bad in (b"\x40" + b"a" * 64, b"\x80\x00", b"\x05abc"):
        assert parse_dns(header() + bad + b"\0\1\0\1") is None
    too_long = name(*[b"x" * 63] * 5)
    assert parse_dns(header() + question(too_long)) is None


def test_jump_limit():
    def chain(hops: int) -> bytes:
        base = header(an=2) + question(name(b"a"))  # "a" at 12
        rdata_at = len(base) + 1 + 10
        links = [ptr(12)] + [ptr(rdata_at + 2 * k) for k in range(hops - 1)]
        first = record(b"\0", 99, b"".join(links))
        return base + first + record(ptr(rdata_at + 2 * (hops - 1)), 1, bytes(4))
    ok = parse_dns(chain(MAX_JUMPS - 1))
    assert ok.complete and ok.answers[1] == DnsRecord("a", 1, 60, "0.0.0.0")
    capped = parse_dns(chain(MAX_JUMPS + 5))
    assert not capped.complete and len(capped.answers) == 1


def test_counts_and_records_beyond_data():
    assert parse_dns(header(qd=3) + question(name(b"a"))) is None
    assert parse_dns(b"\x12\x34\x81\x80\x00") is None
    msg = parse_dns(header(an=5) + question(name(b"a")) + record(ptr(12), 1, bytes([1, 2, 3, 4])))
    assert msg.answers == (DnsRecord("a", 1, 60, "1.2.3.4"),) and not msg.complete
    bad_a = parse_dns(header(an=1) + question(name(b"a")) + record(ptr(12), 1, bytes(5)))
    assert bad_a.answers == () and not bad_a.complete
    bad_cname = header(an=1) + question(name(b"a")) + record(ptr(12), 5, name(b"b") + b"x")
    assert parse_dns(bad_cname).answers == ()  # the name must end where the rdata ends


@pytest.mark.parametrize("seed", range(len(SEEDS)))
def test_every_prefix_is_none_or_consistent(seed):
    full = parse_dns(SEEDS[seed])
    for cut in range(len(SEEDS[seed])):
        got = parse_dns(SEEDS[seed][:cut])
        if got is None:
            continue
        assert (got.id, got.questions) == (full.id, full.questions)
        assert got.answers == full.answers[:len(got.answers)]
        assert not got.complete


def test_hostile_worst_case_is_bounded_and_flagged():
    """Per-packet work is capped (docs/security.md): a 64 KiB message of ~11,000 questions or
    ~5,900 records is read up to MAX_QUESTIONS / MAX_RECORDS and flagged `limited`."""
    from flowscope.dissect.dns import MAX_QUESTIONS, MAX_RECORDS, address_names
    body = question(name(b"a" * 63, b"b" * 63, b"c" * 63, b"d" * 61))
    body += (ptr(12) + b"\0\1\0\1") * 10_900
    start = time.perf_counter()
    msg = parse_dns(header(qd=10_901) + body)
    assert time.perf_counter() - start < 0.1 and len(msg.questions) == MAX_QUESTIONS
    assert msg.limited and not msg.complete and msg.answers == ()
    # ~5,900 A records answering as many questions: address_names pairs them, within the caps
    recs = header(qd=MAX_QUESTIONS, an=5_900) + question(name(b"z"))
    recs += question(b"\x01y" + ptr(12)) * (MAX_QUESTIONS - 1)
    for k in range(5_900):
        recs += record(ptr(12), 1, k.to_bytes(4, "big"))
    start = time.perf_counter()
    msg = parse_dns(recs)
    names = address_names(msg)
    assert time.perf_counter() - start < 0.5 and len(msg.answers) == MAX_RECORDS and msg.limited
    assert len(names) == MAX_RECORDS and set(names.values()) == {"z"}


# --- DNS over TCP -------------------------------------------------------------------------

def framed(msg: bytes) -> bytes:
    return struct.pack("!H", len(msg)) + msg


def test_tcp_several_messages_and_incomplete_tail():
    a, b, c = SEEDS
    stream = framed(a) + framed(b) + framed(c)
    msgs, used = parse_dns_tcp(stream + framed(a)[:9])
    assert [m.id for m in msgs] == [7, 9, 9] and used == len(stream)
    assert parse_dns_tcp(stream + b"\x00") == (msgs, len(stream))  # half a length prefix
    assert parse_dns_tcp(b"") == ([], 0) and parse_dns_tcp(b"\x00") == ([], 0)
    # split delivery: resume from the consumed offset
    part, used = parse_dns_tcp(stream[:len(framed(a)) + 3])
    rest, used2 = parse_dns_tcp(stream[used:])
    assert [m.id for m in part + rest] == [7, 9, 9] and used + used2 == len(stream)
    # an undecodable but complete frame is consumed and skipped; a zero-length frame too
    junk = framed(b"\x01\x02\x03") + b"\0\0" + framed(a)
    assert parse_dns_tcp(junk) == ([parse_dns(a)], len(junk))


# --- fuzzing -----------------------------------------------------------------------------

def timed(fn, data):
    start = time.perf_counter()
    out = fn(data)
    assert time.perf_counter() - start < 1.0
    return out


def check_message(msg):
    if msg is not None:
        assert isinstance(msg, DnsMessage)
        assert all(SAFE.fullmatch(s) for s in safe_strings(msg))
        for r in msg.answers:
            if r.rtype in (1, 28):
                ipaddress.ip_address(r.value)
        address_names(msg), cname_chain(msg)


@fuzz
@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_fuzz_random_bytes(data):
    check_message(timed(parse_dns, data))
    check_message(timed(parse_dns, header(qd=1, an=3, ns=1, ar=1) + data))
    msgs, used = timed(parse_dns_tcp, data)
    assert 0 <= used <= len(data)
    for m in msgs:
        check_message(m)


mutation = st.tuples(st.sampled_from(["set", "insert", "delete", "cut"]),
                     st.integers(0, 1 << 16), st.integers(0, 255))


@fuzz
@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SEEDS), st.lists(mutation, min_size=1, max_size=6))
def test_fuzz_mutated_messages(seed, mutations):
    data = bytearray(seed)
    for op, where, value in mutations:
        k = where % (len(data) + 1)
        if op == "set" and k < len(data):
            data[k] = value
        elif op == "insert":
            data[k:k] = bytes([value])
        elif op == "delete":
            del data[k:k + 1 + value % 3]
        elif op == "cut":
            del data[k:]
    check_message(timed(parse_dns, bytes(data)))
    msgs, _ = timed(parse_dns_tcp, framed(bytes(data)) * 2)
    for m in msgs:
        check_message(m)


# --- real captures against tshark -------------------------------------------------------

DNS_CAPTURES = ["whatsapp_login_call.pcap", "wa_voice.pcap", "whatsapp_login_chat.pcap",
                "signal.pcap", "telegram.pcap", "zoom.pcap", "instagram.pcap",
                "badpackets.pcap", "fuzz-2006-06-26-2594.pcap"]


def udp_payloads(path: Path) -> dict[int, bytes]:
    """Frame number -> UDP payload, via the shared dpkt reader."""
    return {n: data for n, (kind, data) in l4_payloads(path).items() if kind == "udp"}


def tshark_dns(path: Path) -> list[dict]:
    xml = subprocess.run(["tshark", "-r", str(path), "-Y", "dns.flags.response==1",
                          "-T", "pdml"], capture_output=True, check=True).stdout
    rows = []
    for pkt in ET.fromstring(xml).iter("packet"):
        dns = next(proto for proto in pkt.iter("proto") if proto.get("name") in ("dns", "mdns"))
        row = {"frame": int(pkt.find("proto[@name='geninfo']/field[@name='num']").get("show")),
               "addrs": [], "cnames": [], "qnames": []}
        for section, key, fields in (("Answers", "addrs", ("dns.a", "dns.aaaa")),
                                     ("Answers", "cnames", ("dns.cname",)),
                                     ("Queries", "qnames", ("dns.qry.name",))):
            for sec in dns.findall(f"field[@show='{section}']"):
                row[key] += [f.get("show") for f in sec.iter("field") if f.get("name") in fields]
        rows.append(row)
    return rows


def plain(text: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9._-]*", text))


@pytest.mark.corpus
def test_dns_matches_tshark_on_real_captures(tshark_corpus):
    totals = {"responses": 0, "with_answers": 0, "addresses": 0, "incomplete": 0, "none": 0}
    for capture in DNS_CAPTURES:
        payloads = udp_payloads(tshark_corpus / capture)
        for row in tshark_dns(tshark_corpus / capture):
            if row["frame"] not in payloads:
                continue  # DNS quoted inside ICMP or behind a broken frame: not a UDP payload
            totals["responses"] += 1
            msg = parse_dns(payloads[row["frame"]])
            if msg is None:
                # header or question cut short: tshark decoded no answers from it either
                assert row["addrs"] == [] and row["cnames"] == [], (capture, row)
                totals["none"] += 1
                continue
            totals["incomplete"] += not msg.complete
            mine = [r.value for r in msg.answers if r.rtype in (1, 28)]
            theirs = [str(ipaddress.ip_address(a)) for a in row["addrs"]]
            assert mine == theirs, (capture, row["frame"])
            cnames = [r.value for r in msg.answers if r.rtype == 5]
            assert [c.lower() for c in row["cnames"] if plain(c)] == \
                [c for c, t in zip(cnames, row["cnames"]) if plain(t)], (capture, row["frame"])
            assert [q.lower().rstrip(".") for q in row["qnames"] if plain(q)] == \
                [q for (q, _), t in zip(msg.questions, row["qnames"]) if plain(t)]
            totals["with_answers"] += bool(theirs)
            totals["addresses"] += len(theirs)
    print(f"\nDNS cross-check: {totals}")
    assert totals["addresses"] > 0
