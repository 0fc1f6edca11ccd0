"""Test factories: build packets and write pcap / pcapng files, in pure Python.

Shipped in the package (like ``mitmproxy.test``) so that tests, benchmarks and users'
own checks can make exact captures without scapy. Everything returns ``bytes``.

Packets are built inside out::

    from flowscope import testing as t
    pkt = t.ipv4("10.0.0.1", "10.0.0.2", 6, t.tcp(40000, 443, flags="S"))
    t.write_pcap("x.pcap", [(1_700_000_000_000_000_000, t.ethernet(pkt))])

* IP builders compute the IPv4 header checksum and, for an unfragmented TCP, UDP or
  ICMPv6 payload whose checksum field is zero, the transport checksum (pseudo header).
* Timestamps (``ts``) are an ``int`` of nanoseconds since the epoch (exact), or a
  ``float`` of seconds (subject to float rounding). Writers convert them to the file's
  resolution by flooring.

pcapng files are described per section::

    sec = t.Section(big_endian=True)
    eth = sec.interface(linktype=1, tsresol=9)             # 10^-9 s ticks
    raw = sec.interface(linktype=101, tsresol=0x80 | 20)   # 2^-20 s ticks
    sec.epb(eth, ts, frame, comment="u-10123")
    sec.isb(eth, ts, ifdrop=3)
    t.write_pcapng("x.pcapng", [sec, t.Section()])

Blocks are written in the order the methods are called (an interface's IDB where
``interface()`` was called).
"""
from __future__ import annotations

import ipaddress
import numbers
import shutil
import struct
import subprocess
import zlib
from decimal import Decimal
from pathlib import Path
from typing import Iterable, Sequence

__all__ = [
    "PCAPDROID_MAGIC", "PCAPDROID_PEN", "Section", "ethernet", "icmp", "inet_checksum", "ipv4", "ipv6", "loop",
    "null_loopback", "pcap_bytes", "pcapdroid_frame", "pcapng_bytes", "ppp", "sll", "sll2",
    "tcp", "tls_client_hello", "tshark_times", "udp", "write_pcap", "write_pcapng",
]

PCAPDROID_MAGIC = 0x01072021
PCAPDROID_PEN = 62652
_TCP_FLAGS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10, "U": 0x20, "E": 0x40, "C": 0x80}
_NS = 1_000_000_000


# --- checksums ------------------------------------------------------------------------

def inet_checksum(data: bytes) -> int:
    """RFC 1071 ones' complement sum of 16-bit words."""
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _with_l4_checksum(proto: int, pseudo: bytes, seg: bytes) -> bytes:
    """Fill the TCP/UDP/ICMPv6 checksum of `seg` if its checksum field is zero."""
    at = {6: 16, 17: 6, 58: 2}.get(proto)
    if at is None or len(seg) < at + 2 or seg[at:at + 2] != b"\0\0":
        return seg
    c = inet_checksum(pseudo + seg)
    if proto == 17 and c == 0:
        c = 0xFFFF
    return seg[:at] + struct.pack("!H", c) + seg[at + 2:]


# --- network and transport layers -----------------------------------------------------

def ipv4(src: str, dst: str, proto: int, payload: bytes, *, ttl: int = 64, ident: int = 0,
         options: bytes = b"", frag_offset: int = 0, more_fragments: bool = False,
         dont_fragment: bool = False) -> bytes:
    """An IPv4 packet. `options` is padded to 4 bytes; `frag_offset` is in bytes (multiple of 8)."""
    if frag_offset % 8:
        raise ValueError("frag_offset must be a multiple of 8 bytes")
    options = options + b"\0" * (-len(options) % 4)
    ihl = (20 + len(options)) // 4
    if ihl > 15:
        raise ValueError("IPv4 options longer than 40 bytes")
    s, d = ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed
    if frag_offset == 0 and not more_fragments:
        payload = _with_l4_checksum(proto, s + d + struct.pack("!BBH", 0, proto, len(payload)), payload)
    flags = (0x4000 if dont_fragment else 0) | (0x2000 if more_fragments else 0) | (frag_offset // 8)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, 4 * ihl + len(payload), ident & 0xFFFF,
                      flags, ttl, proto, 0, s, d) + options
    hdr = hdr[:10] + struct.pack("!H", inet_checksum(hdr)) + hdr[12:]
    return hdr + payload


def ipv6(src: str, dst: str, next_header: int, payload: bytes, *,
         ext_headers: Sequence[tuple[int, bytes]] = (), flow_label: int = 0, hop_limit: int = 64) -> bytes:
    """An IPv6 packet. `next_header` is the transport's protocol number.

    `ext_headers` is a list of (header type, body) in wire order, e.g. (0, b"") for an
    empty hop-by-hop header; each body (after the 2 bytes next-header/length) is padded
    with zeros to a multiple of 8 bytes (AH, 51: of 4 bytes), the fragment header (44)
    is 8 bytes in total (give its 6-byte body).
    """
    s, d = ipaddress.IPv6Address(src).packed, ipaddress.IPv6Address(dst).packed
    fragmented = any(t == 44 for t, _ in ext_headers)
    if not fragmented:
        if next_header == 58 and len(payload) >= 4:  # ICMPv6: the checksum covers a pseudo header
            payload = payload[:2] + b"\0\0" + payload[4:]
        payload = _with_l4_checksum(next_header, s + d + struct.pack("!I3xB", len(payload), next_header), payload)
    exts = b""
    types = [t for t, _ in ext_headers] + [next_header]
    for k, (t, body) in enumerate(ext_headers):
        nh = types[k + 1]
        if t == 44:
            body = body[:6].ljust(6, b"\0")
            exts += struct.pack("!BB", nh, 0) + body
        elif t == 51:
            body += b"\0" * (-(len(body) + 2) % 4)
            exts += struct.pack("!BB", nh, (len(body) + 2) // 4 - 2) + body
        else:
            body += b"\0" * (-(len(body) + 2) % 8)
            exts += struct.pack("!BB", nh, (len(body) + 2) // 8 - 1) + body
    first = types[0]
    return struct.pack("!IHBB16s16s", (6 << 28) | (flow_label & 0xFFFFF), len(exts) + len(payload),
                       first, hop_limit, s, d) + exts + payload


def tcp(sport: int, dport: int, *, flags: str = "S", seq: int = 0, ack: int = 0,
        payload: bytes = b"", window: int = 65535, options: bytes = b"") -> bytes:
    """A TCP segment; `flags` as letters (F S R P A U E C). Checksum: filled by ipv4/ipv6."""
    bits = 0
    for ch in flags:
        bits |= _TCP_FLAGS[ch.upper()]
    options = options + b"\0" * (-len(options) % 4)
    doff = (20 + len(options)) // 4
    return struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, doff << 4,
                       bits, window, 0, 0) + options + payload


def udp(sport: int, dport: int, payload: bytes = b"") -> bytes:
    """A UDP datagram. Checksum: filled by ipv4/ipv6."""
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def icmp(type: int, code: int, payload: bytes = b"") -> bytes:  # noqa: A002 (the field's name)
    """An ICMP (or ICMPv6) message: type, code, checksum, then `payload` (e.g. id/seq + data).

    The checksum is ICMPv4's; ipv6() recomputes it with the pseudo header for ICMPv6.
    """
    msg = struct.pack("!BBH", type, code, 0) + payload
    return msg[:2] + struct.pack("!H", inet_checksum(msg)) + msg[4:]


def tls_client_hello(sni: bytes | str, alpn: Sequence[bytes] = (b"h2",)) -> bytes:
    """One TLS record holding a minimal TLS 1.3 ClientHello with server_name `sni` (bytes as
    given: a test may put anything there, markup included) and ALPN."""
    host = sni.encode() if isinstance(sni, str) else bytes(sni)

    def ext(kind: int, data: bytes) -> bytes:
        return struct.pack("!HH", kind, len(data)) + data
    names = b"".join(bytes([len(p)]) + p for p in alpn)
    exts = (ext(0, struct.pack("!HBH", len(host) + 3, 0, len(host)) + host)
            + (ext(16, struct.pack("!H", len(names)) + names) if alpn else b"")
            + ext(43, b"\x02\x03\x04"))
    body = (struct.pack("!H", 0x0303) + bytes(32) + b"\x20" + bytes(32)   # version, random, session id
            + struct.pack("!HH", 2, 0x1301) + b"\x01\x00"             # one cipher suite, null compression
            + struct.pack("!H", len(exts)) + exts)
    hello = b"\x01" + len(body).to_bytes(3, "big") + body
    return struct.pack("!BHH", 22, 0x0301, len(hello)) + hello


# --- link layers ------------------------------------------------------------------------

def _ethertype_of(ip_packet: bytes) -> int:
    return 0x86DD if ip_packet and ip_packet[0] >> 4 == 6 else 0x0800


def ethernet(ip_packet: bytes, *, vlans: Sequence[int] = (), qinq: bool = False,
             ethertype: int | None = None, src: bytes = b"\x02\0\0\0\0\x01",
             dst: bytes = b"\x02\0\0\0\0\x02") -> bytes:
    """Ethernet II (LINKTYPE 1). `vlans`: VLAN ids, outermost first, each an 802.1Q tag
    (TPID 0x8100); with `qinq` the outermost tag is an 802.1ad S-tag (TPID 0x88A8).
    `ethertype` defaults to IPv4/IPv6 from the packet's version nibble."""
    et = _ethertype_of(ip_packet) if ethertype is None else ethertype
    tags = b""
    for k, vid in enumerate(vlans):
        tpid = 0x88A8 if (qinq and k == 0) else 0x8100
        tags += struct.pack("!HH", tpid, vid & 0x0FFF)
    return dst + src + tags + struct.pack("!H", et) + ip_packet


def sll(ip_packet: bytes, *, packet_type: int = 0, ethertype: int | None = None) -> bytes:
    """Linux cooked capture v1 (LINKTYPE_LINUX_SLL 113), 16-byte header."""
    et = _ethertype_of(ip_packet) if ethertype is None else ethertype
    return struct.pack("!HHH8sH", packet_type, 1, 6, b"\x02\0\0\0\0\x01", et) + ip_packet


def sll2(ip_packet: bytes, *, packet_type: int = 0, ifindex: int = 2, ethertype: int | None = None) -> bytes:
    """Linux cooked capture v2 (LINKTYPE_LINUX_SLL2 276), 20-byte header."""
    et = _ethertype_of(ip_packet) if ethertype is None else ethertype
    return struct.pack("!HHIHBB8s", et, 0, ifindex, 1, packet_type, 6, b"\x02\0\0\0\0\x01") + ip_packet


def _af(ip_packet: bytes, af6: int) -> int:
    return af6 if ip_packet and ip_packet[0] >> 4 == 6 else 2


def null_loopback(ip_packet: bytes, big_endian: bool = False, *, af6: int = 30) -> bytes:
    """BSD loopback (LINKTYPE_NULL 0): 4-byte address family in the writer's host order.
    AF_INET is 2; AF_INET6 is 24, 28 or 30 depending on the BSD (`af6`, default macOS 30)."""
    return struct.pack(">I" if big_endian else "<I", _af(ip_packet, af6)) + ip_packet


def loop(ip_packet: bytes, *, af6: int = 24) -> bytes:
    """OpenBSD loopback (LINKTYPE_LOOP 108): 4-byte address family, network order."""
    return struct.pack(">I", _af(ip_packet, af6)) + ip_packet


def ppp(ip_packet: bytes, *, hdlc: bool = True) -> bytes:
    """PPP (LINKTYPE_PPP 9): [FF 03] address/control, then protocol 0x0021 / 0x0057."""
    proto = 0x0057 if ip_packet and ip_packet[0] >> 4 == 6 else 0x0021
    return (b"\xff\x03" if hdlc else b"") + struct.pack("!H", proto) + ip_packet


def pcapdroid_frame(ip_packet: bytes, uid: int, app_name: str) -> bytes:
    """A PCAPdroid "trailer" frame (LINKTYPE 1): fake Ethernet header (zero MACs), the IP
    packet, 0-3 zero bytes to 4-byte alignment, and the 32-byte trailer: magic (u32 BE),
    uid (i32 BE), app name (20 bytes, NUL-padded), CRC32 of everything before (u32 BE)."""
    frame = b"\0" * 12 + struct.pack("!H", _ethertype_of(ip_packet)) + ip_packet
    frame += b"\0" * (-len(frame) % 4)
    frame += struct.pack("!Ii20s", PCAPDROID_MAGIC, uid, app_name.encode()[:20])
    return frame + struct.pack("!I", zlib.crc32(frame))


# --- timestamps -------------------------------------------------------------------------

def _ns(ts) -> int:
    """An integer (Python or numpy) is ns; a float is seconds."""
    if isinstance(ts, numbers.Integral):
        return int(ts)
    return int(Decimal(repr(float(ts))) * _NS)


def _ticks(ns: int, tsresol: int | None, tsoffset: int) -> int:
    ns -= tsoffset * _NS
    if tsresol is None:
        tsresol = 6
    if tsresol & 0x80:
        return (ns << (tsresol & 0x7F)) // _NS
    if tsresol <= 9:
        return ns // 10 ** (9 - tsresol)
    return ns * 10 ** (tsresol - 9)


# --- classic pcap -----------------------------------------------------------------------

def pcap_bytes(packets: Iterable[tuple], *, linktype: int = 1, big_endian: bool = False,
               nanosecond: bool = False, snaplen: int = 262144) -> bytes:
    """A classic pcap file's bytes. `packets`: (ts, frame) or (ts, frame, orig_len).

    Frames longer than `snaplen` are cut to it (orig_len keeps the full length)."""
    o = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
    out = [struct.pack(o + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for pkt in packets:
        ts, frame = pkt[0], pkt[1]
        orig = pkt[2] if len(pkt) > 2 else len(frame)
        frame = frame[:snaplen]
        sec, sub = divmod(_ns(ts), _NS)
        if not nanosecond:
            sub //= 1000
        out.append(struct.pack(o + "IIII", sec, sub, len(frame), orig) + frame)
    return b"".join(out)


def write_pcap(path, packets: Iterable[tuple], *, linktype: int = 1, big_endian: bool = False,
               nanosecond: bool = False, snaplen: int = 262144) -> Path:
    """Write a classic pcap file (see pcap_bytes); return its path."""
    path = Path(path)
    path.write_bytes(pcap_bytes(packets, linktype=linktype, big_endian=big_endian,
                                nanosecond=nanosecond, snaplen=snaplen))
    return path


# --- pcapng -----------------------------------------------------------------------------

def _pad4(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


class Section:
    """One pcapng section (SHB + blocks), encoded in its own byte order as methods are called."""

    def __init__(self, *, big_endian: bool = False, options: Sequence[tuple[int, bytes]] = ()):
        self.big_endian = big_endian
        self.o = ">" if big_endian else "<"
        self._ifaces: list[tuple[int | None, int, int]] = []  # (tsresol, tsoffset, snaplen)
        self.blocks: list[bytes] = [self._shb(options)]

    # encoding helpers
    def _options(self, options: Sequence[tuple[int, bytes]], comment: str | None = None) -> bytes:
        opts = list(options)
        if comment is not None:
            opts.insert(0, (1, comment.encode()))
        if not opts:
            return b""
        out = b"".join(struct.pack(self.o + "HH", code, len(val)) + _pad4(val) for code, val in opts)
        return out + struct.pack(self.o + "HH", 0, 0)

    def _block(self, btype: int, body: bytes) -> bytes:
        body = _pad4(body)
        n = len(body) + 12
        return struct.pack(self.o + "II", btype, n) + body + struct.pack(self.o + "I", n)

    def _shb(self, options) -> bytes:
        body = struct.pack(self.o + "IHHq", 0x1A2B3C4D, 1, 0, -1) + self._options(options)
        return self._block(0x0A0D0D0A, body)

    def _ts(self, iface: int, ts) -> tuple[int, int, bytes, int]:
        tsresol, tsoffset, snaplen = self._ifaces[iface] if iface < len(self._ifaces) else (None, 0, 0)
        ticks = _ticks(_ns(ts), tsresol, tsoffset) & 0xFFFFFFFFFFFFFFFF
        return ticks >> 32, ticks & 0xFFFFFFFF, snaplen

    # blocks
    def interface(self, linktype: int = 1, *, tsresol: int | None = None, tsoffset: int | None = None,
                  snaplen: int = 0, options: Sequence[tuple[int, bytes]] = ()) -> int:
        """Add an IDB; return its interface id. `tsresol` is the if_tsresol byte (n: 10^-n s,
        0x80 | n: 2^-n s; None: option absent, 10^-6 s); `tsoffset` is if_tsoffset in seconds;
        `snaplen` > 0 cuts the frames of epb/opb/spb on this interface."""
        opts = list(options)
        if tsresol is not None:
            opts.append((9, bytes([tsresol])))
        if tsoffset is not None:
            opts.append((14, struct.pack(self.o + "q", tsoffset)))
        self.blocks.append(self._block(1, struct.pack(self.o + "HHI", linktype, 0, snaplen) + self._options(opts)))
        self._ifaces.append((tsresol, tsoffset or 0, snaplen))
        return len(self._ifaces) - 1

    def epb(self, iface: int, ts, frame: bytes, *, orig_len: int | None = None, comment: str | None = None,
            options: Sequence[tuple[int, bytes]] = ()) -> None:
        """Enhanced packet block (type 6); `comment` becomes opt_comment (PCAPdroid: "u-<uid>")."""
        hi, lo, snaplen = self._ts(iface, ts)
        orig = len(frame) if orig_len is None else orig_len
        if snaplen:
            frame = frame[:snaplen]
        body = struct.pack(self.o + "IIIII", iface, hi, lo, len(frame), orig) + _pad4(frame)
        self.blocks.append(self._block(6, body + self._options(options, comment)))

    def opb(self, iface: int, ts, frame: bytes, *, orig_len: int | None = None, drops: int = 0,
            comment: str | None = None) -> None:
        """Obsolete packet block (type 2): 16-bit interface id and drop count."""
        hi, lo, snaplen = self._ts(iface, ts)
        orig = len(frame) if orig_len is None else orig_len
        if snaplen:
            frame = frame[:snaplen]
        body = struct.pack(self.o + "HHIIII", iface, drops, hi, lo, len(frame), orig) + _pad4(frame)
        self.blocks.append(self._block(2, body + self._options((), comment)))

    def spb(self, frame: bytes, *, orig_len: int | None = None) -> None:
        """Simple packet block (type 3): interface 0, no timestamp."""
        orig = len(frame) if orig_len is None else orig_len
        snaplen = self._ifaces[0][2] if self._ifaces else 0
        if snaplen:
            frame = frame[:snaplen]
        self.blocks.append(self._block(3, struct.pack(self.o + "I", orig) + _pad4(frame)))

    def isb(self, iface: int, ts, *, ifrecv: int | None = None, ifdrop: int | None = None) -> None:
        """Interface statistics block (type 5) with isb_ifrecv (4) / isb_ifdrop (5)."""
        hi, lo, _ = self._ts(iface, ts)
        opts = [(code, struct.pack(self.o + "Q", v)) for code, v in ((4, ifrecv), (5, ifdrop)) if v is not None]
        self.blocks.append(self._block(5, struct.pack(self.o + "III", iface, hi, lo) + self._options(opts)))

    def nrb(self, records: Sequence[tuple[str, Sequence[str]]]) -> None:
        """Name resolution block (type 4): (address, [names]) records, IPv4 or IPv6."""
        body = b""
        for addr, names in records:
            ip = ipaddress.ip_address(addr)
            val = ip.packed + b"".join(n.encode() + b"\0" for n in names)
            body += struct.pack(self.o + "HH", 1 if ip.version == 4 else 2, len(val)) + _pad4(val)
        body += struct.pack(self.o + "HH", 0, 0)
        self.blocks.append(self._block(4, body))

    def custom(self, pen: int, data: bytes, *, copyable: bool = True) -> None:
        """Custom block 0x00000BAD (or 0x40000BAD if not `copyable`): PEN, then `data`."""
        self.blocks.append(self._block(0x00000BAD if copyable else 0x40000BAD, struct.pack(self.o + "I", pen) + data))

    def pcapdroid_uid_map(self, uid: int, package: str, app: str) -> None:
        """PCAPdroid's UID-map custom block: PEN 62652, version 1, type 1, uid, names."""
        pkg, name = package.encode(), app.encode()
        self.custom(PCAPDROID_PEN, struct.pack(self.o + "HBBiBB", 1, 1, 0, uid, len(pkg), len(name)) + pkg + name)

    def block(self, btype: int, body: bytes = b"") -> None:
        """Any block, e.g. an unknown type: `body` is padded to 4 bytes."""
        self.blocks.append(self._block(btype, body))

    def raw(self, data: bytes) -> None:
        """Bytes appended as they are (to build damaged files)."""
        self.blocks.append(data)

    def __bytes__(self) -> bytes:
        return b"".join(self.blocks)


def pcapng_bytes(sections: Iterable[Section]) -> bytes:
    return b"".join(bytes(s) for s in sections)


def write_pcapng(path, sections: Iterable[Section] | Section) -> Path:
    """Write the sections (a Section or a list of them) to `path`; return the path."""
    if isinstance(sections, Section):
        sections = [sections]
    path = Path(path)
    path.write_bytes(pcapng_bytes(sections))
    return path


# --- cross-check ------------------------------------------------------------------------

def tshark_times(path) -> list[int | None] | None:
    """Timestamps (ns) of the packets tshark reads in `path` (None for a packet without
    one, e.g. a pcapng simple packet block), or None when tshark is not installed.

    Blocks that Wireshark shows as frames but that carry no packet (pcapng custom blocks)
    are left out. Raises AssertionError, with tshark's message, if it cannot read the file."""
    exe = shutil.which("tshark")
    if exe is None:
        return None
    proc = subprocess.run([exe, "-n", "-r", str(path), "-T", "fields", "-E", "separator=/t",
                           "-e", "frame.encap_type", "-e", "frame.time_epoch"],
                          capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise AssertionError(f"tshark cannot read {path}: {proc.stderr.strip()}")
    times: list[int | None] = []
    for line in proc.stdout.splitlines():
        encap, _, epoch = line.partition("\t")
        if encap.strip():
            times.append(int(Decimal(epoch) * _NS) if epoch.strip() else None)
    return times


def decoded_batches(path, batch_packets: int = 16384):
    """The packet batches the real reader and decoder make of a capture file: yields
    (read buffer, packet rows P[:n]) — what the flow table and collectors are fed."""
    from flowscope.decode.layout import new_batch
    from flowscope.sources import CaptureStats, open_capture
    reader = open_capture(str(path), CaptureStats(path=str(path)))
    P = new_batch(batch_packets)
    try:
        for buf, n in reader.batches(P):
            yield buf, P[:n]
    finally:
        reader.stream.close()
