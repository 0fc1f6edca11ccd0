#!/usr/bin/env python3
"""Generate the synthetic benchmark capture ``benchmarks/data/bench.pcap``.

The capture is deterministic (fixed seed, byte-identical output for the same
options) and is built with numpy: every header field is a vectorised array,
payload bytes come from one shared random byte pool, and the file is written
in large chunks. Default: 2,000,000 packets / 20,000 bidirectional flows /
~1.6 GB, spanning ~30 minutes.

Format: classic pcap, little-endian, microsecond timestamps, LINKTYPE_ETHERNET,
snaplen 65535, every packet captured in full (incl_len == orig_len).

Traffic mix (fractions of flows):
  * 20 % TCP/443 with a handshake; the first client payload is a valid TLS 1.3
    ClientHello carrying an SNI, the first server payload a ServerHello +
    ChangeCipherSpec + the header of an application-data record.
  * 44 % other TCP (5222, 80 with an HTTP/1.1 GET request, 5228, 993, 8080,
    22, 8443); ~1 % of all flows start mid-stream with a server packet
    (no SYN seen).
  *  5 % UDP/53 DNS: one query and one response in valid DNS wire format.
  * 31 % other UDP (QUIC on 443; 3478 flows that open with a STUN Binding
    request/response, then RTP-sized datagrams; assorted ports).
  * 10 % of all flows are IPv6.
TCP flows have SYN / SYN-ACK / ACK, data with consistent sequence and
acknowledgement numbers, and (mostly) a FIN / FIN / ACK close; some end with
RST and some stay open. IPv4 header, TCP and UDP checksums are all correct
(TCP/UDP sums are computed vectorised over the payload with np.add.reduceat).

Packet sizes on the wire range from 54 B (bare IPv4 TCP ACK; 66 B with the
timestamp option, 74/86 B over IPv6) up to 1514 B; the mean is ~800 B
(797 B for the default file). Payload bytes after the crafted prefixes are
random, so Wireshark's heuristic dissectors flag a few packets on well-known
ports (80/8080, 5222, 3478) as malformed application data; all IPv4, TCP and UDP
checksums are valid.

A JSON sidecar ``<out>.json`` records the options and the ground truth
(packets, flows, bytes, flow counts per kind) for ``run.py``.

Usage:
  .venv/bin/python benchmarks/make_capture.py                  # default file
  .venv/bin/python benchmarks/make_capture.py --packets 20000 --flows 200 --out /tmp/small.pcap
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import struct
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "data", "bench.pcap")

EPOCH = 1714564800  # 2024-05-01T12:00:00Z, first second of the capture
POOL_BYTES = 32 << 20  # shared random payload pool
CHUNK_PACKETS = 1 << 17  # packets per write chunk (~100 MB)
HDR_W = 16 + 14 + 40 + 40  # pcap record hdr + eth + max IP hdr + max L4 hdr

# flow kinds
K_TLS, K_TCP, K_QUIC, K_STUN, K_UDP, K_DNS = range(6)
KIND_NAMES = ["tcp_tls443", "tcp_other", "udp_quic443", "udp_stun3478", "udp_other", "udp_dns53"]
KIND_FRAC = [0.20, 0.44, 0.14, 0.10, 0.07, 0.05]

# TCP flags
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

# ---------------------------------------------------------------- endpoints --
ORGS = ["meta", "google", "cloudflare", "aws", "other"]
ORG_V4 = {  # (prefix, prefix length)
    "meta": [("157.240.0.0", 16), ("31.13.64.0", 18), ("163.70.128.0", 17), ("179.60.192.0", 22)],
    "google": [("142.250.0.0", 15), ("172.217.0.0", 16), ("216.58.192.0", 19)],
    "cloudflare": [("104.16.0.0", 13), ("172.64.0.0", 13)],
    "aws": [("52.0.0.0", 10), ("3.0.0.0", 9)],
    "other": [("151.101.0.0", 16), ("93.184.0.0", 16), ("185.0.0.0", 8), ("23.0.0.0", 12)],
}
ORG_V6 = {  # /32 prefixes, first 4 bytes
    "meta": "2a03:2880::",
    "google": "2a00:1450::",
    "cloudflare": "2606:4700::",
    "aws": "2600:1f18::",
    "other": "2a04:4e42::",
}
SERVERS_PER_ORG = 400
RESOLVERS_V4 = ["192.168.1.1", "8.8.8.8", "1.1.1.1"]
RESOLVERS_V6 = ["2001:4860:4860::8888", "2606:4700:4700::1111", "2001:db8:1::1"]
N_CLIENTS = 200
GW_MAC = bytes.fromhex("001a2b3c4d5e")

SNI = {
    "meta": ["g.whatsapp.net", "mmg.whatsapp.net", "web.whatsapp.com", "static.whatsapp.net",
             "pps.whatsapp.net", "media-{r}.cdn.whatsapp.net", "graph.facebook.com",
             "www.facebook.com", "edge-mqtt.facebook.com", "scontent-{r}.xx.fbcdn.net",
             "i.instagram.com", "graph.instagram.com", "www.instagram.com", "static.xx.fbcdn.net"],
    "google": ["www.google.com", "mtalk.google.com", "play.googleapis.com", "www.youtube.com",
               "i.ytimg.com", "android.googleapis.com", "fonts.gstatic.com"],
    "cloudflare": ["cdnjs.cloudflare.com", "discord.com", "one.one.one.one", "www.cloudflare.com"],
    "aws": ["chat.signal.org", "s3.amazonaws.com", "dynamodb.eu-west-1.amazonaws.com",
            "www.amazon.com"],
    "other": ["www.wikipedia.org", "api.github.com", "example.org", "telegram.org",
              "www.bbc.co.uk", "ocsp.digicert.com"],
}
REGIONS = ["fra3-1", "fra5-2", "ams2-1", "lhr8-1", "cdg4-3", "mad1-1", "waw1-1", "arn2-1"]

TCP_OTHER_PORTS = [  # (port, weight, org weights meta/google/cloudflare/aws/other)
    (5222, 0.30, [1.0, 0, 0, 0, 0]),
    (80, 0.25, [0.1, 0.2, 0.3, 0.2, 0.2]),
    (5228, 0.12, [0, 1.0, 0, 0, 0]),
    (993, 0.08, [0, 0.6, 0, 0.2, 0.2]),
    (8080, 0.10, [0, 0, 0.3, 0.4, 0.3]),
    (22, 0.05, [0, 0, 0, 0.5, 0.5]),
    (8443, 0.10, [0.2, 0.2, 0.2, 0.2, 0.2]),
]
UDP_OTHER_PORTS = [(51820, 0.3), (27015, 0.2), (4500, 0.2), (3074, 0.1), (9993, 0.1), (30000, 0.1)]


def ip4_int(s: str) -> int:
    a, b, c, d = (int(x) for x in s.split("."))
    return (a << 24) | (b << 16) | (c << 8) | d


def ip6_bytes(s: str) -> bytes:
    import ipaddress
    return ipaddress.IPv6Address(s).packed


# ------------------------------------------------------- payload builders --
def _ext(t: int, data: bytes) -> bytes:
    return struct.pack("!HH", t, len(data)) + data


CIPHERS = [0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8, 0xC013,
           0xC014, 0x009C, 0x009D, 0x002F, 0x0035]
SIGALGS = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601]


def tls_client_hello(sni: str, rnd: bytes, alpn_h2: bool) -> bytes:
    """A complete TLS 1.3 ClientHello record (one record, one handshake msg)."""
    host = sni.encode()
    ext = _ext(0x0000, struct.pack("!HBH", len(host) + 3, 0, len(host)) + host)  # server_name
    ext += _ext(0x0017, b"")  # extended_master_secret
    ext += _ext(0xFF01, b"\x00")  # renegotiation_info
    groups = [0x001D, 0x0017, 0x0018]
    ext += _ext(0x000A, struct.pack("!H", 2 * len(groups)) + b"".join(struct.pack("!H", g) for g in groups))
    ext += _ext(0x000B, b"\x01\x00")  # ec_point_formats
    ext += _ext(0x0023, b"")  # session_ticket
    protos = [b"h2", b"http/1.1"] if alpn_h2 else [b"http/1.1"]
    alpn = b"".join(bytes([len(p)]) + p for p in protos)
    ext += _ext(0x0010, struct.pack("!H", len(alpn)) + alpn)
    ext += _ext(0x0005, b"\x01\x00\x00\x00\x00")  # status_request
    ext += _ext(0x000D, struct.pack("!H", 2 * len(SIGALGS)) + b"".join(struct.pack("!H", s) for s in SIGALGS))
    ext += _ext(0x0033, struct.pack("!HHH", 36, 0x001D, 32) + rnd[64:96])  # key_share x25519
    ext += _ext(0x002D, b"\x01\x01")  # psk_key_exchange_modes
    ext += _ext(0x002B, b"\x04\x03\x04\x03\x03")  # supported_versions 1.3, 1.2
    body = (b"\x03\x03" + rnd[0:32] + b"\x20" + rnd[32:64]
            + struct.pack("!H", 2 * len(CIPHERS)) + b"".join(struct.pack("!H", c) for c in CIPHERS)
            + b"\x01\x00" + struct.pack("!H", len(ext)) + ext)
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


def tls_server_hello_prefix(rnd: bytes, sid: bytes, total_len: int) -> bytes:
    """ServerHello record + ChangeCipherSpec + the 5-byte header of an
    application-data record whose body (pool bytes) fills ``total_len``."""
    ext = _ext(0x002B, b"\x03\x04") + _ext(0x0033, struct.pack("!HH", 0x001D, 32) + rnd[32:64])
    body = b"\x03\x03" + rnd[0:32] + b"\x20" + sid + b"\x13\x01\x00" + struct.pack("!H", len(ext)) + ext
    hs = b"\x02" + len(body).to_bytes(3, "big") + body
    out = b"\x16\x03\x03" + struct.pack("!H", len(hs)) + hs + b"\x14\x03\x03\x00\x01\x01"
    rest = total_len - len(out) - 5
    if rest > 0:
        out += b"\x17\x03\x03" + struct.pack("!H", rest)
    return out


def dns_name(name: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"


def dns_query(txid: int, name: str, qtype: int) -> bytes:
    return struct.pack("!HHHHHH", txid, 0x0100, 1, 0, 0, 1) + dns_name(name) + struct.pack("!HH", qtype, 1) \
        + b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"  # EDNS0 OPT, udp size 1232


def dns_response(txid: int, name: str, qtype: int, answers: list[bytes], ttl: int, nx: bool) -> bytes:
    flags = 0x8183 if nx else 0x8180
    an = [] if nx else answers
    out = struct.pack("!HHHHHH", txid, flags, 1, len(an), 0, 1) + dns_name(name) + struct.pack("!HH", qtype, 1)
    for rdata in an:
        out += struct.pack("!HHHIH", 0xC00C, qtype, 1, ttl, len(rdata)) + rdata
    return out + b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"


STUN_MAGIC = 0x2112A442


def _stun(msg_type: int, txid: bytes, attrs: bytes) -> bytes:
    """STUN message (RFC 5389) with a FINGERPRINT attribute appended."""
    import zlib
    hdr = struct.pack("!HHI", msg_type, len(attrs) + 8, STUN_MAGIC) + txid
    crc = (zlib.crc32(hdr + attrs) ^ 0x5354554E) & 0xFFFFFFFF
    return hdr + attrs + struct.pack("!HHI", 0x8028, 4, crc)


def stun_binding_request(txid: bytes) -> bytes:
    sw = b"flowscope-bench"
    pad = b"\x00" * (-len(sw) % 4)
    return _stun(0x0001, txid, struct.pack("!HH", 0x8022, len(sw)) + sw + pad)


def stun_binding_response(txid: bytes, addr: bytes, port: int) -> bytes:
    """Binding success response with XOR-MAPPED-ADDRESS = addr:port."""
    xport = port ^ (STUN_MAGIC >> 16)
    key = struct.pack("!I", STUN_MAGIC) + txid
    xaddr = bytes(a ^ k for a, k in zip(addr, key))
    fam = 1 if len(addr) == 4 else 2
    return _stun(0x0101, txid, struct.pack("!HHBBH", 0x0020, 4 + len(addr), 0, fam, xport) + xaddr)


def http_get(host: str, path: str) -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: flowscope-bench/1.0\r\n"
            "Accept: */*\r\nConnection: keep-alive\r\n\r\n").encode()


# ------------------------------------------------------------ helpers --
def be16(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=">u2").view(np.uint8).reshape(-1, 2)


def be32(a) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a, dtype=np.int64) & 0xFFFFFFFF, dtype=">u4").view(np.uint8).reshape(-1, 4)


def le32(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype="<u4").view(np.uint8).reshape(-1, 4)


def grouped_excl_cumsum(x: np.ndarray, fid: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Exclusive cumulative sum of x within each flow (x in flow-major order)."""
    cs = np.cumsum(x, dtype=np.int64)
    excl = cs - x
    return excl - excl[starts][fid]


def payload_sums(buf: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per range [a, b) of buf: 256 * (sum of bytes at even offsets from a)
    + (sum of bytes at odd offsets from a), i.e. the unfolded one's-complement
    sum of the range read as big-endian 16-bit words (odd tail zero-padded)."""
    ev, od = buf[0::2], buf[1::2]
    # even absolute positions in [a, b) -> ev[ceil(a/2) : ceil(b/2)]
    # odd  absolute positions in [a, b) -> od[floor(a/2) : floor(b/2)]
    # buf carries >= 2 spare bytes past the last range, so hi < len(view).
    def rsum(view, lo, hi):
        idx = np.empty(2 * len(lo), dtype=np.int64)
        idx[0::2], idx[1::2] = lo, hi
        r = np.add.reduceat(view, idx, dtype=np.uint64)[0::2]
        r[lo >= hi] = 0  # reduceat returns view[lo] for an empty range
        return r
    se = rsum(ev, (a + 1) // 2, (b + 1) // 2)
    so = rsum(od, a // 2, b // 2)
    even_start = (a % 2) == 0
    hi = np.where(even_start, se, so)
    lo = np.where(even_start, so, se)
    return hi * np.uint64(256) + lo


def pick(rng, n, choices, weights):
    w = np.asarray(weights, dtype=float)
    return rng.choice(len(choices), size=n, p=w / w.sum())


# ------------------------------------------------------------ generator --
def build(n_packets: int, n_flows: int, seed: int, duration: float):
    rng = np.random.default_rng(seed)
    F = n_flows

    # ---- endpoints
    srv_org, srv_v4, srv_v6 = [], [], []
    for oi, org in enumerate(ORGS):
        pfx = ORG_V4[org]
        which = rng.integers(0, len(pfx), SERVERS_PER_ORG)
        for k in range(SERVERS_PER_ORG):
            base, plen = pfx[which[k]]
            host = int(rng.integers(1, (1 << (32 - plen)) - 1))
            srv_v4.append(ip4_int(base) | host)
            srv_org.append(oi)
        p6 = ip6_bytes(ORG_V6[org])[:4]
        for k in range(SERVERS_PER_ORG):
            srv_v6.append(p6 + rng.bytes(12))
    n_org_srv = len(srv_v4)
    for r4, r6 in zip(RESOLVERS_V4, RESOLVERS_V6):
        srv_v4.append(ip4_int(r4))
        srv_v6.append(ip6_bytes(r6))
        srv_org.append(-1)
    srv_v4 = np.array(srv_v4, dtype=np.int64)
    srv_v6 = np.frombuffer(b"".join(srv_v6), dtype=np.uint8).reshape(-1, 16)
    n_srv = len(srv_v4)

    cli_v4 = np.array([ip4_int("192.168.1.0") + 10 + i for i in range(N_CLIENTS)], dtype=np.int64)
    cli_v6 = np.frombuffer(b"".join(ip6_bytes("2001:db8:1::") [:8] + rng.bytes(8) for _ in range(N_CLIENTS)),
                           dtype=np.uint8).reshape(-1, 16)
    cli_mac = np.frombuffer(b"".join(b"\x02\x00" + rng.bytes(4) for _ in range(N_CLIENTS)),
                            dtype=np.uint8).reshape(-1, 6)

    # ---- flow kinds (exact fractions, shuffled)
    counts = [int(round(f * F)) for f in KIND_FRAC]
    counts[K_TCP] += F - sum(counts)
    kind = rng.permutation(np.repeat(np.arange(6), counts)).astype(np.int8)
    v6 = np.zeros(F, bool)
    v6[rng.permutation(F)[: int(round(0.10 * F))]] = True
    is_tcp = (kind == K_TLS) | (kind == K_TCP)
    proto = np.where(is_tcp, 6, 17).astype(np.int64)

    # mid-stream (1 % of flows) drawn from non-TLS TCP flows
    mid = np.zeros(F, bool)
    cand = np.flatnonzero(kind == K_TCP)
    mid[rng.permutation(cand)[: min(len(cand), int(round(0.01 * F)))]] = True
    # close type: 0 FIN, 1 RST, 2 open
    close = pick(rng, F, [0, 1, 2], [0.90, 0.05, 0.05])
    close[mid] = np.where(rng.random(int(mid.sum())) < 0.5, 0, 2)
    close[~is_tcp] = -1
    ts_opt = is_tcp & (rng.random(F) < 0.6)  # TCP timestamp option in use

    # ---- org / server / ports
    org = np.full(F, -1, dtype=np.int64)
    sport = np.zeros(F, dtype=np.int64)
    m = kind == K_TLS
    org[m] = pick(rng, m.sum(), ORGS, [0.45, 0.2, 0.15, 0.1, 0.1]); sport[m] = 443
    m = kind == K_QUIC
    org[m] = pick(rng, m.sum(), ORGS, [0.4, 0.4, 0.2, 0, 0]); sport[m] = 443
    m = kind == K_STUN
    org[m] = pick(rng, m.sum(), ORGS, [0.7, 0.3, 0, 0, 0]); sport[m] = 3478
    m = np.flatnonzero(kind == K_TCP)
    pi = pick(rng, len(m), TCP_OTHER_PORTS, [p[1] for p in TCP_OTHER_PORTS])
    sport[m] = np.array([p[0] for p in TCP_OTHER_PORTS])[pi]
    for j, (_, _, ow) in enumerate(TCP_OTHER_PORTS):
        mm = m[pi == j]
        org[mm] = pick(rng, len(mm), ORGS, ow)
    m = np.flatnonzero(kind == K_UDP)
    pi = pick(rng, len(m), UDP_OTHER_PORTS, [p[1] for p in UDP_OTHER_PORTS])
    sport[m] = np.array([p[0] for p in UDP_OTHER_PORTS])[pi]
    org[m] = 4
    m = kind == K_DNS
    sport[m] = 53
    sidx = np.where(org >= 0, org * SERVERS_PER_ORG + rng.integers(0, SERVERS_PER_ORG, F),
                    n_org_srv + rng.integers(0, len(RESOLVERS_V4), F))
    cidx = rng.integers(0, N_CLIENTS, F)
    cport = rng.integers(32768, 61000, F)
    # make the 5-tuples unique
    for _ in range(100):
        key = ((((v6.astype(np.int64) * 2 + is_tcp) * N_CLIENTS + cidx) * n_srv + sidx) * 65536 + sport) * 65536 + cport
        _, first = np.unique(key, return_index=True)
        dup = np.ones(F, bool)
        dup[first] = False
        if not dup.any():
            break
        cport[dup] = rng.integers(32768, 61000, int(dup.sum()))

    # ---- packets per flow
    base = np.select(
        [kind == K_DNS, ~is_tcp, mid & (close == 0), mid, close == 0, close == 1],
        [2, 2, 5, 2, 8, 6], default=5).astype(np.int64)
    extra_budget = n_packets - int(base.sum())
    if extra_budget < 0:
        sys.exit(f"--packets {n_packets} too small for --flows {F} (need >= {int(base.sum())})")
    w = rng.lognormal(0.0, 1.6, F)
    w[kind == K_DNS] = 0.0
    npk = base + rng.multinomial(extra_budget, w / w.sum())
    N = int(npk.sum())
    assert N == n_packets

    # ---- per-flow behaviour
    bulk = rng.random(F) < np.where(npk > 300, 0.95, 0.7)  # TCP: download-heavy vs interactive
    video = rng.random(F) < 0.6  # STUN/RTP: video vs audio
    p_client = np.select([is_tcp & bulk, is_tcp, kind == K_QUIC], [0.34, 0.5, 0.35], default=0.5)
    rtt = np.clip(rng.lognormal(np.log(0.035), 0.6, F), 0.002, 0.4)
    rtt[kind == K_DNS] = np.clip(rng.lognormal(np.log(0.015), 0.7, int((kind == K_DNS).sum())), 0.001, 0.3)
    dur = rng.lognormal(np.log(15.0), 1.3, F) * (npk / 20.0) ** 0.35
    dur = np.minimum(np.minimum(dur, npk * 20.0), duration * 0.85)
    mean_gap = dur / np.maximum(npk - 1, 1)
    start = rng.random(F) * (duration - dur)
    isn = rng.integers(0, 1 << 32, (F, 2), dtype=np.int64)
    ipid = rng.integers(0, 1 << 16, (F, 2), dtype=np.int64)
    tsoff = rng.integers(0, 1 << 31, (F, 2), dtype=np.int64)
    ttl_s = rng.choice(np.array([52, 54, 55, 57, 58, 116, 118, 242]), F)
    win = np.stack([rng.integers(500, 4000, F), rng.integers(250, 65535, F)], 1)
    flowlabel = rng.integers(0, 1 << 20, (F, 2), dtype=np.int64)

    iph = np.where(v6, 40, 20)
    tcph_data = np.where(ts_opt, 32, 20)
    tcph_syn = np.where(ts_opt, 40, 28)
    mss = 1500 - iph - tcph_data  # max payload in a 1514-byte frame

    # ---- per-packet arrays, flow-major order
    starts = np.concatenate([[0], np.cumsum(npk)[:-1]])
    fid = np.repeat(np.arange(F), npk)
    pos = np.arange(N) - starts[fid]
    rpos = npk[fid] - 1 - pos
    k = kind[fid]
    tcp_p = is_tcp[fid]
    mid_p = mid[fid]
    normal = tcp_p & ~mid_p  # TCP with handshake

    dirn = (rng.random(N) >= p_client[fid]).astype(np.int8)  # 0 = client->server
    u = rng.random(N)
    r2 = rng.random(N)
    mssp = mss[fid]
    # default data payload sizes
    plen = np.zeros(N, dtype=np.int64)
    # TCP bulk
    m = tcp_p & bulk[fid]
    srv = m & (dirn == 1)
    plen[srv] = np.where(u[srv] < 0.90, mssp[srv], (100 + r2[srv] * (mssp[srv] - 100)).astype(np.int64))
    cli = m & (dirn == 0)
    plen[cli] = np.where(u[cli] < 0.90, 0, (30 + r2[cli] * 470).astype(np.int64))
    # TCP interactive
    m = tcp_p & ~bulk[fid]
    ln = np.minimum(rng.lognormal(np.log(300), 0.9, N).astype(np.int64) + 1, mssp)
    plen[m] = np.where(u[m] < 0.35, 0, ln[m])
    # QUIC
    m = k == K_QUIC
    srv = m & (dirn == 1)
    plen[srv] = np.where(u[srv] < 0.75, 1252, (40 + r2[srv] * 1212).astype(np.int64))
    cli = m & (dirn == 0)
    plen[cli] = np.where(u[cli] < 0.70, (30 + r2[cli] * 30).astype(np.int64), (40 + r2[cli] * 1212).astype(np.int64))
    # STUN / RTP-like
    m = k == K_STUN
    vid = video[fid]
    plen[m] = np.where(vid[m] & (u[m] < 0.7), 800 + (r2[m] * 400).astype(np.int64), 60 + (r2[m] * 140).astype(np.int64))
    # other UDP
    m = k == K_UDP
    plen[m] = 20 + (r2[m] * 1380).astype(np.int64)

    flags = np.zeros(N, dtype=np.int64)
    flags[tcp_p] = ACK
    spec = np.full(N, -1, dtype=np.int64)  # index into specials (payload prefix bytes)

    # UDP: first packet client, second server
    udp_p = ~tcp_p
    dirn[udp_p & (pos == 0)] = 0
    dirn[udp_p & (pos == 1)] = 1
    first_quic = (k == K_QUIC) & (pos == 0)
    plen[first_quic] = 1252  # QUIC Initial padded
    # TCP handshake
    for p_, d_, fl in ((0, 0, SYN), (1, 1, SYN | ACK), (2, 0, ACK)):
        mm = normal & (pos == p_)
        dirn[mm] = d_
        flags[mm] = fl
        plen[mm] = 0
    mm = normal & (pos == 3)
    dirn[mm] = 0
    plen[mm] = np.maximum(plen[mm], 60 + (r2[mm] * 600).astype(np.int64))
    mm = normal & (pos == 4)
    dirn[mm] = 1
    plen[mm] = np.maximum(plen[mm], 200)
    mm = mid_p & (pos == 0)
    dirn[mm] = 1
    plen[mm] = np.maximum(plen[mm], 100)
    # TCP close
    c = close[fid]
    for rp, d_, fl in ((2, 0, FIN | ACK), (1, 1, FIN | ACK), (0, 0, ACK)):
        mm = tcp_p & (c == 0) & (rpos == rp)
        dirn[mm] = d_
        flags[mm] = fl
        plen[mm] = 0
    mm = tcp_p & (c == 1) & (rpos == 0)
    flags[mm] = RST | ACK
    plen[mm] = 0
    dataf = tcp_p & (plen > 0) & ((flags & (SYN | FIN | RST)) == 0)
    flags[dataf & (plen < mssp)] |= PSH

    # ---- special payloads (TLS hellos, DNS, HTTP requests)
    specials: list[bytes] = []
    tls_f = np.flatnonzero(kind == K_TLS)
    ch_rows = starts[tls_f] + 3
    sh_rows = starts[tls_f] + 4
    org_l = org.tolist()
    sni_of_flow = {}
    for f, rc, rs in zip(tls_f.tolist(), ch_rows.tolist(), sh_rows.tolist()):
        names = SNI[ORGS[org_l[f]]]
        name = names[int(rng.integers(0, len(names)))].replace("{r}", REGIONS[int(rng.integers(0, len(REGIONS)))])
        sni_of_flow[f] = name
        ch = tls_client_hello(name, rng.bytes(96), bool(rng.random() < 0.8))
        spec[rc] = len(specials); specials.append(ch); plen[rc] = len(ch)
        flags[rc] = PSH | ACK
        sh = tls_server_hello_prefix(rng.bytes(64), rng.bytes(32), int(mssp[rs]))
        spec[rs] = len(specials); specials.append(sh); plen[rs] = int(mssp[rs])
        flags[rs] = ACK
    http_f = np.flatnonzero((kind == K_TCP) & (sport == 80) & ~mid)
    for f in http_f.tolist():
        names = SNI[ORGS[org_l[f]]]
        host = names[int(rng.integers(0, len(names)))].replace("{r}", REGIONS[0])
        req = http_get(host, "/" + rng.bytes(6).hex())
        r = starts[f] + 3
        spec[r] = len(specials); specials.append(req); plen[r] = len(req); flags[r] = PSH | ACK
    dns_f = np.flatnonzero(kind == K_DNS)
    all_names = [(o, n) for o in ORGS for n in SNI[o]]
    for f in dns_f.tolist():
        o, name = all_names[int(rng.integers(0, len(all_names)))]
        name = name.replace("{r}", REGIONS[int(rng.integers(0, len(REGIONS)))])
        qtype = 28 if rng.random() < 0.3 else 1
        txid = int(rng.integers(0, 65536))
        oi = ORGS.index(o)
        na = int(rng.integers(1, 4))
        hosts = rng.integers(0, SERVERS_PER_ORG, na) + oi * SERVERS_PER_ORG
        ans = [srv_v6[h].tobytes() if qtype == 28 else int(srv_v4[h]).to_bytes(4, "big") for h in hosts]
        q = dns_query(txid, name, qtype)
        resp = dns_response(txid, name, qtype, ans, int(rng.integers(30, 3600)), bool(rng.random() < 0.05))
        r = starts[f]
        spec[r] = len(specials); specials.append(q); plen[r] = len(q)
        spec[r + 1] = len(specials); specials.append(resp); plen[r + 1] = len(resp)

    stun_f = np.flatnonzero(kind == K_STUN)
    nat_v4 = ip4_int("198.51.100.7").to_bytes(4, "big")  # public address the client is seen as
    for f in stun_f.tolist():
        txid = rng.bytes(12)
        mapped = cli_v6[cidx[f]].tobytes() if v6[f] else nat_v4
        req = stun_binding_request(txid)
        resp = stun_binding_response(txid, mapped, int(cport[f]))
        r = starts[f]
        spec[r] = len(specials); specials.append(req); plen[r] = len(req)
        spec[r + 1] = len(specials); specials.append(resp); plen[r + 1] = len(resp)

    # ---- L4 header length per packet
    syn_p = (flags & SYN) != 0
    l4len = np.where(tcp_p, np.where(syn_p, tcph_syn[fid], tcph_data[fid]), 8)

    # ---- sequence / acknowledgement numbers
    cons = plen + ((flags & (SYN | FIN)) != 0)
    c0 = np.where(dirn == 0, cons, 0)
    c1 = np.where(dirn == 1, cons, 0)
    e0 = grouped_excl_cumsum(c0, fid, starts)
    e1 = grouped_excl_cumsum(c1, fid, starts)
    seq = np.where(dirn == 0, isn[fid, 0] + e0, isn[fid, 1] + e1) & 0xFFFFFFFF
    ack = np.where(dirn == 0, isn[fid, 1] + e1, isn[fid, 0] + e0) & 0xFFFFFFFF
    ack[(flags & ACK) == 0] = 0

    # ---- timestamps (integer microseconds, strictly increasing inside a flow)
    gap = np.minimum(rng.exponential(1.0, N) * mean_gap[fid], 60.0)
    rt = rtt[fid]
    gap = np.where(pos == 1, rt, gap)
    gap = np.where(normal & (pos == 2), 0.00005 + 0.0002 * u, gap)
    gap = np.where(normal & (pos == 3), 0.00002 + 0.0001 * r2, gap)
    gap = np.where(normal & (pos == 4), rt, gap)
    gap_us = np.maximum(np.rint(gap * 1e6).astype(np.int64), 1)
    gap_us[pos == 0] = 0
    t_us = np.rint(start[fid] * 1e6).astype(np.int64) + grouped_excl_cumsum(gap_us, fid, starts) + gap_us
    t_us += EPOCH * 1_000_000

    pk = dict(fid=fid, pos=pos, dirn=dirn, flags=flags, plen=plen, spec=spec, l4len=l4len,
              seq=seq, ack=ack, t_us=t_us)
    fl = dict(v6=v6, proto=proto, cidx=cidx, sidx=sidx, cport=cport, sport=sport, ts_opt=ts_opt,
              ipid=ipid, tsoff=tsoff, ttl_s=ttl_s, win=win, flowlabel=flowlabel, mss=mss, rtt=rtt)
    ep = dict(cli_v4=cli_v4, cli_v6=cli_v6, cli_mac=cli_mac, srv_v4=srv_v4, srv_v6=srv_v6)
    # concurrently active flows (first..last packet), sampled once a second
    first_t = t_us[starts]
    last_t = t_us[starts + npk - 1]
    grid = np.arange(int(first_t.min()), int(last_t.max()), 1_000_000)
    active = np.searchsorted(np.sort(first_t), grid, "right") - np.searchsorted(np.sort(last_t), grid, "left")
    truth = {
        "flows": F,
        "flows_by_kind": {KIND_NAMES[i]: int((kind == i).sum()) for i in range(6)},
        "flows_ipv6": int(v6.sum()),
        "flows_tcp": int(is_tcp.sum()),
        "flows_udp": int((~is_tcp).sum()),
        "flows_midstream": int(mid.sum()),
        "flows_tls_clienthello": len(tls_f),
        "flows_dns": len(dns_f),
        "flows_http_get": len(http_f),
        "flows_stun_binding": len(stun_f),
        "concurrent_flows_mean": round(float(active.mean()), 1),
        "concurrent_flows_max": int(active.max()),
        "largest_flow_packets": int(npk.max()),
        "median_flow_packets": float(np.median(npk)),
    }
    return pk, fl, ep, specials, truth


def write_pcap(path: str, pk, fl, ep, specials, seed: int) -> tuple[int, int]:
    rng = np.random.default_rng(seed + 1)
    pool = np.frombuffer(rng.bytes(POOL_BYTES), dtype=np.uint8)
    order = np.argsort(pk["t_us"], kind="stable")
    N = len(order)
    spec_arr = [np.frombuffer(s, dtype=np.uint8) for s in specials]
    ar = np.arange(HDR_W)
    wire_bytes = 0
    tmp = path + ".tmp"
    with open(tmp, "wb", buffering=0) as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for c0 in range(0, N, CHUNK_PACKETS):
            idx = order[c0:c0 + CHUNK_PACKETS]
            n = len(idx)
            f = pk["fid"][idx]
            d = pk["dirn"][idx].astype(np.int64)
            v6 = fl["v6"][f]
            tcp = fl["proto"][f] == 6
            plen = pk["plen"][idx]
            l4h = pk["l4len"][idx]
            iph = np.where(v6, 40, 20)
            frame = 14 + iph + l4h + plen
            hl = 30 + iph + l4h
            rec = 16 + frame
            offs = np.zeros(n, dtype=np.int64)
            np.cumsum(rec[:-1], out=offs[1:])
            total = int(offs[-1] + rec[-1])
            wire_bytes += int(frame.sum())

            # payload: shared pool, rotated per chunk
            buf = np.empty(total + 2, dtype=np.uint8)
            buf[total:] = 0  # slack for payload_sums
            p = int(rng.integers(0, POOL_BYTES))
            o = 0
            while o < total:
                take = min(total - o, POOL_BYTES - p)
                buf[o:o + take] = pool[p:p + take]
                o += take
                p = 0

            # special payload prefixes
            sp_ = pk["spec"][idx]
            for r in np.flatnonzero(sp_ >= 0).tolist():
                a = spec_arr[sp_[r]]
                s0 = int(offs[r] + hl[r])
                buf[s0:s0 + len(a)] = a
            # one's-complement partial sums of every payload (for TCP/UDP checksums)
            psum = payload_sums(buf, offs + hl, offs + rec)
            hdr = np.zeros((n, HDR_W), dtype=np.uint8)
            t = pk["t_us"][idx]
            hdr[:, 0:4] = le32(t // 1_000_000)
            hdr[:, 4:8] = le32(t % 1_000_000)
            hdr[:, 8:12] = le32(frame)
            hdr[:, 12:16] = le32(frame)
            # Ethernet
            cm = ep["cli_mac"][fl["cidx"][f]]
            gw = np.frombuffer(GW_MAC, dtype=np.uint8)
            up = (d == 0)[:, None]
            hdr[:, 16:22] = np.where(up, gw, cm)
            hdr[:, 22:28] = np.where(up, cm, gw)
            hdr[:, 28:30] = be16(np.where(v6, 0x86DD, 0x0800))
            ttl = np.where(d == 0, 64, fl["ttl_s"][f])
            l4_len = l4h + plen
            ipproto = fl["proto"][f]
            # IPv4
            m4 = ~v6
            if m4.any():
                f4, d4 = f[m4], d[m4]
                ip = np.zeros((int(m4.sum()), 20), dtype=np.uint8)
                ip[:, 0] = 0x45
                ip[:, 2:4] = be16(20 + l4_len[m4])
                ip[:, 4:6] = be16((fl["ipid"][f4, d4] + pk["pos"][idx][m4]) & 0xFFFF)
                ip[:, 6:8] = be16(np.full(len(f4), 0x4000))
                ip[:, 8] = ttl[m4]
                ip[:, 9] = ipproto[m4]
                cip = ep["cli_v4"][fl["cidx"][f4]]
                sip = ep["srv_v4"][fl["sidx"][f4]]
                ip[:, 12:16] = be32(np.where(d4 == 0, cip, sip))
                ip[:, 16:20] = be32(np.where(d4 == 0, sip, cip))
                s = ip.view(">u2").astype(np.uint32).sum(axis=1)
                s = (s & 0xFFFF) + (s >> 16)
                s = (s & 0xFFFF) + (s >> 16)
                ip[:, 10:12] = be16(~s & 0xFFFF)
                hdr[m4, 30:50] = ip
            m6 = v6
            if m6.any():
                f6, d6 = f[m6], d[m6]
                ip = np.zeros((int(m6.sum()), 40), dtype=np.uint8)
                ip[:, 0:4] = be32(0x60000000 | fl["flowlabel"][f6, d6])
                ip[:, 4:6] = be16(l4_len[m6])
                ip[:, 6] = ipproto[m6]
                ip[:, 7] = ttl[m6]
                cip = ep["cli_v6"][fl["cidx"][f6]]
                sip = ep["srv_v6"][fl["sidx"][f6]]
                u6 = (d6 == 0)[:, None]
                ip[:, 8:24] = np.where(u6, cip, sip)
                ip[:, 24:40] = np.where(u6, sip, cip)
                hdr[m6, 30:70] = ip
            # L4
            l4 = np.zeros((n, 40), dtype=np.uint8)
            cp, sp = fl["cport"][f], fl["sport"][f]
            l4[:, 0:2] = be16(np.where(d == 0, cp, sp))
            l4[:, 2:4] = be16(np.where(d == 0, sp, cp))
            mt = tcp
            if mt.any():
                ft, dt = f[mt], d[mt]
                flg = pk["flags"][idx][mt]
                thl = l4h[mt]
                tl = np.zeros((int(mt.sum()), 40), dtype=np.uint8)
                tl[:, 4:8] = be32(pk["seq"][idx][mt])
                tl[:, 8:12] = be32(pk["ack"][idx][mt])
                tl[:, 12] = (thl // 4) << 4
                tl[:, 13] = flg
                syn = (flg & SYN) != 0
                tl[:, 14:16] = be16(np.where(syn, np.where(dt == 0, 64240, 65535), fl["win"][ft, dt]))
                tms = t[mt] // 1000
                tsval = (fl["tsoff"][ft, dt] + tms) & 0xFFFFFFFF
                tsecr = np.where((flg & ACK) != 0, (fl["tsoff"][ft, 1 - dt] + tms - 1) & 0xFFFFFFFF, 0)
                tso = fl["ts_opt"][ft]
                mssb = be16(fl["mss"][ft])
                # data segments with timestamps: NOP NOP TS
                mm = tso & ~syn
                if mm.any():
                    tl[mm, 20:22] = 1
                    tl[mm, 22] = 8
                    tl[mm, 23] = 10
                    tl[mm, 24:28] = be32(tsval[mm])
                    tl[mm, 28:32] = be32(tsecr[mm])
                # SYN with timestamps: MSS SACK_PERM TS NOP WS
                mm = tso & syn
                if mm.any():
                    tl[mm, 20] = 2; tl[mm, 21] = 4; tl[mm, 22:24] = mssb[mm]
                    tl[mm, 24] = 4; tl[mm, 25] = 2
                    tl[mm, 26] = 8; tl[mm, 27] = 10
                    tl[mm, 28:32] = be32(tsval[mm]); tl[mm, 32:36] = be32(tsecr[mm])
                    tl[mm, 36] = 1; tl[mm, 37] = 3; tl[mm, 38] = 3; tl[mm, 39] = 7
                # SYN without timestamps: MSS NOP NOP SACK_PERM
                mm = ~tso & syn
                if mm.any():
                    tl[mm, 20] = 2; tl[mm, 21] = 4; tl[mm, 22:24] = mssb[mm]
                    tl[mm, 24] = 1; tl[mm, 25] = 1; tl[mm, 26] = 4; tl[mm, 27] = 2
                tl[:, 0:4] = l4[mt, 0:4]
                l4[mt] = tl
            mu = ~tcp
            if mu.any():
                l4[mu, 4:6] = be16(l4_len[mu])
            # TCP/UDP checksum: pseudo header + L4 header + payload
            words = l4.view(">u2").astype(np.uint64)
            words[np.arange(20)[None, :] >= (l4h // 2)[:, None]] = 0
            cs = words.sum(axis=1) + psum + l4_len.astype(np.uint64) + ipproto.astype(np.uint64)
            if m4.any():
                i4 = hdr[m4, 42:50].view(">u2").astype(np.uint64).sum(axis=1)  # src + dst
                cs[m4] += i4
            if m6.any():
                i6 = hdr[m6, 38:70].view(">u2").astype(np.uint64).sum(axis=1)
                cs[m6] += i6
            while True:
                hi = cs >> np.uint64(16)
                if not hi.any():
                    break
                cs = (cs & np.uint64(0xFFFF)) + hi
            cs = (~cs) & np.uint64(0xFFFF)
            cs[(~tcp) & (cs == 0)] = 0xFFFF  # UDP: 0 means "no checksum"
            csb = be16(cs)
            l4[tcp, 16:18] = csb[tcp]
            l4[~tcp, 6:8] = csb[~tcp]
            hdr[m4, 50:90] = l4[m4]
            hdr[m6, 70:110] = l4[m6]

            # scatter headers into the chunk buffer, one header length at a time
            for h in np.unique(hl).tolist():
                rows = np.flatnonzero(hl == h)
                buf[offs[rows, None] + ar[:h]] = hdr[rows, :h]
            fh.write(memoryview(buf[:total]))
    os.replace(tmp, path)
    return N, wire_bytes


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packets", type=int, default=2_000_000, help="packets to generate (default 2,000,000)")
    ap.add_argument("--flows", type=int, default=20_000, help="bidirectional flows (default 20,000)")
    ap.add_argument("--out", default=DEFAULT_OUT, help="output pcap (default benchmarks/data/bench.pcap)")
    ap.add_argument("--seed", type=int, default=20240501, help="RNG seed (default 20240501)")
    ap.add_argument("--duration", type=float, default=1800.0, help="capture span in seconds (default 1800)")
    ap.add_argument("--sha256", action="store_true", help="also print the SHA-256 of the output")
    a = ap.parse_args(argv)
    if a.flows < 1 or a.packets < 1:
        ap.error("--packets and --flows must be positive")
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    t0 = time.perf_counter()
    pk, fl, ep, specials, truth = build(a.packets, a.flows, a.seed, a.duration)
    t1 = time.perf_counter()
    n, wire = write_pcap(a.out, pk, fl, ep, specials, a.seed)
    t2 = time.perf_counter()
    size = os.path.getsize(a.out)
    ts = pk["t_us"]
    meta = {
        "generator": "benchmarks/make_capture.py",
        "options": {"packets": a.packets, "flows": a.flows, "seed": a.seed, "duration": a.duration},
        "packets": n,
        "file_bytes": size,
        "wire_bytes": wire,
        "mean_frame_bytes": round(wire / n, 1),
        "first_ts": int(ts.min()) / 1e6,
        "last_ts": int(ts.max()) / 1e6,
        **truth,
    }
    if a.sha256:
        h = hashlib.sha256()
        with open(a.out, "rb") as fh:
            for blk in iter(lambda: fh.read(1 << 24), b""):
                h.update(blk)
        meta["sha256"] = h.hexdigest()
    with open(a.out + ".json", "w") as fh:
        json.dump(meta, fh, indent=2)
        fh.write("\n")
    print(f"wrote {a.out}")
    print(f"  packets      {n:,}")
    print(f"  flows        {truth['flows']:,}  (ipv6 {truth['flows_ipv6']:,}, tcp {truth['flows_tcp']:,}, "
          f"udp {truth['flows_udp']:,}, mid-stream {truth['flows_midstream']:,})")
    print("  by kind      " + ", ".join(f"{k} {v:,}" for k, v in truth["flows_by_kind"].items()))
    print(f"  bytes        {size:,} in file, {wire:,} on the wire (mean frame {wire / n:.1f} B)")
    print(f"  span         {(ts.max() - ts.min()) / 1e6:.1f} s, concurrently active flows: mean "
          f"{truth['concurrent_flows_mean']:,.0f}, max {truth['concurrent_flows_max']:,}")
    if a.sha256:
        print(f"  sha256       {meta['sha256']}")
    print(f"  time         {t2 - t0:.1f} s (build {t1 - t0:.1f} s, write {t2 - t1:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
