"""pcapng: several sections and interfaces, per-interface link type and if_tsresol.

Packet blocks (EPB, SPB, obsolete PB) are walked in a compiled loop; every other block
(SHB, IDB, ISB, NRB, custom, unknown) returns to Python, which is rare and cheap.
PCAPdroid writes the app UID of each packet as an EPB comment "u-<uid>" and the UID ->
app mapping in a custom block (PEN 62652), both read here.
"""
from __future__ import annotations

import struct
from typing import Iterator

import numpy as np
from numba import njit

from flowscope.decode.frame import decode_frame
from flowscope.decode.layout import IFACE, NO_UID, ST_BAD_IFACE, ST_NO_TS, STATUS, TS, UID
from flowscope.errors import CaptureError
from flowscope.sources.pcap import rd32
from flowscope.sources.stream import ByteStream

SHB, IDB, PB_OBSOLETE, SPB, NRB, ISB, EPB, DSB = 0x0A0D0D0A, 1, 2, 3, 4, 5, 6, 0x0A
CUSTOM = (0x00000BAD, 0x40000BAD)
PCAPDROID_PEN = 62652
MAX_BLOCK = 16 << 20
NEED_MORE, FULL, BAD_BLOCK, PY_BLOCK = 0, 1, 2, 3


@njit(cache=True, inline="always")
def rd16(b, o, big):
    if big:
        return (np.int64(b[o]) << 8) | np.int64(b[o + 1])
    return (np.int64(b[o + 1]) << 8) | np.int64(b[o])


@njit(cache=True)
def _ts_ns(raw, mode, exp, offset_ns):
    """Interface ticks -> ns. mode 0: 10^-exp s per tick, mode 1: 2^-exp s per tick."""
    if mode == 0:
        if exp <= 9:
            return raw * 10 ** (9 - exp) + offset_ns
        return raw // 10 ** (exp - 9) + offset_ns
    whole = raw >> exp
    frac = raw & ((np.int64(1) << exp) - 1)
    if exp <= 30:
        return whole * 1_000_000_000 + ((frac * 1_000_000_000) >> exp) + offset_ns
    return whole * 1_000_000_000 + np.int64(frac / 2.0 ** exp * 1e9) + offset_ns


@njit(cache=True)
def _comment_uid(b, o, oend, big):
    """PCAPdroid's EPB comment option 'u-<uid>' -> uid, else NO_UID."""
    while o + 4 <= oend:
        code = rd16(b, o, big)
        ln = rd16(b, o + 2, big)
        if code == 0 or o + 4 + ln > oend:
            break
        if code == 1 and ln >= 3 and b[o + 4] == 0x75 and b[o + 5] == 0x2D:  # "u-"
            k = o + 6
            neg = False
            if b[k] == 0x2D:
                neg = True
                k += 1
            v = np.int64(0)
            digits = 0
            while k < o + 4 + ln and 0x30 <= b[k] <= 0x39 and digits < 10:
                v = v * 10 + (b[k] - 0x30)
                k += 1
                digits += 1
            if digits:
                return -v if neg else v
        o += 4 + ((ln + 3) & ~3)
    return NO_UID


@njit(cache=True, nogil=True)
def walk_pcapng(b, pos, end, big, if_link, if_mode, if_exp, if_off, n_if, last_ts, P, cap, stats):
    n = 0
    while n < cap:
        if pos + 12 > end:
            return pos, n, NEED_MORE, last_ts
        btype = rd32(b, pos, big)
        if btype == SHB:  # may switch the byte order: Python reads its length
            return pos, n, PY_BLOCK, last_ts
        blen = rd32(b, pos + 4, big)
        if blen < 12 or (blen & 3) or blen > MAX_BLOCK:
            return pos, n, BAD_BLOCK, last_ts
        if pos + blen > end:
            return pos, n, NEED_MORE, last_ts
        if btype == EPB or btype == PB_OBSOLETE:
            if blen < 32:
                return pos, n, BAD_BLOCK, last_ts
            if btype == EPB:
                ifid = rd32(b, pos + 8, big)
            else:
                ifid = rd16(b, pos + 8, big)
            incl = rd32(b, pos + 20, big)
            orig = rd32(b, pos + 24, big)
            if 32 + incl > blen:
                return pos, n, BAD_BLOCK, last_ts
            if ifid >= n_if:
                stats[ST_BAD_IFACE] += 1
                pos += blen
                continue
            raw = (rd32(b, pos + 12, big) << 32) | rd32(b, pos + 16, big)
            last_ts = _ts_ns(raw, if_mode[ifid], if_exp[ifid], if_off[ifid])
            P[n, TS] = last_ts
            decode_frame(b, pos + 28, incl, orig if orig > incl else incl, if_link[ifid], P, n, stats)
            P[n, IFACE] = ifid
            if P[n, UID] == NO_UID and blen > 32 + ((incl + 3) & ~3):
                P[n, UID] = _comment_uid(b, pos + 28 + ((incl + 3) & ~3), pos + blen - 4, big)
            stats[P[n, STATUS]] += 1
            n += 1
        elif btype == SPB:
            if blen < 16 or n_if == 0:
                return pos, n, BAD_BLOCK, last_ts
            orig = rd32(b, pos + 8, big)
            incl = min(orig, blen - 16)
            P[n, TS] = last_ts  # SPBs carry no timestamp: the previous packet's stands in
            stats[ST_NO_TS] += 1
            decode_frame(b, pos + 12, incl, orig, if_link[0], P, n, stats)
            P[n, IFACE] = 0
            stats[P[n, STATUS]] += 1
            n += 1
        else:
            return pos, n, PY_BLOCK, last_ts
        pos += blen
    return pos, n, FULL, last_ts


class PcapngReader:
    format = "pcapng"

    def __init__(self, path: str, stream: ByteStream, capture):
        self.path = path
        self.stream = stream
        self.capture = capture
        self.big = False
        self._reset_interfaces()
        self.last_ts = 0

    def _reset_interfaces(self):
        self.if_link = np.zeros(0, np.int64)
        self.if_mode = np.zeros(0, np.int64)
        self.if_exp = np.zeros(0, np.int64)
        self.if_off = np.zeros(0, np.int64)

    def batches(self, P: np.ndarray) -> Iterator[tuple[np.ndarray, int]]:
        s, stats = self.stream, self.capture.stats
        s.fill(12)
        while True:
            pos, n, status, self.last_ts = walk_pcapng(
                s.buf, s.start, s.end, self.big, self.if_link, self.if_mode, self.if_exp,
                self.if_off, len(self.if_link), self.last_ts, P, len(P), stats)
            s.start = pos
            if n:
                yield s.buf, n
            if status == FULL:
                continue
            if status == PY_BLOCK:
                self._python_block()
                continue
            if status == BAD_BLOCK:
                btype, blen = struct.unpack_from(self._order() + "II", s.buf, pos)
                raise CaptureError(self.path, f"bad block length {blen} for block type 0x{btype:08X} "
                                              f"at offset {s.offset + pos}")
            if s.eof:
                s.end_of_input(self.path, "block")
                return
            need = 12
            if s.end - s.start >= 12:
                need = max(need, self._peek_len())
            s.fill(need)

    def _order(self) -> str:
        return ">" if self.big else "<"

    def _peek_len(self) -> int:
        s = self.stream
        btype = struct.unpack_from("<I", s.buf, s.start)[0]
        if btype == SHB:  # the byte order may change with a new section
            big = bytes(s.buf[s.start + 8:s.start + 12]) == b"\x1a\x2b\x3c\x4d"
            return struct.unpack_from(">I" if big else "<I", s.buf, s.start + 4)[0]
        return struct.unpack_from(self._order() + "I", s.buf, s.start + 4)[0]

    def _python_block(self) -> None:
        s = self.stream
        btype = struct.unpack_from(self._order() + "I", s.buf, s.start)[0]
        if btype == SHB:
            bom = bytes(s.buf[s.start + 8:s.start + 12])
            if bom not in (b"\x1a\x2b\x3c\x4d", b"\x4d\x3c\x2b\x1a"):
                raise CaptureError(self.path, f"bad pcapng byte-order magic at offset {s.offset + s.start}")
            self.big = bom == b"\x1a\x2b\x3c\x4d"
            self._reset_interfaces()  # interface ids are per section
            self.capture.sections += 1
        blen = struct.unpack_from(self._order() + "I", s.buf, s.start + 4)[0]
        if blen < 12 or blen & 3 or blen > MAX_BLOCK:
            raise CaptureError(self.path, f"bad block length {blen} for block type 0x{btype:08X} "
                                          f"at offset {s.offset + s.start}")
        if s.end - s.start < blen:
            s.fill(blen)
            if s.end - s.start < blen:
                raise CaptureError(self.path, s.error or f"truncated last block at offset {s.offset + s.start}")
        body = bytes(s.buf[s.start + 8:s.start + blen - 4])
        if btype == IDB:
            self._interface(body)
        elif btype == ISB:
            self._interface_stats(body)
        elif btype == NRB:
            self.capture.name_records += sum(1 for _ in _options(body, self._order()))
        elif btype in CUSTOM:
            self._custom(body)
        elif btype != SHB:
            self.capture.blocks_skipped[f"0x{btype:08X}"] = self.capture.blocks_skipped.get(f"0x{btype:08X}", 0) + 1
        s.start += blen

    def _interface(self, body: bytes) -> None:
        o = self._order()
        if len(body) < 8:
            raise CaptureError(self.path, "truncated interface description block")
        link, _res, _snap = struct.unpack_from(o + "HHI", body, 0)
        mode, exp, off_ns = 0, 6, 0
        for code, val in _options(body[8:], o):
            if code == 9 and val:
                mode, exp = (1, val[0] & 0x7F) if val[0] & 0x80 else (0, val[0])
                if mode == 0 and exp > 18:
                    raise CaptureError(self.path, f"unsupported if_tsresol 10^-{exp}")
                if mode == 1 and exp > 62:
                    raise CaptureError(self.path, f"unsupported if_tsresol 2^-{exp}")
            elif code == 14 and len(val) == 8:
                off_s = struct.unpack(o + "q", val)[0]
                if abs(off_s) > 4_000_000_000:  # beyond year 2096: ns would overflow int64
                    raise CaptureError(self.path, f"absurd if_tsoffset {off_s} s")
                off_ns = off_s * 1_000_000_000
        self.if_link = np.append(self.if_link, np.int64(link))
        self.if_mode = np.append(self.if_mode, np.int64(mode))
        self.if_exp = np.append(self.if_exp, np.int64(exp))
        self.if_off = np.append(self.if_off, np.int64(off_ns))
        self.capture.link_types.add(link)
        self.capture.interfaces += 1

    def _interface_stats(self, body: bytes) -> None:
        o = self._order()
        if len(body) < 12:
            return
        ifid = struct.unpack_from(o + "I", body, 0)[0]
        names = {4: "ifrecv", 5: "ifdrop", 6: "filteraccept", 7: "osdrop", 8: "usrdeliv"}
        for code, val in _options(body[12:], o):
            if code in names and len(val) == 8:
                self.capture.interface_stats.setdefault(str(ifid), {})[names[code]] = struct.unpack(o + "Q", val)[0]

    def _custom(self, body: bytes) -> None:
        o = self._order()
        if len(body) < 14 or struct.unpack_from(o + "I", body, 0)[0] != PCAPDROID_PEN:
            self.capture.blocks_skipped["custom"] = self.capture.blocks_skipped.get("custom", 0) + 1
            return
        # PCAPdroid block: version u16, type u8, pad u8, then (type 1) uid i32, two lengths, names
        _ver, kind = struct.unpack_from(o + "HB", body, 4)
        if kind != 1:
            return
        uid, pkg_len, app_len = struct.unpack_from(o + "iBB", body, 8)
        pkg = body[14:14 + pkg_len].decode("utf-8", "replace")
        app = body[14 + pkg_len:14 + pkg_len + app_len].decode("utf-8", "replace")
        if self.capture.apps.get(uid) is None:  # the map may follow the packets it names
            self.capture.apps[uid] = app or pkg
        self.capture.packages.setdefault(uid, pkg)


def _options(data: bytes, o: str):
    """Type-length-value items padded to 4 bytes, up to an end marker (type 0).

    The layout of block options and of name resolution records alike.
    """
    k = 0
    while k + 4 <= len(data):
        code, ln = struct.unpack_from(o + "HH", data, k)
        if code == 0:
            return
        yield code, data[k + 4:k + 4 + ln]
        k += 4 + ((ln + 3) & ~3)
