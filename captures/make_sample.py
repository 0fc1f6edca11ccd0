#!/usr/bin/env python3
"""Generate the bundled SYNTHETIC sample capture and its ground truth.

Writes, next to this file:

* ``sample_session.pcap``       classic pcap (microsecond, little-endian), link type
                                Ethernet, frames in PCAPdroid "trailer" format;
* ``sample_session.truth.json`` ground truth computed by re-reading the pcap that was
                                just written (flow table, labels, chat frames and events,
                                media directions, call).

Everything is made up by this script: no byte comes from a real capture. It is fully
deterministic (fixed seed, fixed base time, no wall clock, standard library only), so
running it twice produces byte-identical files.

    .venv/bin/python captures/make_sample.py
"""
from __future__ import annotations

import calendar
import datetime as _dt
import hashlib
import hmac
import ipaddress
import json
import random
import struct
import zlib
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
PCAP_PATH = HERE / "sample_session.pcap"
TRUTH_PATH = HERE / "sample_session.truth.json"
SCENARIO_PATH = HERE / "sample_session.scenario.csv"

SEED = 20260302
BASE_US = calendar.timegm((2026, 3, 2, 9, 0, 0)) * 1_000_000  # 2026-03-02T09:00:00Z

# --- address plan -------------------------------------------------------------------
PHONE4 = "10.215.173.1"             # PCAPdroid VPN address of the phone (IPv4)
PHONE6 = "fd00:2:fd00:1::1"         # PCAPdroid VPN address of the phone (IPv6)
DNS_SRV = "10.215.173.2"            # PCAPdroid virtual DNS server
PUBLIC_IP = "203.0.113.7"           # phone's public address (TEST-NET-3, RFC 5737)

WA_CHAT4 = "157.240.20.53"          # g.whatsapp.net -> chat.cdn.whatsapp.net
WA_CHAT6 = "2a03:2880:f208:c5:face:b00c:0:167"
WA_MEDIA = "157.240.223.60"         # media-fra3-1.cdn.whatsapp.net
WA_RELAY_A = "157.240.20.100"       # call relay used for the call
WA_RELAY_B = "31.13.84.62"          # second relay, only probed
PEER = "198.51.100.23"              # call peer's public address (TEST-NET-2)
PEER_PORT = 51234
FB_EDGE = "157.240.0.35"            # www.facebook.com -> star-mini.c10r.facebook.com
FB_GRAPH = "157.240.0.19"           # graph.facebook.com (DNS only)
IG_EDGE = "157.240.17.174"          # i.instagram.com
GOOGLE = "142.250.185.100"          # www.google.com
EXAMPLE = "93.184.215.14"           # api.example.org (plain HTTP)
NTP_SRV = "216.239.35.4"            # time.android.com
ICMP4_DST = "1.1.1.1"
ICMP6_DST = "2606:4700:4700::1111"

# --- apps: (uid, name as written in the trailer); None = packet without trailer ------
WA = (10123, "WhatsApp")
FB = (10145, "Facebook")
IG = (10167, "Instagram")
CHROME = (10089, "Chrome")
SYSTEM = (-1, "")
NOTRAILER = None

TRAILER_MAGIC = 0x01072021
TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK = 0x01, 0x02, 0x04, 0x08, 0x10
MSS = 1400


def us(seconds: float) -> int:
    """Offset in seconds -> integer microseconds (all times are kept as integers)."""
    return round(seconds * 1_000_000)


def iso(t_us: int) -> str:
    d = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc) + _dt.timedelta(microseconds=t_us)
    return d.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def len24(n: int) -> bytes:
    return n.to_bytes(3, "big")


def ip_bytes(addr: str) -> bytes:
    return ipaddress.ip_address(addr).packed


def is_v6(addr: str) -> bool:
    return ":" in addr


# --- checksums and header builders ---------------------------------------------------
def inet_cksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def pseudo_header(src: str, dst: str, proto: int, length: int) -> bytes:
    if is_v6(src):
        return ip_bytes(src) + ip_bytes(dst) + struct.pack("!I3xB", length, proto)
    return ip_bytes(src) + ip_bytes(dst) + struct.pack("!xBH", proto, length)


def with_cksum(src: str, dst: str, proto: int, seg: bytes, off: int) -> bytes:
    c = inet_cksum(pseudo_header(src, dst, proto, len(seg)) + seg)
    if proto == 17 and c == 0:
        c = 0xFFFF
    return seg[:off] + struct.pack("!H", c) + seg[off + 2:]


def tcp_segment(src, dst, sport, dport, seq, ack, flags, win, opts=b"", payload=b""):
    assert len(opts) % 4 == 0
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                      (5 + len(opts) // 4) << 4, flags, win, 0, 0) + opts
    return with_cksum(src, dst, 6, hdr + payload, 16)


def udp_datagram(src, dst, sport, dport, payload):
    seg = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    return with_cksum(src, dst, 17, seg, 6)


def icmp_echo(type_, ident, seq, payload):
    msg = struct.pack("!BBHHH", type_, 0, 0, ident, seq) + payload
    c = inet_cksum(msg)
    return msg[:2] + struct.pack("!H", c) + msg[4:]


def icmp6_echo(src, dst, type_, ident, seq, payload):
    msg = struct.pack("!BBHHH", type_, 0, 0, ident, seq) + payload
    return with_cksum(src, dst, 58, msg, 2)


# --- DNS wire format (with name compression, like real resolvers) --------------------
QTYPE = {"A": 1, "CNAME": 5, "AAAA": 28}


class _DNSWriter:
    def __init__(self):
        self.buf = bytearray()
        self.names: dict[str, int] = {}

    def name(self, n: str):
        labels = n.rstrip(".").split(".")
        for i in range(len(labels)):
            suffix = ".".join(labels[i:]).lower()
            if suffix in self.names:
                self.buf += struct.pack("!H", 0xC000 | self.names[suffix])
                return
            if len(self.buf) < 0x3FFF:
                self.names[suffix] = len(self.buf)
            lab = labels[i].encode("ascii")
            self.buf += bytes([len(lab)]) + lab
        self.buf += b"\x00"


def dns_message(ident, flags, qname, qtype, answers=()):
    w = _DNSWriter()
    w.buf += struct.pack("!HHHHHH", ident, flags, 1, len(answers), 0, 0)
    w.name(qname)
    w.buf += struct.pack("!HH", QTYPE[qtype], 1)
    for name, rtype, ttl, value in answers:
        w.name(name)
        w.buf += struct.pack("!HHI", QTYPE[rtype], 1, ttl)
        at = len(w.buf)
        w.buf += b"\x00\x00"
        if rtype == "CNAME":
            w.name(value)
        else:
            w.buf += ip_bytes(value)
        struct.pack_into("!H", w.buf, at, len(w.buf) - at - 2)
    return bytes(w.buf)


def dns_parse(msg: bytes):
    """Minimal DNS parser (used to compute the truth from the written bytes)."""
    def name_at(off):
        labels, jumped, end = [], False, None
        for _ in range(128):
            ln = msg[off]
            if ln & 0xC0 == 0xC0:
                if not jumped:
                    end = off + 2
                off = ((ln & 0x3F) << 8) | msg[off + 1]
                jumped = True
                continue
            if ln == 0:
                return ".".join(labels), (end if jumped else off + 1)
            labels.append(msg[off + 1:off + 1 + ln].decode("ascii"))
            off += 1 + ln
        raise ValueError("DNS name loop")

    ident, flags, qd, an, _, _ = struct.unpack_from("!HHHHHH", msg, 0)
    off, questions, answers = 12, [], []
    rev = {v: k for k, v in QTYPE.items()}
    for _ in range(qd):
        n, off = name_at(off)
        qt, _qc = struct.unpack_from("!HH", msg, off)
        off += 4
        questions.append((n, rev.get(qt, str(qt))))
    for _ in range(an):
        n, off = name_at(off)
        rt, _rc, ttl, rdl = struct.unpack_from("!HHIH", msg, off)
        off += 10
        rd = msg[off:off + rdl]
        if rt == 5:
            val = name_at(off)[0]
        elif rt in (1, 28):
            val = str(ipaddress.ip_address(rd))
        else:
            val = rd.hex()
        off += rdl
        answers.append({"name": n, "type": rev.get(rt, str(rt)), "ttl": ttl, "value": val})
    return {"id": ident, "response": bool(flags & 0x8000), "rcode": flags & 0xF,
            "questions": questions, "answers": answers}


# --- TLS records (hand-built, parseable) ---------------------------------------------
def tls_ext(t: int, data: bytes) -> bytes:
    return struct.pack("!HH", t, len(data)) + data


def tls_client_hello(rng: random.Random, sni: str, alpn: tuple[bytes, ...]) -> bytes:
    ciphers = [0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8,
               0xC013, 0xC014, 0x009C, 0x009D, 0x002F, 0x0035]
    host = sni.encode("ascii")
    alpn_list = b"".join(bytes([len(p)]) + p for p in alpn)
    sigalgs = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601]
    exts = [
        tls_ext(0, struct.pack("!HBH", len(host) + 3, 0, len(host)) + host),  # server_name
        tls_ext(23, b""),                                                     # ext. master secret
        tls_ext(0xFF01, b"\x00"),                                             # renegotiation_info
        tls_ext(10, struct.pack("!HHHH", 6, 0x001D, 0x0017, 0x0018)),         # supported_groups
        tls_ext(11, b"\x01\x00"),                                             # ec_point_formats
        tls_ext(35, b""),                                                     # session_ticket
        tls_ext(16, struct.pack("!H", len(alpn_list)) + alpn_list),           # ALPN
        tls_ext(5, b"\x01\x00\x00\x00\x00"),                                  # status_request
        tls_ext(13, struct.pack(f"!H{len(sigalgs)}H", 2 * len(sigalgs), *sigalgs)),
        tls_ext(51, struct.pack("!HHH", 36, 0x001D, 32) + rng.randbytes(32)), # key_share x25519
        tls_ext(45, b"\x01\x01"),                                             # psk_key_exchange_modes
        tls_ext(43, b"\x04\x03\x04\x03\x03"),                                 # supported_versions
    ]

    def body(ext_bytes):
        return (struct.pack("!H", 0x0303) + rng_random + bytes([32]) + session_id
                + struct.pack(f"!H{len(ciphers)}H", 2 * len(ciphers), *ciphers)
                + b"\x01\x00" + struct.pack("!H", len(ext_bytes)) + ext_bytes)

    rng_random, session_id = rng.randbytes(32), rng.randbytes(32)
    ext_bytes = b"".join(exts)
    hs_len = 4 + len(body(ext_bytes))
    if hs_len < 512:  # RFC 7685 padding to a 512-byte ClientHello, as common clients do
        ext_bytes += tls_ext(21, bytes(max(0, 512 - hs_len - 4)))
    b = body(ext_bytes)
    hs = b"\x01" + len24(len(b)) + b
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


def tls_server_hello(rng: random.Random, client_hello: bytes) -> bytes:
    session_id = client_hello[5 + 4 + 2 + 32 + 1:5 + 4 + 2 + 32 + 1 + 32]
    exts = tls_ext(43, b"\x03\x04") + tls_ext(51, struct.pack("!HH", 0x001D, 32) + rng.randbytes(32))
    b = (struct.pack("!H", 0x0303) + rng.randbytes(32) + bytes([32]) + session_id
         + struct.pack("!HB", 0x1301, 0) + struct.pack("!H", len(exts)) + exts)
    hs = b"\x02" + len24(len(b)) + b
    return b"\x16\x03\x03" + struct.pack("!H", len(hs)) + hs


TLS_CCS = b"\x14\x03\x03\x00\x01\x01"


def tls_appdata(rng: random.Random, n: int) -> bytes:
    """One TLS 1.3 application_data record with n bytes of (random) ciphertext."""
    return b"\x17\x03\x03" + struct.pack("!H", n) + rng.randbytes(n)


def tls_sni(payload: bytes) -> str:
    """Extract the SNI from a ClientHello record (truth side; independent of the builder)."""
    if len(payload) < 9 or payload[0] != 0x16 or payload[5] != 1:
        return ""
    p = 9 + 2 + 32
    p += 1 + payload[p]
    p += 2 + struct.unpack_from("!H", payload, p)[0]
    p += 1 + payload[p]
    end = p + 2 + struct.unpack_from("!H", payload, p)[0]
    p += 2
    while p + 4 <= end:
        t, ln = struct.unpack_from("!HH", payload, p)
        if t == 0:
            n = struct.unpack_from("!H", payload, p + 7)[0]
            return payload[p + 9:p + 9 + n].decode("ascii")
        p += 4 + ln
    return ""


# --- STUN ----------------------------------------------------------------------------
STUN_COOKIE = 0x2112A442


def stun_attr(t: int, v: bytes) -> bytes:
    return struct.pack("!HH", t, len(v)) + v + bytes((-len(v)) % 4)


def xor_mapped(addr: str, port: int) -> bytes:
    a = int.from_bytes(ip_bytes(addr), "big") ^ STUN_COOKIE
    return struct.pack("!BBHI", 0, 1, port ^ (STUN_COOKIE >> 16), a)


def stun_message(mtype, txid, attrs, integrity_key=None, fingerprint=False):
    body = b"".join(stun_attr(t, v) for t, v in attrs)
    if integrity_key is not None:  # RFC 5389 15.4, HMAC-SHA1 over the message so far
        hdr = struct.pack("!HHI", mtype, len(body) + 24, STUN_COOKIE) + txid
        body += stun_attr(0x0008, hmac.new(integrity_key, hdr + body, hashlib.sha1).digest())
    if fingerprint:                # RFC 5389 15.5
        hdr = struct.pack("!HHI", mtype, len(body) + 8, STUN_COOKIE) + txid
        body += stun_attr(0x8028, struct.pack("!I", zlib.crc32(hdr + body) ^ 0x5354554E))
    return struct.pack("!HHI", mtype, len(body), STUN_COOKIE) + txid + body


def stun_parse(p: bytes):
    if len(p) < 20 or p[0] & 0xC0 or struct.unpack_from("!I", p, 4)[0] != STUN_COOKIE:
        return None
    mtype, mlen = struct.unpack_from("!HH", p, 0)
    if 20 + mlen != len(p):
        return None
    attrs, off = [], 20
    while off + 4 <= len(p):
        t, ln = struct.unpack_from("!HH", p, off)
        attrs.append((t, p[off + 4:off + 4 + ln]))
        off += 4 + ln + ((-ln) % 4)
    return {"type": mtype, "txid": p[8:20], "attrs": attrs}


def unxor_mapped(v: bytes):
    _, fam, xport, xaddr = struct.unpack("!BBHI", v[:8])
    return str(ipaddress.IPv4Address(xaddr ^ STUN_COOKIE)), xport ^ (STUN_COOKIE >> 16)


# --- the generator -------------------------------------------------------------------
class Packet:
    __slots__ = ("t", "src", "dst", "proto", "l4", "app", "ttl", "flow_label", "order")

    def __init__(self, t, src, dst, proto, l4, app, ttl, flow_label, order):
        self.t, self.src, self.dst, self.proto, self.l4 = t, src, dst, proto, l4
        self.app, self.ttl, self.flow_label, self.order = app, ttl, flow_label, order


class Generator:
    def __init__(self):
        self.rng = random.Random(SEED)
        self.packets: list[Packet] = []
        self.ports: set[int] = set()
        self.labels: dict[tuple, dict] = {}          # flow key -> labels (intent)
        self.frames: dict[tuple, list] = defaultdict(list)  # chat flow key -> [(dir, n, event)]
        self.events: list[dict] = []   # scheduled chat events: kind, direction, what happened
        self._flow_labels: dict[tuple, int] = {}

    # helpers
    def rb(self, n: int) -> bytes:
        return self.rng.randbytes(n)

    def eport(self) -> int:
        while True:
            p = self.rng.randint(32768, 60999)
            if p not in self.ports:
                self.ports.add(p)
                return p

    def emit(self, t, src, dst, proto, l4, app, ttl, flow_label=0):
        self.packets.append(Packet(t, src, dst, proto, l4, app, ttl, flow_label, len(self.packets)))

    def chat_event(self, kind, direction, scheduled) -> None:
        """Frames written from now on belong to a new chat event (truth only: no RNG use)."""
        self.events.append({"kind": kind, "direction": direction, "scheduled": scheduled})

    def label(self, l4, a, ap, b, bp, **kw):
        self.labels[flow_key(l4, a, ap, b, bp)] = kw

    # DNS ---------------------------------------------------------------------------
    def dns(self, t, app, qname, qtype, answers, delay_ms, service):
        sport = self.eport()
        ident = self.rng.getrandbits(16)
        q = dns_message(ident, 0x0100, qname, qtype)
        r = dns_message(ident, 0x8180, qname, qtype, answers)
        self.emit(t, PHONE4, DNS_SRV, 17, udp_datagram(PHONE4, DNS_SRV, sport, 53, q), app, 64)
        self.emit(t + us(delay_ms / 1000), DNS_SRV, PHONE4, 17,
                  udp_datagram(DNS_SRV, PHONE4, 53, sport, r), app, 64)
        self.label("udp", PHONE4, sport, DNS_SRV, 53, service=service, note="dns")

    def udp(self, t, app, src, sport, dst, dport, payload, ttl=64):
        self.emit(t, src, dst, 17, udp_datagram(src, dst, sport, dport, payload), app, ttl,
                  self.flow_label_for(src, sport, dst, dport))

    def flow_label_for(self, src, sport, dst, dport):
        if not is_v6(src):
            return 0
        k = (src, sport, dst, dport)
        if k not in self._flow_labels:
            self._flow_labels[k] = self.rng.getrandbits(20)
        return self._flow_labels[k]


def flow_key(l4, a, ap, b, bp):
    return (l4,) + tuple(sorted([(a, ap), (b, bp)]))


class TCPConn:
    """One TCP connection seen from the phone; keeps seq/ack state for both sides."""

    def __init__(self, g: Generator, app, cip, sip, sport, server_ttl, rtt_ms, service,
                 **labels):
        self.g, self.app = g, app
        self.cip, self.sip = cip, sip
        self.cport, self.sport = g.eport(), sport
        self.server_ttl = server_ttl
        self.rtt = us(rtt_ms / 1000)
        self.nxt = {"c": g.rng.getrandbits(32), "s": g.rng.getrandbits(32)}
        self.rcv = {"c": 0, "s": 0}
        self.fl = {"c": g.rng.getrandbits(20) if is_v6(cip) else 0,
                   "s": g.rng.getrandbits(20) if is_v6(cip) else 0}
        self.key = flow_key("tcp", cip, self.cport, sip, sport)
        g.label("tcp", cip, self.cport, sip, sport, service=service, **labels)

    @staticmethod
    def other(side):
        return "s" if side == "c" else "c"

    def pkt(self, t, side, flags, payload=b"", seq=None, ack=None, opts=b""):
        src, dst = (self.cip, self.sip) if side == "c" else (self.sip, self.cip)
        sp, dp = (self.cport, self.sport) if side == "c" else (self.sport, self.cport)
        seq = self.nxt[side] if seq is None else seq
        if ack is None:
            ack = self.rcv[side] if flags & TCP_ACK else 0
        win = 65535 if flags & TCP_SYN else (2048 if side == "c" else 1047)
        seg = tcp_segment(src, dst, sp, dp, seq, ack, flags, win, opts, payload)
        ttl = 64 if side == "c" else self.server_ttl
        self.g.emit(t, src, dst, 6, seg, self.app, ttl, self.fl[side])

    def handshake(self, t, ack_us=300):
        mss = MSS if not is_v6(self.cip) else MSS - 20
        # MSS, NOP, NOP, SACK-permitted, NOP, window scale 7
        opts = struct.pack("!BBH", 2, 4, mss) + b"\x01\x01\x04\x02\x01\x03\x03\x07"
        self.pkt(t, "c", TCP_SYN, opts=opts)
        self.nxt["c"] = (self.nxt["c"] + 1) & 0xFFFFFFFF
        self.rcv["s"] = self.nxt["c"]
        self.pkt(t + self.rtt, "s", TCP_SYN | TCP_ACK, opts=opts)
        self.nxt["s"] = (self.nxt["s"] + 1) & 0xFFFFFFFF
        self.rcv["c"] = self.nxt["s"]
        self.pkt(t + self.rtt + ack_us, "c", TCP_ACK)
        return t + self.rtt + ack_us

    def send(self, t, side, payload, push=True, lost=False):
        seq = self.nxt[side]
        self.pkt(t, side, TCP_ACK | (TCP_PSH if push else 0), payload)
        self.nxt[side] = (seq + len(payload)) & 0xFFFFFFFF
        if not lost:
            self.rcv[self.other(side)] = self.nxt[side]
        return (side, seq, payload)

    def retransmit(self, t, seg):
        side, seq, payload = seg
        self.pkt(t, side, TCP_ACK | TCP_PSH, payload, seq=seq)
        self.rcv[self.other(side)] = (seq + len(payload)) & 0xFFFFFFFF

    def ack(self, t, side, ack=None):
        self.pkt(t, side, TCP_ACK, ack=ack)

    def segments(self, t, side, pieces, gap_us=120):
        """Send each piece as one segment (pieces longer than the MSS are cut)."""
        mss = MSS if not is_v6(self.cip) else MSS - 20
        cut = []
        for p in pieces:
            cut += [p[i:i + mss] for i in range(0, len(p), mss)]
        for i, p in enumerate(cut):
            self.send(t + i * gap_us, side, p, push=(i == len(cut) - 1))
        return t + (len(cut) - 1) * gap_us

    def bulk(self, t, side, data, gap_us, ack_every=2, ack_delay_us=None):
        """Bulk transfer cut at the MSS; the receiver ACKs every `ack_every` segments.
        ACK timing as seen on the phone: the phone ACKs 0.2 ms after arrival, the
        server's ACK arrives one RTT after the phone sent the segment."""
        mss = MSS if not is_v6(self.cip) else MSS - 20
        cut = [data[i:i + mss] for i in range(0, len(data), mss)]
        recv = self.other(side)
        if ack_delay_us is None:
            ack_delay_us = 200 if recv == "c" else self.rtt
        last = t
        for i, p in enumerate(cut):
            ts = t + i * gap_us
            self.send(ts, side, p, push=(i == len(cut) - 1))
            if (i + 1) % ack_every == 0 or i == len(cut) - 1:
                self.ack(ts + ack_delay_us, recv, ack=self.nxt[side])
                last = ts + ack_delay_us
        return last

    def close(self, t, first="c", ack_us=300):
        second = self.other(first)
        self.pkt(t, first, TCP_FIN | TCP_ACK)
        self.nxt[first] = (self.nxt[first] + 1) & 0xFFFFFFFF
        self.rcv[second] = self.nxt[first]
        t2 = t + (self.rtt if first == "c" else us(0.0004))
        self.pkt(t2, second, TCP_FIN | TCP_ACK)
        self.nxt[second] = (self.nxt[second] + 1) & 0xFFFFFFFF
        self.rcv[first] = self.nxt[second]
        t3 = t2 + (ack_us if first == "c" else self.rtt)
        self.pkt(t3, first, TCP_ACK)
        return t3


class Chat:
    """WhatsApp mobile chat stream on top of a TCPConn: prologue + 3-byte-length frames."""

    def __init__(self, conn: TCPConn):
        self.c = conn

    def frame(self, side, n):
        g = self.c.g
        g.frames[self.c.key].append(("up" if side == "c" else "down", n, len(g.events) - 1))
        return len24(n), g.rb(n)

    def send(self, t, side, sizes, mode="each", gap_us=150):
        """mode: 'each' one segment per frame; 'hdr' the 3-byte length header in its own
        segment, then the body; 'coalesce' all frames in one write cut at the MSS."""
        pieces = []
        for n in sizes:
            h, b = self.frame(side, n)
            if mode == "hdr":
                pieces += [h, b]
            else:
                pieces.append(h + b)
        if mode == "coalesce":
            pieces = [b"".join(pieces)]
        return self.c.segments(t, side, pieces, gap_us)

    def prologue_and_hello(self, t, hello=270):
        """First client bytes like the Android client: 'ED\\0\\1' alone, then routing info,
        'WA' 5 2 and the client hello frame in the next segment."""
        self.c.send(t, "c", b"ED\x00\x01")
        h, b = self.frame("c", hello)
        self.c.send(t + 150, "c", b"\x00\x00\x04" + b"\x08\x09\x08\x02" + b"WA\x05\x02" + h + b)
        return t + 150

    # common exchanges -----------------------------------------------------------------
    def outbound(self, t, size, mode="hdr", ack=(44, 56), receipts=True):
        rtt = self.c.rtt
        t = self.send(t, "c", [size], mode)
        t += rtt
        self.send(t, "s", [self.c.g.rng.randint(*ack)])
        self.c.ack(t + us(0.040), "c")
        if receipts:
            t2 = t + us(self.c.g.rng.uniform(0.8, 1.6))
            self.c.g.chat_event("receipt", "down", "out:receipt")  # the recipient's delivery receipt
            self.send(t2, "s", [self.c.g.rng.randint(74, 82)])
            self.c.ack(t2 + us(0.040), "c")
            t = t2
        return t + us(0.040)

    def inbound(self, t, size, mode="coalesce"):
        rtt = self.c.rtt
        t = self.send(t, "s", [size], mode)
        t += us(0.045)
        self.send(t, "c", [self.c.g.rng.randint(62, 72)])  # delivery receipt
        t += rtt
        self.send(t, "s", [self.c.g.rng.randint(40, 48)])  # server ack
        self.c.ack(t + us(0.040), "c")
        return t + us(0.040)

    def keepalive(self, t):
        t = self.send(t, "c", [33])
        t += self.c.rtt
        self.send(t, "s", [28])
        self.c.ack(t + us(0.040), "c")
        return t + us(0.040)

    def typing(self, t):
        self.send(t, "c", [49])
        self.c.ack(t + self.c.rtt, "s")


def tls_open(g: Generator, conn: TCPConn, t, sni, alpn, server_flight=2800, client_extra=420):
    """ClientHello -> ServerHello+CCS+encrypted flight -> client CCS+Finished+first data.
    Returns the time after the handshake."""
    ch = tls_client_hello(g.rng, sni, alpn)
    conn.send(t, "c", ch)
    t += conn.rtt
    sh = tls_server_hello(g.rng, ch)
    flight = sh + TLS_CCS + tls_appdata(g.rng, server_flight)
    t = conn.bulk(t, "s", flight, gap_us=60)
    t += us(0.0008)
    conn.send(t, "c", TLS_CCS + tls_appdata(g.rng, 53) + tls_appdata(g.rng, client_extra))
    t += conn.rtt
    conn.send(t, "s", tls_appdata(g.rng, 250) + tls_appdata(g.rng, 250))  # session tickets
    conn.ack(t + 200, "c")
    return t + 200


def tls_exchange(g: Generator, conn: TCPConn, t, up, down):
    """One request (records of `up` bytes) and its response (`down` bytes, cut in
    records of <= 16 KiB + overhead)."""
    conn.send(t, "c", tls_appdata(g.rng, up))
    t += conn.rtt
    data = b""
    while down > 0:
        n = min(down, 16401)
        data += tls_appdata(g.rng, n)
        down -= n
    return conn.bulk(t, "s", data, gap_us=70)


# What each scheduled chat event is, in the event kinds of flowscope's events table
# (kind, direction of the first frame): call signalling names the peer like a message does.
TRUTH_KIND = {
    "typing": ("presence", "up"), "out": ("message", "up"), "in": ("message", "down"),
    "ka": ("keepalive", "up"), "out-retx": ("message", "up"), "call-offer": ("message", "up"),
    "call-accept": ("message", "down"), "call-end": ("message", "up"), "burst": ("message", "up"),
    "in-img": ("message", "down"),
}


def build(g: Generator):
    rng = g.rng

    # ---- t=0: WhatsApp resolves its chat host (A and AAAA) --------------------------
    g.dns(us(0.0), WA, "g.whatsapp.net", "A",
          [("g.whatsapp.net", "CNAME", 2537, "chat.cdn.whatsapp.net"),
           ("chat.cdn.whatsapp.net", "A", 60, WA_CHAT4)], 15.2, "whatsapp.other")
    g.dns(us(0.0004), WA, "g.whatsapp.net", "AAAA",
          [("g.whatsapp.net", "CNAME", 2537, "chat.cdn.whatsapp.net"),
           ("chat.cdn.whatsapp.net", "AAAA", 60, WA_CHAT6)], 16.1, "whatsapp.other")

    # ---- WhatsApp chat over IPv4, TCP 5222, whole session ---------------------------
    conn = TCPConn(g, WA, PHONE4, WA_CHAT4, 5222, 57, 18.0, "whatsapp.chat")
    chat = Chat(conn)
    t = conn.handshake(us(0.050))                     # SYN->SYN-ACK 18.0 ms, ACK +0.3 ms
    g.chat_event("handshake", "both", "handshake")  # Noise handshake and login stanzas
    t = chat.prologue_and_hello(t + 200)
    t += conn.rtt
    chat.send(t, "s", [347, 54], "coalesce")          # server hello + one more frame
    t += us(0.0031)
    t = chat.send(t, "c", [198], "hdr")               # client finish
    t = chat.send(t + us(0.0004), "c", [62, 45], "each")
    t += conn.rtt
    t = chat.send(t, "s", [58, 44, 2311, 3870], "coalesce")
    conn.ack(t + 200, "c")
    t = chat.send(t + us(0.021), "c", [120, 88], "each")
    t += conn.rtt
    t = chat.send(t, "s", [233, 91], "coalesce")
    conn.ack(t + us(0.040), "c")

    # scheduled chat events (seconds)
    chat_events = [
        (35.2, "typing"), (38.4, "out", 214), (48.1, "in", 356),
        (60.3, "ka"), (92.5, "typing"), (95.7, "out", 301), (120.9, "ka"),
        (144.2, "out", 612),                                   # image message after upload
        (178.4, "in", 512), (181.2, "ka"),
        (212.6, "out-retx", 267), (241.7, "ka"), (265.9, "in", 289),
        (299.5, "call-offer"), (300.9, "call-accept"), (302.4, "ka"),
        (361.9, "call-end"), (362.8, "ka"),
        (390.2, "burst"), (423.1, "ka"), (455.0, "out", 388), (483.6, "ka"),
        (520.2, "in-img", 1633), (544.0, "ka"), (571.3, "typing"), (574.0, "out", 176),
    ]
    for ev in chat_events:
        t0, kind = us(ev[0]), ev[1]
        g.chat_event(*TRUTH_KIND[kind], kind)
        if kind == "typing":
            chat.typing(t0)
        elif kind == "out":
            chat.outbound(t0, ev[2], mode=rng.choice(["hdr", "each"]))
        elif kind == "in":
            chat.inbound(t0, ev[2])
        elif kind == "ka":
            chat.keepalive(t0)
        elif kind == "out-retx":
            # the data segment is sent, not acknowledged, and sent again 240 ms later
            h, b = chat.frame("c", ev[2])
            seg = conn.send(t0, "c", h + b, lost=True)
            conn.retransmit(t0 + us(0.240), seg)
            t1 = t0 + us(0.240) + conn.rtt
            chat.send(t1, "s", [rng.randint(44, 56)])
            conn.ack(t1 + us(0.040), "c")
            t2 = t1 + us(1.1)
            g.chat_event("receipt", "down", "out-retx:receipt")
            chat.send(t2, "s", [79])
            conn.ack(t2 + us(0.040), "c")
        elif kind == "call-offer":
            t1 = chat.send(t0, "c", [803], "hdr")
            t1 += conn.rtt
            chat.send(t1, "s", [52, 1188], "coalesce")    # ack + relay list
            conn.ack(t1 + 200, "c")
        elif kind == "call-accept":
            t1 = chat.send(t0, "s", [402], "coalesce")
            chat.send(t1 + us(0.003), "c", [66])
            conn.ack(t1 + us(0.003) + conn.rtt, "s")
        elif kind == "call-end":
            chat.outbound(t0, 176, mode="each", ack=(46, 48), receipts=False)
        elif kind == "burst":
            t1 = t0
            for _ in range(7):                             # seven 151-byte frames
                t1 = chat.send(t1, "c", [151]) + us(0.006)
            t1 += us(0.140)
            chat.send(t1, "s", [47] * 7, "coalesce")
            conn.ack(t1 + us(0.040), "c")
        elif kind == "in-img":
            chat.inbound(t0, ev[2], mode="coalesce")
    conn.close(us(595.0), "c")

    # ---- system: SNTP (no PCAPdroid trailer on these 4 packets), ICMP ----------------
    g.dns(us(2.0), NOTRAILER, "time.android.com", "A",
          [("time.android.com", "A", 300, NTP_SRV)], 11.8, "other")
    nport = g.eport()
    ntp_epoch = 2208988800
    tx = (BASE_US // 1_000_000 + 2 + ntp_epoch) << 32 | 0x1A2B3C4D
    req = struct.pack("!BBbb11I", 0x23, 0, 0, 0, *([0] * 9), tx >> 32, tx & 0xFFFFFFFF)
    g.udp(us(2.05), NOTRAILER, PHONE4, nport, NTP_SRV, 123, req)
    ref = (BASE_US // 1_000_000 + 1 + ntp_epoch) << 32
    rx = (BASE_US // 1_000_000 + 2 + ntp_epoch) << 32 | 0x1F000000
    resp = (struct.pack("!BBbb", 0x24, 1, 0, -20) + struct.pack("!II", 0, 10) + b"GOOG"
            + struct.pack("!QQQQ", ref, tx, rx, rx + 0x10000))
    g.udp(us(2.05) + us(0.0214), NOTRAILER, NTP_SRV, 123, PHONE4, nport, resp, ttl=118)
    g.label("udp", PHONE4, nport, NTP_SRV, 123, service="other")

    ping = bytes(range(0x10, 0x38)) + bytes(16)
    g.emit(us(5.0), PHONE4, ICMP4_DST, 1, icmp_echo(8, 0x3A01, 1, ping), SYSTEM, 64)
    g.emit(us(5.0142), ICMP4_DST, PHONE4, 1, icmp_echo(0, 0x3A01, 1, ping), SYSTEM, 59)
    g.label("icmp", PHONE4, 0, ICMP4_DST, 0, service="other")
    g.emit(us(6.0), PHONE6, ICMP6_DST, 58, icmp6_echo(PHONE6, ICMP6_DST, 128, 0x3A02, 1, ping),
           SYSTEM, 64)
    g.emit(us(6.0151), ICMP6_DST, PHONE6, 58, icmp6_echo(ICMP6_DST, PHONE6, 129, 0x3A02, 1, ping),
           SYSTEM, 59)
    g.label("icmp6", PHONE6, 0, ICMP6_DST, 0, service="other")

    # ---- Chrome: www.google.com over TLS --------------------------------------------
    g.dns(us(20.0), CHROME, "www.google.com", "A",
          [("www.google.com", "A", 300, GOOGLE)], 9.7, "other")
    gc = TCPConn(g, CHROME, PHONE4, GOOGLE, 443, 118, 9.4, "other")
    t = gc.handshake(us(20.015))
    t = tls_open(g, gc, t + 150, "www.google.com", (b"h2", b"http/1.1"), 3950, 610)
    t = tls_exchange(g, gc, t + us(0.002), 480, 5200)
    t = tls_exchange(g, gc, us(24.3), 310, 1900)
    gc.close(us(44.3), "s")

    # ---- Facebook app: DNS, TLS to www.facebook.com, QUIC ---------------------------
    g.dns(us(58.0), FB, "www.facebook.com", "A",
          [("www.facebook.com", "CNAME", 3600, "star-mini.c10r.facebook.com"),
           ("star-mini.c10r.facebook.com", "A", 60, FB_EDGE)], 12.9, "meta.other")
    g.dns(us(58.003), FB, "graph.facebook.com", "A",
          [("graph.facebook.com", "CNAME", 3600, "star.c10r.facebook.com"),
           ("star.c10r.facebook.com", "A", 60, FB_GRAPH)], 13.4, "meta.other")
    fc = TCPConn(g, FB, PHONE4, FB_EDGE, 443, 57, 12.0, "meta.facebook")
    t = fc.handshake(us(58.02))
    t = tls_open(g, fc, t + 150, "www.facebook.com", (b"h2", b"http/1.1"), 2650, 380)
    t = tls_exchange(g, fc, t + us(0.003), 520, 9800)
    tls_exchange(g, fc, us(66.7), 260, 1400)
    fc.close(us(88.0), "c")

    qport = g.eport()
    dcid, scid, srv_cid = g.rb(8), g.rb(8), g.rb(8)
    g.label("udp", PHONE4, qport, FB_EDGE, 443, service="meta.facebook")

    def quic_long(first, dc, sc, body_len, pn_len=4):
        hdr = bytes([first]) + struct.pack("!I", 1) + bytes([len(dc)]) + dc + bytes([len(sc)]) + sc
        if first & 0x30 == 0:          # Initial: token length 0
            hdr += b"\x00"
        return hdr + struct.pack("!H", 0x4000 | (pn_len + body_len)) + g.rb(pn_len + body_len)

    def client_initial(first):
        head = 1 + 4 + 1 + 8 + 1 + 8 + 1 + 2
        return quic_long(first, dcid, scid, 1200 - head - 4)

    t = us(61.0)
    g.udp(t, FB, PHONE4, qport, FB_EDGE, 443, client_initial(0xC3), ttl=64)
    t += us(0.012)
    g.udp(t, FB, FB_EDGE, 443, PHONE4, qport,
          quic_long(0xC1, scid, srv_cid, 120, 2) + quic_long(0xE1, scid, srv_cid, 1060, 2), ttl=57)
    g.udp(t + 90, FB, FB_EDGE, 443, PHONE4, qport, quic_long(0xE1, scid, srv_cid, 1150, 2), ttl=57)
    t += us(0.0012)
    g.udp(t, FB, PHONE4, qport, FB_EDGE, 443, client_initial(0xC3), ttl=64)  # ACK + Handshake, padded
    for i, (up, down) in enumerate([(83, 1252), (61, 1252), (47, 1252), (39, 640), (35, 0)]):
        t += us(0.004) if i else us(0.0009)
        g.udp(t, FB, PHONE4, qport, FB_EDGE, 443,
              bytes([0x40 | rng.getrandbits(6)]) + srv_cid + g.rb(up), ttl=64)
        if down:
            g.udp(t + us(0.012), FB, FB_EDGE, 443, PHONE4, qport,
                  bytes([0x40 | rng.getrandbits(6)]) + scid + g.rb(down), ttl=57)
            g.udp(t + us(0.0121), FB, FB_EDGE, 443, PHONE4, qport,
                  bytes([0x40 | rng.getrandbits(6)]) + scid + g.rb(down - 200), ttl=57)

    # ---- Chrome: plain HTTP ---------------------------------------------------------
    g.dns(us(120.0), CHROME, "api.example.org", "A",
          [("api.example.org", "A", 3600, EXAMPLE)], 22.5, "other")
    hc = TCPConn(g, CHROME, PHONE4, EXAMPLE, 80, 53, 88.0, "other")
    t = hc.handshake(us(120.03))
    req = (b"GET /v1/status HTTP/1.1\r\nHost: api.example.org\r\n"
           b"User-Agent: Mozilla/5.0 (Linux; Android 14; Pixel 7) AppleWebKit/537.36 "
           b"(KHTML, like Gecko) Chrome/133.0.0.0 Mobile Safari/537.36\r\n"
           b"Accept: application/json\r\nAccept-Encoding: gzip, deflate\r\n"
           b"Connection: close\r\n\r\n")
    hc.send(t + 100, "c", req)
    body = b'{"status":"ok","synthetic":true}\n'
    resp = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
    t = t + 100 + hc.rtt
    hc.send(t, "s", resp)
    hc.close(t + 300, "s")

    # ---- WhatsApp media upload (image) ----------------------------------------------
    g.dns(us(139.9), WA, "mmg.whatsapp.net", "A",
          [("mmg.whatsapp.net", "CNAME", 300, "media-fra3-1.cdn.whatsapp.net"),
           ("media-fra3-1.cdn.whatsapp.net", "A", 300, WA_MEDIA)], 14.3, "whatsapp.other")
    mc = TCPConn(g, WA, PHONE4, WA_MEDIA, 443, 57, 16.0, "whatsapp.media", media_direction="up")
    t = mc.handshake(us(139.93))
    t = tls_open(g, mc, t + 150, "media-fra3-1.cdn.whatsapp.net", (b"h2",), 2480, 290)
    upload = 200_000
    data = b""
    while upload > 0:
        n = min(upload, 16384) + 17
        data += tls_appdata(g.rng, n)
        upload -= n - 17
    t = mc.bulk(t + us(0.002), "c", data, gap_us=560)
    t += us(0.004)
    mc.send(t, "s", tls_appdata(g.rng, 431))            # 200 + JSON with url/direct_path
    mc.ack(t + 200, "c")
    mc.send(us(143.9), "c", tls_appdata(g.rng, 19))      # close_notify
    mc.close(us(143.901), "c")

    # ---- Instagram --------------------------------------------------------------------
    g.dns(us(240.0), IG, "i.instagram.com", "A",
          [("i.instagram.com", "CNAME", 3600, "instagram.c10r.instagram.com"),
           ("instagram.c10r.instagram.com", "A", 60, IG_EDGE)], 13.1, "meta.other")
    ic = TCPConn(g, IG, PHONE4, IG_EDGE, 443, 57, 13.0, "meta.instagram")
    t = ic.handshake(us(240.02))
    t = tls_open(g, ic, t + 150, "i.instagram.com", (b"h2", b"http/1.1"), 2710, 455)
    t = tls_exchange(g, ic, t + us(0.002), 690, 7400)
    t = tls_exchange(g, ic, us(243.8), 410, 2600)
    ic.close(us(250.0), "c")

    # ---- WhatsApp call (relay + peer-to-peer) ---------------------------------------
    T = us(300.0)
    lp_relay, lp_p2p = 40000, 40001
    g.ports.update({lp_relay, lp_p2p})
    g.label("udp", PHONE4, lp_relay, WA_RELAY_A, 3478, service="whatsapp.call", call_role="relay")
    g.label("udp", PHONE4, lp_relay, WA_RELAY_B, 3478, service="whatsapp.call", call_role="relay")
    g.label("udp", PHONE4, lp_p2p, PEER, PEER_PORT, service="whatsapp.call", call_role="peer")

    def relay_tx(t, payload, to_relay=True, relay=WA_RELAY_A):
        if to_relay:
            g.udp(t, WA, PHONE4, lp_relay, relay, 3478, payload)
        else:
            g.udp(t, WA, relay, 3478, PHONE4, lp_relay, payload, ttl=57)

    # binding requests to two relays at once (RTT probes)
    for relay, rtt in ((WA_RELAY_A, 22.0), (WA_RELAY_B, 31.6)):
        txid = g.rb(12)
        t0 = T + us(0.400) + (0 if relay == WA_RELAY_A else 180)
        relay_tx(t0, stun_message(0x0001, txid, []), relay=relay)
        relay_tx(t0 + us(rtt / 1000), stun_message(
            0x0101, txid, [(0x0020, xor_mapped(PUBLIC_IP, lp_relay)),
                           (0x4002, struct.pack("!I", 1))]), to_relay=False, relay=relay)
    # WhatsApp relay bind (type 0x0800, attrs 0x4000 token, 0x4002, 0x4003)
    txid = g.rb(12)
    t0 = T + us(0.450)
    relay_tx(t0, stun_message(0x0800, txid, [(0x4000, g.rb(24)), (0x4002, struct.pack("!I", 1)),
                                             (0x4003, g.rb(8))]))
    relay_tx(t0 + us(0.022), stun_message(0x0800, txid, [(0x4001, struct.pack("!I", 0x10)),
                                                         (0x4003, g.rb(8))]), to_relay=False)

    def rtp_stream(start, end, dense_until, sparse_every, send, ssrc, pt=120):
        seq, ts_rtp = rng.getrandbits(16), rng.getrandbits(32)
        t, step = start, us(0.020)
        while t < end:
            hdr = struct.pack("!BBHII", 0x80, pt, seq & 0xFFFF, ts_rtp & 0xFFFFFFFF, ssrc)
            send(t + rng.randint(0, 900), hdr + g.rb(rng.randint(148, 188)))
            adv = step if t < dense_until else sparse_every
            seq += adv // step
            ts_rtp += 960 * (adv // step)
            t += adv

    # media via relay: 20 ms packets for the first 2 s, then one packet a second (thinned)
    rtp_stream(T + us(1.0), T + us(61.0), T + us(3.0), us(1.0),
               lambda t, p: relay_tx(t, p), rng.getrandbits(32))
    rtp_stream(T + us(1.0) + us(0.0105), T + us(61.0), T + us(3.0), us(1.0),
               lambda t, p: relay_tx(t, p, to_relay=False), rng.getrandbits(32))
    # WhatsApp ping/pong with the relay every 10 s (0x0801 / 0x0802)
    for k in range(1, 7):
        txid = g.rb(12)
        t0 = T + us(10.0 * k) + us(0.0033)
        relay_tx(t0, stun_message(0x0801, txid, [(0x4003, g.rb(8))]))
        relay_tx(t0 + us(0.022), stun_message(0x0802, txid, [(0x4003, g.rb(8)),
                                                             (0x4001, struct.pack("!I", 0x10))]),
                 to_relay=False)

    # peer-to-peer leg: ICE-style connectivity checks, then media for ~30 s
    ufrag_l, ufrag_r = "Yq3n", "Wm8k"
    key_r, key_l = g.rb(16), g.rb(16)
    t0 = T + us(30.0)
    txid = g.rb(12)
    g.udp(t0, WA, PHONE4, lp_p2p, PEER, PEER_PORT, stun_message(
        0x0001, txid, [(0x0006, f"{ufrag_r}:{ufrag_l}".encode()), (0x0024, struct.pack("!I", 0x6E7F1EFF)),
                       (0x802A, g.rb(8))], integrity_key=key_r, fingerprint=True))
    g.udp(t0 + us(0.035), WA, PEER, PEER_PORT, PHONE4, lp_p2p, stun_message(
        0x0101, txid, [(0x0020, xor_mapped(PUBLIC_IP, lp_p2p))], integrity_key=key_r,
        fingerprint=True), ttl=49)
    txid = g.rb(12)
    g.udp(t0 + us(0.0362), WA, PEER, PEER_PORT, PHONE4, lp_p2p, stun_message(
        0x0001, txid, [(0x0006, f"{ufrag_l}:{ufrag_r}".encode()), (0x0024, struct.pack("!I", 0x6E7F1EFF)),
                       (0x8029, g.rb(8))], integrity_key=key_l, fingerprint=True), ttl=49)
    g.udp(t0 + us(0.0365), WA, PHONE4, lp_p2p, PEER, PEER_PORT, stun_message(
        0x0101, txid, [(0x0020, xor_mapped(PEER, PEER_PORT))], integrity_key=key_l,
        fingerprint=True))
    rtp_stream(T + us(30.5), T + us(60.5), T + us(31.5), us(1.0),
               lambda t, p: g.udp(t, WA, PHONE4, lp_p2p, PEER, PEER_PORT, p),
               rng.getrandbits(32))
    rtp_stream(T + us(30.5) + us(0.0171), T + us(60.5), T + us(31.5), us(1.0),
               lambda t, p: g.udp(t, WA, PEER, PEER_PORT, PHONE4, lp_p2p, p, ttl=49),
               rng.getrandbits(32))

    # ---- WhatsApp media download of the inbound image -------------------------------
    g.dns(us(520.35), WA, "media-fra3-1.cdn.whatsapp.net", "A",
          [("media-fra3-1.cdn.whatsapp.net", "A", 300, WA_MEDIA)], 13.7, "whatsapp.other")
    dc = TCPConn(g, WA, PHONE4, WA_MEDIA, 443, 57, 16.0, "whatsapp.media", media_direction="down")
    t = dc.handshake(us(520.38))
    t = tls_open(g, dc, t + 150, "media-fra3-1.cdn.whatsapp.net", (b"h2",), 2480, 270)
    t = tls_exchange(g, dc, t + us(0.002), 160, 14_200)
    dc.close(us(522.5), "c")

    # ---- WhatsApp chat over IPv6 on port 443 (short reconnect) -----------------------
    c6 = TCPConn(g, WA, PHONE6, WA_CHAT6, 443, 57, 19.5, "whatsapp.chat")
    ch6 = Chat(c6)
    t = c6.handshake(us(500.0))
    g.chat_event("handshake", "both", "handshake")  # Noise handshake and login stanzas
    t = ch6.prologue_and_hello(t + 200)
    t += c6.rtt
    ch6.send(t, "s", [339, 54], "coalesce")
    t += us(0.003)
    t = ch6.send(t, "c", [198], "hdr")
    t += c6.rtt
    t = ch6.send(t, "s", [61, 44, 730], "coalesce")
    c6.ack(t + 200, "c")
    g.chat_event(*TRUTH_KIND["ka"], "ka")
    ch6.keepalive(us(503.0))
    c6.close(us(507.5), "c")


# --- writing -----------------------------------------------------------------------
def finalize(g: Generator) -> list[tuple[int, bytes, object]]:
    """Sort by time, assign increasing IPv4 ids per source, build IP packets."""
    pkts = sorted(g.packets, key=lambda p: (p.t, p.order))
    ipid: dict[str, int] = {}
    out = []
    for p in pkts:
        if is_v6(p.src):
            ip = (struct.pack("!IHBB", (6 << 28) | p.flow_label, len(p.l4), p.proto, p.ttl)
                  + ip_bytes(p.src) + ip_bytes(p.dst) + p.l4)
        else:
            if p.src not in ipid:
                ipid[p.src] = g.rng.getrandbits(16)
            ident = ipid[p.src]
            ipid[p.src] = (ident + 1) & 0xFFFF
            df = 0x4000 if p.proto == 6 else 0
            hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(p.l4), ident, df, p.ttl,
                              p.proto, 0, ip_bytes(p.src), ip_bytes(p.dst))
            hdr = hdr[:10] + struct.pack("!H", inet_cksum(hdr)) + hdr[12:]
            ip = hdr + p.l4
        out.append((BASE_US + p.t, ip, p.app))
    return out


def frame_bytes(ip: bytes, app) -> bytes:
    eth = bytes(12) + struct.pack("!H", 0x86DD if ip[0] >> 4 == 6 else 0x0800)
    if app is NOTRAILER:
        return eth + ip
    pad = bytes((-(14 + len(ip))) % 4)
    uid, name = app
    head = eth + ip + pad + struct.pack("!Ii20s", TRAILER_MAGIC, uid, name.encode("ascii"))
    return head + struct.pack("!I", zlib.crc32(head) & 0xFFFFFFFF)


def write_pcap(path: Path, packets) -> bytes:
    buf = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for ts, ip, app in packets:
        fr = frame_bytes(ip, app)
        buf += struct.pack("<IIII", ts // 1_000_000, ts % 1_000_000, len(fr), len(fr)) + fr
    path.write_bytes(bytes(buf))
    return bytes(buf)


# --- truth (computed from the written file) ----------------------------------------
def read_pcap(data: bytes):
    magic, _, _, _, _, _, linktype = struct.unpack_from("<IHHiIII", data, 0)
    assert magic == 0xA1B2C3D4 and linktype == 1
    off, out = 24, []
    while off < len(data):
        sec, usec, incl, orig = struct.unpack_from("<IIII", data, off)
        fr = data[off + 16:off + 16 + incl]
        off += 16 + incl
        ip = fr[14:]
        if ip[0] >> 4 == 4:
            ip_len = struct.unpack_from("!H", ip, 2)[0]
        else:
            ip_len = 40 + struct.unpack_from("!H", ip, 4)[0]
        ip = ip[:ip_len]
        app = None
        rest = fr[14 + ip_len:]
        if len(rest) >= 32 and struct.unpack_from("!I", rest, len(rest) - 32)[0] == TRAILER_MAGIC:
            tr = rest[-32:]
            assert zlib.crc32(fr[:-4]) & 0xFFFFFFFF == struct.unpack_from("!I", tr, 28)[0]
            uid = struct.unpack_from("!i", tr, 4)[0]
            app = (uid, tr[8:28].rstrip(b"\x00").decode("ascii"))
        out.append((sec * 1_000_000 + usec, ip, app))
    return out


def dissect(ip: bytes):
    if ip[0] >> 4 == 4:
        ihl = (ip[0] & 0xF) * 4
        proto, src, dst = ip[9], str(ipaddress.ip_address(ip[12:16])), str(ipaddress.ip_address(ip[16:20]))
        l4 = ip[ihl:]
    else:
        proto, src, dst = ip[6], str(ipaddress.ip_address(ip[8:24])), str(ipaddress.ip_address(ip[24:40]))
        l4 = ip[40:]
    d = {"proto": proto, "src": src, "dst": dst, "ip_len": len(ip), "l4_offset": len(ip) - len(l4),
         "sport": 0, "dport": 0,
         "payload": b"", "flags": 0, "seq": 0}
    if proto == 6:
        d["sport"], d["dport"], d["seq"] = struct.unpack_from("!HHI", l4, 0)
        d["flags"] = l4[13]
        d["payload"] = l4[(l4[12] >> 4) * 4:]
    elif proto == 17:
        d["sport"], d["dport"] = struct.unpack_from("!HH", l4, 0)
        d["payload"] = l4[8:]
    return d


L4NAME = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmp6"}


def reassemble(segs):
    """segs: [(ts, seq, payload)] of one direction, capture order, seq relative to ISN+1.
    Returns (bytes, per-byte first-seen ts); retransmitted bytes keep the first ts."""
    size = max((s + len(p) for _, s, p in segs), default=0)
    data, when = bytearray(size), [None] * size
    for ts, s, p in segs:
        for i, b in enumerate(p):
            if when[s + i] is None:
                data[s + i], when[s + i] = b, ts
    assert all(w is not None for w in when), "hole in stream"
    return bytes(data), when


def parse_frames(data, when, client):
    off, frames = 0, []
    if client:
        if data[:4] == b"ED\x00\x01":
            off = 7 + int.from_bytes(data[4:7], "big")
        assert data[off:off + 2] == b"WA", "no WA header"
        off += 4
    while off < len(data):
        n = int.from_bytes(data[off:off + 3], "big")
        assert off + 3 + n <= len(data), "truncated frame"
        frames.append({"ts_first": when[off], "ts": when[off + 2 + n], "frame_bytes": n})
        off += 3 + n
    return frames, off


def parse_iso(text: str) -> int:
    """Microseconds since the epoch of an iso() string."""
    day, clock = text.rstrip("Z").split("T")
    hms, frac = clock.split(".")
    y, mo, d = (int(x) for x in day.split("-"))
    h, mi, sec = (int(x) for x in hms.split(":"))
    return calendar.timegm((y, mo, d, h, mi, sec)) * 1_000_000 + int(frac)


def chat_truth_events(g: Generator, frames: list) -> list:
    """The scheduled chat events of one flow, from the frames they wrote, in time order."""
    by_event: dict[int, list] = defaultdict(list)
    for x in frames:
        by_event[x["event"]].append(x)
    out = []
    for e, fr in by_event.items():
        out.append({**g.events[e], "ts_start": iso(min(x["ts_first"] for x in fr)),
                    "ts_end": iso(max(x["ts"] for x in fr)),
                    "frames_up": sum(x["direction"] == "up" for x in fr),
                    "frames_down": sum(x["direction"] == "down" for x in fr)})
    return sorted(out, key=lambda x: x["ts_start"])


def compute_truth(g: Generator, pcap: bytes, records) -> dict:
    flows: dict[tuple, dict] = {}
    dns_cache = []  # (ts, address, qname)
    for ts, ip, app in records:
        d = dissect(ip)
        l4 = L4NAME[d["proto"]]
        if d["proto"] == 17 and 53 in (d["sport"], d["dport"]):
            m = dns_parse(d["payload"])
            if m["response"]:
                for a in m["answers"]:
                    if a["type"] in ("A", "AAAA"):
                        dns_cache.append((ts, a["value"], m["questions"][0][0]))
        key = flow_key(l4, d["src"], d["sport"], d["dst"], d["dport"])
        f = flows.get(key)
        if f is None:
            if d["proto"] == 6:
                assert d["flags"] & TCP_SYN and not d["flags"] & TCP_ACK, "TCP flow without SYN"
            f = flows[key] = {
                "l4": l4, "orig_ip": d["src"], "orig_port": d["sport"], "resp_ip": d["dst"],
                "resp_port": d["dport"], "pkts_orig": 0, "pkts_resp": 0, "bytes_orig": 0,
                "bytes_resp": 0, "payload_bytes_orig": 0, "payload_bytes_resp": 0,
                "_ts": [], "_apps": Counter(), "_pk": [], "_trailer": Counter()}
        orig = (d["src"], d["sport"]) == (f["orig_ip"], f["orig_port"])
        side = "orig" if orig else "resp"
        f["pkts_" + side] += 1
        f["bytes_" + side] += d["ip_len"]
        # ICMP/ICMPv6: the bytes after the 8-byte ICMP header, as flowscope's schema defines
        f["payload_bytes_" + side] += len(d["payload"]) if d["proto"] in (6, 17) else d["ip_len"] - d["l4_offset"] - 8
        f["_ts"].append(ts)
        f["_apps"][app] += 1
        f["_trailer"][app is not None] += 1
        f["_pk"].append((ts, orig, d))

    out_flows, call = [], {"relays": [], "peers": [], "mapped_addresses": [], "stun_transactions": []}
    for key, f in flows.items():
        lab = g.labels[key]
        pk = f.pop("_pk")
        ts_list = f.pop("_ts")
        apps = f.pop("_apps")
        trailer = f.pop("_trailer")
        assert len(apps) == 1, f"flow {key} mixes apps"
        app = next(iter(apps))
        f["ts_start"], f["ts_end"] = iso(min(ts_list)), iso(max(ts_list))
        f["duration_s"] = round((max(ts_list) - min(ts_list)) / 1e6, 6)
        f["app"] = app[1] if app else ""
        f["app_uid"] = app[0] if app else None
        f["pcapdroid_trailer"] = bool(trailer[True])
        f["service"] = lab["service"]
        if lab.get("note"):
            f["note"] = lab["note"]
        # hostname: SNI, else the queried DNS name whose answer held the address
        sni = ""
        if f["l4"] == "tcp":
            for ts, orig, d in pk:
                if orig and d["payload"]:
                    sni = tls_sni(d["payload"])
                    break
            syn = next(ts for ts, o, d in pk if o and d["flags"] & TCP_SYN)
            synack = next(ts for ts, o, d in pk if not o and d["flags"] & TCP_SYN)
            f["rtt_ms"] = round((synack - syn) / 1000, 3)
            seen, retx = set(), 0
            for ts, o, d in pk:
                if d["payload"]:
                    k = (o, d["seq"], len(d["payload"]))
                    retx += k in seen
                    seen.add(k)
            f["retransmitted_segments"] = retx
        f["sni"] = sni
        host = sni
        if not host:
            cands = [(ts, q) for ts, a, q in dns_cache if a == f["resp_ip"] and ts <= min(ts_list)]
            host = max(cands)[1] if cands else ""
        f["hostname"] = host
        if lab.get("note") == "dns":
            f["dns"] = []
            for ts, orig, d in pk:
                m = dns_parse(d["payload"])
                if m["response"]:
                    f["dns"].append({"qname": m["questions"][0][0], "qtype": m["questions"][0][1],
                                     "rcode": m["rcode"], "answers": m["answers"]})
        if lab["service"] == "whatsapp.chat":
            isn = {o: d["seq"] for ts, o, d in pk if d["flags"] & TCP_SYN}
            segs = {True: [], False: []}
            for ts, o, d in pk:
                if d["payload"]:
                    segs[o].append((ts, (d["seq"] - isn[o] - 1) & 0xFFFFFFFF, d["payload"]))
            frames = []
            for o in (True, False):
                data, when = reassemble(segs[o])
                fr, _ = parse_frames(data, when, client=o)
                for x in fr:
                    x["direction"] = "up" if o else "down"
                frames += fr
                if o:
                    f["prologue_hex"] = data[:data.index(b"WA") + 4].hex()
            frames.sort(key=lambda x: (x["ts_first"], x["direction"] == "down"))
            # cross-check against what the generator meant to write, and tag each frame
            # with the scheduled event that wrote it
            for o, dname in ((True, "up"), (False, "down")):
                mine = [x for x in frames if x["direction"] == dname]
                want = [(n, e) for dd, n, e in g.frames[key] if dd == dname]
                assert [x["frame_bytes"] for x in mine] == [n for n, _e in want], (key, dname)
                for x, (_n, e) in zip(mine, want):
                    x["event"] = e
            f["events"] = chat_truth_events(g, frames)
            f["frames"] = [{"ts": iso(x["ts"]), "ts_first": iso(x["ts_first"]),
                            "direction": x["direction"], "frame_bytes": x["frame_bytes"]}
                           for x in frames]
            f["frames_up"] = sum(x["direction"] == "up" for x in frames)
            f["frames_down"] = sum(x["direction"] == "down" for x in frames)
        if lab.get("media_direction"):
            f["media_direction"] = lab["media_direction"]
        if lab.get("call_role"):
            f["call_role"] = lab["call_role"]
            pending, mine = {}, []
            for ts, orig, d in pk:
                s = stun_parse(d["payload"])
                if s is None:
                    continue
                if s["txid"] not in pending:
                    pending[s["txid"]] = (ts, s, d)
                    continue
                t_req, req, dq = pending.pop(s["txid"])
                tr = {"request_ts": iso(t_req), "request_type": f"0x{req['type']:04x}",
                      "response_type": f"0x{s['type']:04x}",
                      "requester": f"{dq['src']}:{dq['sport']}",
                      "responder": f"{dq['dst']}:{dq['dport']}",
                      "txid": s["txid"].hex(), "rtt_ms": round((ts - t_req) / 1000, 3)}
                call["stun_transactions"].append(tr)
                if dq["src"] == f["orig_ip"]:
                    mine.append(tr)
                for t_, v in s["attrs"]:
                    if t_ == 0x0020:
                        ip_, port_ = unxor_mapped(v)
                        call["mapped_addresses"].append({
                            "ip": ip_, "port": port_, "reported_by": f"{d['src']}:{d['sport']}",
                            "reported_to": f"{d['dst']}:{d['dport']}", "ts": iso(ts)})
            assert not pending, "unanswered STUN request"
            rtts = [x["rtt_ms"] for x in mine if x["response_type"] == "0x0101"]
            entry = {"ip": f["resp_ip"], "port": f["resp_port"], "local_port": f["orig_port"],
                     "stun_binding_rtt_ms": min(rtts) if rtts else None,
                     "rtp_packets": sum(1 for _, _, d in pk if d["payload"][:1] == b"\x80"),
                     "ts_start": f["ts_start"], "ts_end": f["ts_end"]}
            call["relays" if lab["call_role"] == "relay" else "peers"].append(entry)
        out_flows.append(f)

    out_flows.sort(key=lambda f: (f["ts_start"], f["orig_port"]))
    for i, f in enumerate(out_flows, 1):
        f["id"] = i
    order = ["id", "l4", "orig_ip", "orig_port", "resp_ip", "resp_port", "pkts_orig", "pkts_resp",
             "bytes_orig", "bytes_resp", "payload_bytes_orig", "payload_bytes_resp", "ts_start",
             "ts_end", "duration_s", "rtt_ms", "retransmitted_segments", "app", "app_uid",
             "pcapdroid_trailer", "service", "hostname", "sni", "note", "dns", "call_role",
             "prologue_hex", "frames_up", "frames_down", "frames", "events", "media_direction"]
    out_flows = [{k: f[k] for k in order if k in f} for f in out_flows]
    for k in ("relays", "peers", "mapped_addresses", "stun_transactions"):
        call[k].sort(key=lambda x: json.dumps(x, sort_keys=True))
    call["stun_transactions"].sort(key=lambda x: x["request_ts"])
    call["relays"].sort(key=lambda x: x["ts_start"])
    legs = call["relays"] + call["peers"]
    start, end = min(x["ts_start"] for x in legs), max(x["ts_end"] for x in legs)
    call["summary"] = {
        "ts_start": start, "ts_end": end,
        "duration_s": round((parse_iso(end) - parse_iso(start)) / 1e6, 6),
        "relays": sorted(x["ip"] for x in call["relays"]),
        "p2p_peers": sorted(x["ip"] for x in call["peers"]),
        "legs": len(legs),
    }

    n_tr = sum(1 for _, _, a in records if a is not None)
    svc = Counter(f["service"] for f in out_flows)
    return {
        "synthetic": True,
        "description": ("SYNTHETIC ~10-minute Android phone session (PCAPdroid trailer format) with "
                        "WhatsApp chat/media/call, Facebook, Instagram and background traffic, "
                        "generated by captures/make_sample.py; not a real capture."),
        "generator": "captures/make_sample.py",
        "seed": SEED,
        "base_time": iso(BASE_US),
        "capture_file": PCAP_PATH.name,
        "capture_sha256": hashlib.sha256(pcap).hexdigest(),
        "capture_size_bytes": len(pcap),
        "packets_total": len(records),
        "packets_with_trailer": n_tr,
        "packets_without_trailer": len(records) - n_tr,
        "flows_total": len(out_flows),
        "flows_by_service": dict(sorted(svc.items())),
        "format": {
            "pcap": "classic pcap, microsecond timestamps, little-endian, snaplen 65535, linktype 1 (Ethernet)",
            "frame": ("14-byte fake Ethernet header (both MACs zero, ethertype 0x0800/0x86DD) + IP packet"
                      " + 0-3 zero bytes so that (14 + ip_len + pad) % 4 == 0 + 32-byte PCAPdroid trailer"),
            "trailer": ("magic 0x01072021 (u32 BE), app uid (i32 BE, -1 unknown), app name (20 bytes NUL-"
                        "padded ASCII), CRC32 (u32 BE) = zlib.crc32 of all preceding frame bytes"),
            "without_trailer": ("some packets are plain frames (fake Ethernet header + IP packet, no "
                                "padding, no trailer): check the magic per packet"),
        },
        "local_addresses": {"ipv4": PHONE4, "ipv6": PHONE6, "dns_server": DNS_SRV,
                            "public_ipv4": PUBLIC_IP},
        "notes": {
            "flow_key": ("bidirectional 5-tuple (l4, ip/port pair); TCP originator = SYN sender, "
                         "UDP/ICMP originator = first sender; ICMP/ICMPv6 ports are 0 (like nDPI)"),
            "bytes": ("bytes_* = IP-layer bytes (IPv4 total length; IPv6 40 + payload length), without "
                      "the fake Ethernet header, padding and trailer; retransmitted segments counted"),
            "payload_bytes": ("TCP/UDP payload bytes (after the TCP header incl. options / the 8-byte "
                              "UDP header); retransmissions counted again; ICMP/ICMPv6: bytes after the 8-byte ICMP header"),
            "rtt_ms": "TCP only: SYN -> SYN-ACK time as seen at the phone",
            "app": ("app name from the PCAPdroid trailer; app_uid null and app '' when the flow's "
                    "packets carry no trailer; uid -1 with empty name = unknown/system"),
            "hostname": ("TLS SNI if present, else the *queried* DNS name (not the CNAME target) of "
                         "the latest DNS answer before the flow start that contained resp_ip, else ''"),
            "service": ("expected label; DNS flows are labelled by the name they ask for: WhatsApp "
                        "names -> whatsapp.other, facebook/instagram names -> meta.other, else other "
                        "(note: 'dns')"),
            "frames": ("WhatsApp chat flows: Noise frames after TCP reassembly (retransmitted bytes "
                       "taken once, at their first transmission). frame_bytes = value of the 3-byte "
                       "length header (body length, header excluded); the ED/WA prologue is not a "
                       "frame. ts_first = packet carrying the first length byte, ts = packet "
                       "carrying the last body byte (frame complete)."),
            "events": ("chat flows: each scheduled event (the generator's schedule) with the frames it "
                       "wrote: kind and direction in flowscope's event vocabulary (message, receipt, "
                       "presence, keepalive, handshake; call signalling names the peer like a message), ts_start = "
                       "first frame's ts_first, ts_end = last frame's ts. A sent message's delivery "
                       "receipt, 0.8-1.6 s later, is an event of its own"),
            "media_direction": "whatsapp.media flows: up = upload from the phone, down = download",
            "call": ("relay STUN RTT = Binding request -> success response with the same "
                     "transaction id; call media is thinned: 20 ms packets only for the first 2 s "
                     "(relay) / 1 s (peer), then one packet a second each way, to keep the file small"),
            "stun_wa_types": ("0x0800 relay bind (sent by client and answered with the same type "
                              "and transaction id), 0x0801 ping / 0x0802 pong, attributes "
                              "0x4000-0x4003: synthetic choices, payloads random"),
            "quic": "QUIC v1 Initial/Handshake/short-header packets with random (undecryptable) payloads",
        },
        "flows": out_flows,
        "call": call,
    }


# The auditor's action log of the session (flowscope analyze --scenario): whole seconds, as a
# person notes them, a few tenths after or before what the schedule above did. The contact
# added at 470 s caused no traffic (no address-book upload happened): it must stay unmatched.
SCENARIO = (
    (0, "app_opened", "", "WhatsApp opened: chat connection set up"),
    (38, "message_sent", "contact-A", "text \"hi\""),
    (48, "message_received", "contact-A", "reply"),
    (96, "message_sent", "contact-A", "text"),
    (140, "media_sent", "contact-A", "photo, 200 kB"),
    (178, "message_received", "contact-B", ""),
    (213, "message_sent", "contact-B", "sent on a poor link (one retransmission)"),
    (266, "message_received", "contact-A", ""),
    (300, "call_started", "contact-A", "voice call, answered"),
    (362, "call_ended", "contact-A", "hung up"),
    (390, "message_sent", "group-1", "seven quick messages"),
    (455, "message_sent", "contact-B", ""),
    (470, "contact_added", "contact-C", "added to the address book; no sync expected while the app is idle"),
    (520, "media_received", "contact-B", "photo (thumbnail in the message)"),
    (574, "message_sent", "contact-A", "bye"),
)


def write_scenario(path: Path) -> None:
    """The scenario CSV (time ISO 8601 with Z, action, peer, note), csv-quoted."""
    import csv
    import io
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["time", "action", "peer", "note"])
    for sec, action, peer, note in SCENARIO:
        w.writerow([iso(BASE_US + us(sec))[:19] + "Z", action, peer, note])
    path.write_text(buf.getvalue(), encoding="utf-8")


def main():
    g = Generator()
    build(g)
    records = finalize(g)
    pcap = write_pcap(PCAP_PATH, records)
    truth = compute_truth(g, pcap, read_pcap(pcap))
    TRUTH_PATH.write_text(json.dumps(truth, indent=1) + "\n")
    write_scenario(SCENARIO_PATH)
    print(f"{PCAP_PATH.name}: {len(pcap)} bytes, {truth['packets_total']} packets, "
          f"{truth['flows_total']} flows, sha256 {truth['capture_sha256']}")


if __name__ == "__main__":
    main()
