"""Flow records (int64 rows) -> the flows table defined in schema.FLOWS (Arrow; pandas on demand)."""
from __future__ import annotations

import base64
import hashlib
import ipaddress
import struct

import numpy as np
import pyarrow as pa

from flowscope import schema
from flowscope.decode.layout import NO_UID
from flowscope.flows.layout import (
    ACK_TS, APP_UID, BYTES, CAPTURE, D, DUPS, END_REASON, END_REASONS, TCP_FIN, FIRST_ANY,
    FRAME, K_AHI, K_ALO, K_BHI, K_BLO, K_PORTS, K_PROTO, LAST_ANY, ND, NONE, ORIG_IS_A, PAYLOAD,
    PKTS, TCP_RST, SYN_TS, SYNACK_TS, TCPFLAGS,
)

L4_NAMES = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmp6", 132: "sctp", 136: "udplite"}
_FLAG_LETTERS = "FSRPAUEC"
FLAG_STRINGS = np.array(["".join(_FLAG_LETTERS[k] for k in range(8) if v >> k & 1) for v in range(256)],
                        dtype=object)
_V4_MAPPED_HI32 = 0xFFFF


def _address(hi: int, lo: int, cache: dict) -> tuple[str, bytes]:
    """(text, packed bytes) of a 128-bit address; IPv4-mapped halves become IPv4."""
    key = (hi, lo)
    got = cache.get(key)
    if got is None:
        uhi, ulo = hi & 0xFFFFFFFFFFFFFFFF, lo & 0xFFFFFFFFFFFFFFFF
        if uhi == 0 and ulo >> 32 == _V4_MAPPED_HI32:
            packed = (ulo & 0xFFFFFFFF).to_bytes(4, "big")
        else:
            packed = uhi.to_bytes(8, "big") + ulo.to_bytes(8, "big")
        got = cache[key] = (str(ipaddress.ip_address(packed)), packed)
    return got


def community_id(proto: int, src: bytes, sport: int, dst: bytes, dport: int) -> str | None:
    """Community ID v1 (corelight/community-id-spec), seed 0, from packed addresses.

    None for protocols without ports (ICMP needs type/code, which the flow table does not keep).
    """
    if proto not in (6, 17, 132):
        return None
    if (src, sport) > (dst, dport):
        src, dst, sport, dport = dst, src, dport, sport
    data = b"\0\0" + src + dst + struct.pack("!BBHH", proto, 0, sport, dport)
    return "1:" + base64.b64encode(hashlib.sha1(data).digest()).decode()


def _addresses(hi: np.ndarray, lo: np.ndarray) -> tuple[np.ndarray, list]:
    """(index of each row's address in `distinct`, distinct (text, packed) pairs): the text
    is made once per distinct address, not once per flow end."""
    if not len(hi):
        return np.zeros(0, dtype=np.int64), []
    order = np.lexsort((lo, hi))  # np.unique(axis=0) sorts 5x slower
    new = np.ones(len(order), dtype=bool)
    new[1:] = (hi[order][1:] != hi[order][:-1]) | (lo[order][1:] != lo[order][:-1])
    inverse = np.empty(len(order), dtype=np.int64)
    inverse[order] = np.cumsum(new) - 1
    first = order[new]
    cache: dict = {}
    return inverse, [_address(h, lo_, cache) for h, lo_ in zip(hi[first].tolist(), lo[first].tolist())]


def community_ids(proto: np.ndarray, src: list[bytes], sport: np.ndarray, dst: list[bytes],
                  dport: np.ndarray) -> list[str | None]:
    """community_id for many flows: the ordering of the two ends is decided on arrays, the
    hash input of every flow is packed into one buffer; only the SHA-1 runs per flow."""
    n = len(proto)
    if not n:
        return []
    swap = np.fromiter(((s, sp) > (d, dp) for s, sp, d, dp in zip(src, sport.tolist(), dst, dport.tolist())),
                       dtype=bool, count=n)
    first = [d if w else s_ for s_, d, w in zip(src, dst, swap.tolist())]
    second = [s_ if w else d for s_, d, w in zip(src, dst, swap.tolist())]
    p1, p2 = np.where(swap, dport, sport), np.where(swap, sport, dport)
    tail = np.zeros((n, 6), dtype=np.uint8)
    tail[:, 0] = proto
    tail[:, 2], tail[:, 3] = p1 >> 8, p1 & 0xFF
    tail[:, 4], tail[:, 5] = p2 >> 8, p2 & 0xFF
    tails = tail.tobytes()
    sha1, b64 = hashlib.sha1, base64.b64encode
    out: list[str | None] = []
    for k, (p, a, b) in enumerate(zip(proto.tolist(), first, second)):
        if p not in (6, 17, 132):
            out.append(None)
            continue
        out.append("1:" + b64(sha1(b"\0\0" + a + b + tails[6 * k:6 * k + 6]).digest()).decode())
    return out


# Text columns are taken from object arrays (a str a distinct value): numpy's fixed-width
# unicode arrays go into Arrow through a slower conversion (to_table at 100k flows: median
# 0.275 -> 0.255 s over 5 fresh processes)
TCP_STATES = np.array(["OTH", "REJ", "RSTOS0", "SH", "S0", "RSTRH", "SHR", "RSTO", "RSTR", "SF", "S2", "S3", "S1"],
                      dtype=object)
RTT_SOURCES = np.array(["", "syn/syn-ack", "syn-ack/ack"], dtype=object)


def _tcp_state(fo, fr, syn_o, synack_r):
    rst_o, rst_r = (fo & TCP_RST) > 0, (fr & TCP_RST) > 0
    fin_o, fin_r = (fo & TCP_FIN) > 0, (fr & TCP_FIN) > 0
    est = syn_o & synack_r
    conds = [~syn_o & ~synack_r,
             syn_o & ~synack_r & rst_r, syn_o & ~synack_r & rst_o, syn_o & ~synack_r & fin_o,
             syn_o & ~synack_r,
             ~syn_o & synack_r & rst_r, ~syn_o & synack_r & fin_r,
             est & rst_o, est & rst_r, est & fin_o & fin_r, est & fin_o, est & fin_r]
    codes = np.select(conds, np.arange(len(TCP_STATES) - 1), default=len(TCP_STATES) - 1)
    return TCP_STATES[codes]


def flow_order(R: np.ndarray) -> np.ndarray:
    """The row order that defines flow_id: by start time, ties by key (deterministic)."""
    return np.lexsort((R[:, K_PORTS], R[:, K_BLO], R[:, K_BHI], R[:, K_ALO], R[:, K_AHI],
                       R[:, K_PROTO], R[:, FIRST_ANY]))


def to_table(R: np.ndarray, captures: list[str], apps: dict[int, str]) -> pa.Table:
    """Flow records, already in flow_order, -> the flows table (Arrow)."""
    a_orig = R[:, ORIG_IS_A] == 1
    ports_a, ports_b = R[:, K_PORTS] >> 16, R[:, K_PORTS] & 0xFFFF
    n = len(R)
    where, distinct = _addresses(np.concatenate([np.where(a_orig, R[:, K_AHI], R[:, K_BHI]),
                                                 np.where(a_orig, R[:, K_BHI], R[:, K_AHI])]),
                                 np.concatenate([np.where(a_orig, R[:, K_ALO], R[:, K_BLO]),
                                                 np.where(a_orig, R[:, K_BLO], R[:, K_ALO])]))
    texts = np.array([t for t, _ in distinct] or [""], dtype=object)
    packed = [p for _, p in distinct]
    orig_port = np.where(a_orig, ports_a, ports_b)
    resp_port = np.where(a_orig, ports_b, ports_a)
    proto = R[:, K_PROTO] & 0xFF
    o, r = D, D + ND
    fo, fr = R[:, o + TCPFLAGS], R[:, r + TCPFLAGS]
    is_tcp = proto == 6

    syn, synack, ack = R[:, o + SYN_TS], R[:, r + SYNACK_TS], R[:, o + ACK_TS]
    rtt1 = (syn != NONE) & (synack != NONE) & (synack >= syn)
    rtt2 = ~rtt1 & (synack != NONE) & (ack != NONE) & (ack > synack)
    rtt_ms = np.where(rtt1, (synack - syn) / 1e6, np.where(rtt2, (ack - synack) / 1e6, np.nan))
    rtt_source = RTT_SOURCES[np.where(rtt1, 1, np.where(rtt2, 2, 0))]
    uid = R[:, APP_UID]
    has_uid = uid != NO_UID
    cols = {
        "flow_id": np.arange(len(R), dtype=np.int64),
        "community_id": community_ids(proto, [packed[k] for k in where[:n].tolist()], orig_port,
                                      [packed[k] for k in where[n:].tolist()], resp_port),
        "capture": np.array(captures, dtype=object)[R[:, CAPTURE]],
        "ts_start": R[:, FIRST_ANY],
        "ts_end": R[:, LAST_ANY],
        "duration_s": (R[:, LAST_ANY] - R[:, FIRST_ANY]) / 1e9,
        "l4": [L4_NAMES.get(p, f"ip-{p}") for p in proto.tolist()],
        "ip_version": R[:, K_PROTO] >> 8,
        "orig_ip": texts[where[:n]], "orig_port": orig_port,
        "resp_ip": texts[where[n:]], "resp_port": resp_port,
        "pkts_orig": R[:, o + PKTS], "pkts_resp": R[:, r + PKTS],
        "bytes_orig": R[:, o + BYTES], "bytes_resp": R[:, r + BYTES],
        "payload_bytes_orig": R[:, o + PAYLOAD], "payload_bytes_resp": R[:, r + PAYLOAD],
        "frame_bytes_orig": R[:, o + FRAME], "frame_bytes_resp": R[:, r + FRAME],
        "rtt_ms": pa.array(rtt_ms, mask=np.isnan(rtt_ms)), "rtt_source": rtt_source,
        "tcp_state": np.where(is_tcp, _tcp_state(fo, fr, syn != NONE, synack != NONE), ""),
        "tcp_flags_orig": np.where(is_tcp, FLAG_STRINGS[fo & 0xFF], ""),
        "tcp_flags_resp": np.where(is_tcp, FLAG_STRINGS[fr & 0xFF], ""),
        "duplicates": R[:, DUPS],
        "end_reason": np.array(END_REASONS, dtype=object)[R[:, END_REASON]],
        "app_uid": pa.array(uid, mask=~has_uid),
        "app": [apps.get(u) if h else None for u, h in zip(uid.tolist(), has_uid.tolist())],
    }
    arrays = [pa.array(cols[c.name], type=c.type) if not isinstance(cols[c.name], pa.Array)
              else cols[c.name].cast(c.type) for c in schema.FLOW_BASE]
    return pa.Table.from_arrays(arrays, schema=schema.arrow_schema(schema.FLOW_BASE))
