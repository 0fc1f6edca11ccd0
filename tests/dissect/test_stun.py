"""flowscope.dissect.stun: hand-made STUN/TURN/WhatsApp messages, malformed input, fuzzing,
and tshark on real captures."""
from __future__ import annotations

import ipaddress
import struct
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from fuzzing import examples, fuzz

from conftest import l4_payloads
from flowscope.dissect.stun import (
    MAX_ATTRIBUTES, MAX_STREAM_MESSAGES,
    CLASSES, MAGIC_COOKIE, StunMessage, parse_stun, parse_stun_stream, split_type,
)

TXID = bytes.fromhex("a6674f75f0ad2c001315b336")
COOKIE = struct.pack("!I", MAGIC_COOKIE)


# --- builders -------------------------------------------------------------------------

def attr(atype: int, value: bytes, pad: bool = True) -> bytes:
    return struct.pack("!HH", atype, len(value)) + value + (bytes(-len(value) % 4) if pad else b"")


def stun(msg_type: int, *attrs: bytes, txid: bytes = TXID, magic: bytes = COOKIE) -> bytes:
    body = b"".join(attrs)
    return struct.pack("!HH", msg_type, len(body)) + magic + txid + body


def address(ip: str, port: int, xor: bool, txid: bytes = TXID) -> bytes:
    raw = ipaddress.ip_address(ip).packed
    family = 1 if len(raw) == 4 else 2
    if xor:
        port ^= MAGIC_COOKIE >> 16
        raw = bytes(a ^ b for a, b in zip(raw, COOKIE + txid))
    return struct.pack("!xBH", family, port) + raw


def xor_addr(atype: int, ip: str, port: int) -> bytes:
    return attr(atype, address(ip, port, xor=True))


BINDING_REQUEST = stun(0x0001)
BINDING_V4 = stun(0x0101, xor_addr(0x0020, "80.180.162.48", 52372), attr(0x8022, b"srv"))
BINDING_V6 = stun(0x0101, xor_addr(0x0020, "2001:1670:c:eb04:70af:f67f:8e49:f603", 56880))
ALLOCATE_OK = stun(0x0103, xor_addr(0x0016, "31.13.86.54", 53789),
                   xor_addr(0x0020, "93.47.226.1", 11162), attr(0x000D, struct.pack("!I", 600)),
                   attr(0x0008, bytes(20)))
# WhatsApp's relay ping: type 0x0801, attributes 0x4000 (relay token) and 0x4024, unpadded last
WHATSAPP_0801 = stun(0x0801, attr(0x4000, b"\x05\x03tok"), attr(0x4024, b"\x0a\x01x", pad=False))
# WhatsApp Allocate as captured (nDPI corpus): one 102-byte 0x4000 attribute, length 106
WHATSAPP_ALLOCATE = stun(0x0003, attr(0x4000, bytes(range(102)), pad=False))
SEEDS = [BINDING_REQUEST, BINDING_V4, BINDING_V6, ALLOCATE_OK, WHATSAPP_0801, WHATSAPP_ALLOCATE]


# --- valid messages ---------------------------------------------------------------------

def test_binding_request():
    assert parse_stun(BINDING_REQUEST) == StunMessage(
        msg_type=1, method=1, msg_class="request", transaction_id=TXID, cookie=True,
        attributes=(), mapped=(), peers=(), relayed=(), whatsapp=False)


def test_binding_success_xor_mapped_ipv4_and_ipv6():
    v4 = parse_stun(BINDING_V4)
    assert (v4.method, v4.msg_class) == (1, "success")
    assert v4.mapped == (("80.180.162.48", 52372),) and v4.attributes == ((0x20, 8), (0x8022, 3))
    v6 = parse_stun(BINDING_V6)
    assert v6.mapped == (("2001:1670:c:eb04:70af:f67f:8e49:f603", 56880),)
    assert v6.attributes == ((0x20, 20),)


def test_plain_mapped_address_ipv4_and_ipv6():
    msg = parse_stun(stun(0x0101, attr(0x0001, address("192.0.2.9", 3478, xor=False)),
                          attr(0x0001, address("2001:db8::9", 1, xor=False))))
    assert msg.mapped == (("192.0.2.9", 3478), ("2001:db8::9", 1))


def test_turn_allocate_permission_and_send():
    ok = parse_stun(ALLOCATE_OK)
    assert (ok.method, ok.msg_class) == (3, "success")
    assert ok.relayed == (("31.13.86.54", 53789),) and ok.mapped == (("93.47.226.1", 11162),)
    assert [t for t, _ in ok.attributes] == [0x16, 0x20, 0x0D, 0x08] and not ok.whatsapp
    perm = parse_stun(stun(0x0008, xor_addr(0x0012, "10.82.40.241", 41107)))
    assert (perm.method, perm.msg_class, perm.peers) == (8, "request", (("10.82.40.241", 41107),))
    send = parse_stun(stun(0x0016, xor_addr(0x0012, "2a03:2880:f208::1", 3478), attr(0x13, b"d")))
    assert (send.method, send.msg_class) == (6, "indication")
    assert send.peers == (("2a03:2880:f208::1", 3478),)
    err = parse_stun(stun(0x0113, attr(0x0009, b"\0\0\x04\x01Unauthorized")))
    assert (err.method, err.msg_class) == (3, "error")


def test_whatsapp_messages():
    ping = parse_stun(WHATSAPP_0801)
    assert ping.whatsapp and ping.msg_type == 0x0801
    assert (ping.method, ping.msg_class) == (0x201, "request")
    assert ping.attributes == ((0x4000, 5), (0x4024, 3))
    alloc = parse_stun(WHATSAPP_ALLOCATE)
    assert alloc.whatsapp and alloc.attributes == ((0x4000, 102),) and len(WHATSAPP_ALLOCATE) == 126
    for t in (0x0800, 0x0802):
        assert parse_stun(stun(t)).whatsapp
    for a in (0x4007, 0x4025):
        assert parse_stun(stun(0x0001, attr(a, b""))).whatsapp
    assert not parse_stun(stun(0x0001, attr(0x4008, b""))).whatsapp


def test_split_type_interleaving():
    assert split_type(0x0001) == (1, "request")
    assert split_type(0x0011) == (1, "indication")
    assert split_type(0x0101) == (1, "success")
    assert split_type(0x0111) == (1, "error")
    assert split_type(0x0800) == (0x200, "request")
    for method in range(0x1000):
        for klass in range(4):
            t = ((method & 0xF80) << 2) | ((method & 0x70) << 1) | (method & 0xF) \
                | ((klass & 2) << 7) | ((klass & 1) << 4)
            assert split_type(t) == (method, CLASSES[klass])


def test_classic_rfc3489():
    txid16 = bytes(range(16))
    req = parse_stun(stun(0x0001, attr(0x0003, bytes(4)), txid=txid16[4:], magic=txid16[:4]))
    assert req.cookie is False and req.transaction_id == txid16 and req.attributes == ((3, 4),)
    resp = parse_stun(stun(0x0101, attr(0x0001, address("198.51.100.4", 4000, xor=False)),
                           attr(0x0005, address("198.51.100.5", 3479, xor=False)),
                           attr(0x8022, b"vovida"), txid=txid16[4:], magic=txid16[:4]))
    assert resp.mapped == (("198.51.100.4", 4000),) and resp.msg_class == "success"
    # Zoom's look-alike (zoom.pcap): classic header, attributes RFC 3489 never defined
    zoom = bytes.fromhex("0002000cc15dae63585d14392e582c260403bf30010300080001ff7550b4dcef")
    assert parse_stun(zoom) is None
    assert parse_stun(stun(0x0003, txid=txid16[4:], magic=txid16[:4])) is None  # no TURN in 3489


# --- malformed ----------------------------------------------------------------------------

def test_bad_attribute_lengths():
    msg = bytearray(BINDING_V4)
    msg[22:24] = struct.pack("!H", 200)  # first attribute claims 200 bytes
    assert parse_stun(bytes(msg)) is None
    short = stun(0x0101, attr(0x0020, address("192.0.2.1", 1, xor=True)[:6]))
    assert parse_stun(short) is None  # address attribute too short for its family
    assert parse_stun(stun(0x0101, attr(0x0001, b"\0\x03\0\1" + bytes(4)))) is None  # family 3
    assert parse_stun(stun(0x0101, attr(0x0001, b"\0\x01\0\1" + bytes(16)))) is None  # v4, 16 B
    unpadded_middle = stun(0x0001, attr(0x4000, b"abc", pad=False), attr(0x8022, b"abcd"))
    assert parse_stun(unpadded_middle) is None
    assert parse_stun(stun(0x0001) + b"\0\1\0") is None  # 3 bytes: not even an attribute header


def test_length_mismatch_and_header_checks():
    assert parse_stun(BINDING_V4 + b"\0\0\0\0") is None  # trailing bytes
    assert parse_stun(BINDING_V4[:-4]) is None
    bad = bytearray(BINDING_REQUEST)
    bad[0] |= 0x40  # first two bits must be 0 (0x4000.. is TURN ChannelData)
    assert parse_stun(bytes(bad)) is None
    assert parse_stun(b"") is None and parse_stun(BINDING_REQUEST[:19]) is None


@pytest.mark.parametrize("seed", range(len(SEEDS)))
def test_every_prefix_is_none(seed):
    for cut in range(len(SEEDS[seed])):
        assert parse_stun(SEEDS[seed][:cut]) is None
    assert parse_stun(SEEDS[seed]) is not None


def test_stream_over_tcp():
    channel_data = struct.pack("!HH", 0x4001, 5) + b"media" + bytes(3)
    stream = BINDING_V4 + channel_data + ALLOCATE_OK + WHATSAPP_ALLOCATE
    msgs, used = parse_stun_stream(stream + BINDING_V6[:30])
    assert [m.msg_type for m in msgs] == [0x0101, 0x0103, 0x0003] and used == len(stream)
    assert parse_stun_stream(stream[:-1]) == (msgs[:2], len(stream) - len(WHATSAPP_ALLOCATE))
    msgs, used = parse_stun_stream(BINDING_V4 + b"\x80garbage")
    assert len(msgs) == 1 and used == len(BINDING_V4)
    assert parse_stun_stream(b"") == ([], 0)


# --- fuzzing -----------------------------------------------------------------------------

def check(msg: StunMessage | None, data: bytes):
    if msg is None:
        return
    assert msg.msg_class in CLASSES and 0 <= msg.method < 0x1000
    assert sum(4 + length for _, length in msg.attributes) <= len(data) - 20
    for ip, port in msg.mapped + msg.peers + msg.relayed:
        ipaddress.ip_address(ip)
        assert 0 <= port < 65536


def timed(fn, data):
    start = time.perf_counter()
    out = fn(data)
    assert time.perf_counter() - start < 1.0
    return out


@fuzz
@settings(max_examples=examples(300), deadline=None)
@given(st.binary(max_size=300), st.integers(0, 0x3FFF))
def test_fuzz_random_bytes(data, msg_type):
    check(timed(parse_stun, data), data)
    framed = struct.pack("!HH", msg_type, len(data)) + COOKIE + TXID + data  # header is valid
    check(timed(parse_stun, framed), framed)
    msgs, used = timed(parse_stun_stream, framed + data)
    assert 0 <= used <= len(framed + data)


mutation = st.tuples(st.sampled_from(["set", "insert", "delete"]),
                     st.integers(0, 1 << 12), st.integers(0, 255))


@fuzz
@settings(max_examples=examples(300), deadline=None)
@given(st.sampled_from(SEEDS), st.lists(mutation, min_size=1, max_size=5), st.booleans())
def test_fuzz_mutated_messages(seed, mutations, fix_length):
    data = bytearray(seed)
    for op, where, value in mutations:
        k = where % (len(data) + 1)
        if op == "set" and k < len(data):
            data[k] = value
        elif op == "insert":
            data[k:k] = bytes([value])
        elif op == "delete":
            del data[k:k + 1]
    if fix_length and len(data) >= 20:  # keep the header consistent: exercise the attributes
        data[2:4] = struct.pack("!H", (len(data) - 20) & 0xFFFF)
    check(timed(parse_stun, bytes(data)), bytes(data))
    timed(parse_stun_stream, bytes(data) * 3)


def test_large_input_is_fast():
    many = stun(0x0001, *[attr(0x8022, b"") for _ in range(16_000)])
    msg = timed(parse_stun, many)
    assert len(msg.attributes) == MAX_ATTRIBUTES and msg.limited  # the per-message bound, flagged
    assert not parse_stun(stun(0x0001, attr(0x8022, b""))).limited
    msgs, used = timed(parse_stun_stream, (BINDING_REQUEST + struct.pack("!HH", 0x4000, 0)) * 50_000)
    assert len(msgs) == MAX_STREAM_MESSAGES and used < 50_000 * (len(BINDING_REQUEST) + 4)


# --- real captures against tshark -------------------------------------------------------

STUN_CAPTURES = ["whatsapp_login_call.pcap", "wa_voice.pcap", "stun.pcap", "signal.pcap",
                 "telegram.pcap", "whatsapp.pcap", "zoom.pcap"]
ADDRESS_KIND = {0x0001: "mapped", 0x0020: "mapped", 0x8020: "mapped",
                0x0012: "peers", 0x0016: "relayed"}


def tshark_stun(path: Path) -> dict[int, list[dict]]:
    """Frame number -> the STUN messages tshark decodes in it (types, attributes, addresses)."""
    xml = subprocess.run(["tshark", "-r", str(path), "-Y", "stun", "-T", "pdml"],
                         capture_output=True, check=True).stdout
    frames: dict[int, list[dict]] = {}
    for pkt in ET.fromstring(xml).iter("packet"):
        number = int(pkt.find("proto[@name='geninfo']/field[@name='num']").get("show"))
        for proto in pkt.findall("proto[@name='stun']"):
            if proto.find("field[@name='stun.channel']") is not None:
                continue  # TURN ChannelData (media), not a STUN message: parse_stun says None
            msg = {"type": int(proto.find("field[@name='stun.type']").get("show"), 16),
                   "rfc4571": proto.find("field[@name='stun.tcp_frame_length']") is not None,
                   "attributes": [], "mapped": [], "peers": [], "relayed": []}
            # (under an expert item when tshark finds the length not a multiple of 4)
            for att in proto.findall(".//field[@name='stun.attributes']/field"):
                show = att.get("show")
                atype = int(show.rsplit("0x", 1)[1], 16)  # "0x0020" or "Unknown attribute 0x4002"
                length = int(att.find("field[@name='stun.att.length']").get("show"))
                msg["attributes"].append((atype, length))
                ip = att.find("field[@name='stun.att.ipv4']")
                if ip is None:
                    ip = att.find("field[@name='stun.att.ipv6']")
                if ip is not None and atype in ADDRESS_KIND:
                    port = int(att.find("field[@name='stun.att.port']").get("show"))
                    text = str(ipaddress.ip_address(ip.get("show")))
                    msg[ADDRESS_KIND[atype]].append((text, port))
            frames.setdefault(number, []).append(msg)
    return frames


def as_dict(msg: StunMessage) -> dict:
    return {"type": msg.msg_type, "attributes": list(msg.attributes), "mapped": list(msg.mapped),
            "peers": list(msg.peers), "relayed": list(msg.relayed)}


@pytest.mark.corpus
def test_stun_matches_tshark_on_real_captures(tshark_corpus):
    totals = {"udp": 0, "tcp": 0, "rfc4571_skipped": 0, "addresses": 0,
              "whatsapp": 0, "whatsapp_tshark_missed": 0}
    for capture in STUN_CAPTURES:
        payloads = l4_payloads(tshark_corpus / capture)
        theirs = tshark_stun(tshark_corpus / capture)
        for number, (l4, payload) in payloads.items():
            expected = theirs.get(number, [])
            if l4 == "udp":
                msg = parse_stun(payload)
                mine = [] if msg is None else [msg]
            else:
                if any(m["rfc4571"] for m in expected):
                    totals["rfc4571_skipped"] += len(expected)  # ICE-TCP framing: not walked
                    continue
                mine = parse_stun_stream(payload)[0]
            got = [as_dict(m) for m in mine]
            want = [{k: v for k, v in m.items() if k != "rfc4571"} for m in expected]
            if got and not want:
                # tshark has no STUN here: only WhatsApp's own 0x0800-0x0802 may be (tshark 4.0
                # does not take them for STUN); anything else would be a false positive
                assert all(0x0800 <= m.msg_type <= 0x0802 for m in mine), (capture, number)
                totals["whatsapp_tshark_missed"] += len(mine)
            else:
                assert got == want, (capture, number)
            totals[l4] += len(want)
            totals["addresses"] += sum(len(m.mapped + m.peers + m.relayed) for m in mine)
            totals["whatsapp"] += sum(m.whatsapp for m in mine)
    print(f"\nSTUN cross-check: {totals}")
    assert totals["udp"] > 0 and totals["addresses"] > 0
