"""Per-flow evidence from kept payload bytes: the dissectors run once per flow record.

Malformed input is counted per reason, never raised (`counts`), so summary.json can say how
much each dissector had to skip. Records of one flow from consecutive files combine as
evidence (first name wins, flags OR), not as bytes.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from flowscope.dissect import dhcp, dns, http, localnames, quic, stun, tls, tlsfast, whatsapp


# Per-flow bounds (docs/security.md). A record keeps at most this many payload bytes per
# direction: what reassemble() reads anyway (a ClientHello with post-quantum shares is ~3 KiB),
# whatever the segment sizes (offload captures hold 64 KiB segments). DNS flows keep this many
# names and answers: a long-lived DNS connection or a tunnel must not grow without end.
KEEP_FLOW_BYTES = 16 << 10
# Payload packets kept per flow direction (originator, responder). TCP: the client's first
# segments hold the ClientHello (two segments with post-quantum key shares), the WhatsApp
# prologue (real clients split it: 4 B, then the rest) or an HTTP request head. UDP: QUIC
# Initials and STUN requests; STUN responses (mapped addresses). collect.py keeps that many
# as they arrive; for_flows cuts the joined records of a flow to the same counts.
KEEP_TCP = (4, 0)
KEEP_UDP = (4, 2)
MAX_FLOW_NAMES = 1024
MAX_FLOW_ANSWERS = 8192
# The CN of the client certificate Meta's webhooks present with mTLS (whatsapp-business-and-frames.md §1.2 [7][9])
WEBHOOK_CLIENT_CERT = b"client.webhooks.fbclientcerts.com"


class FlowBytes:
    """Payload kept for one undecided flow record: TCP segments or datagrams per direction."""
    __slots__ = ("l4", "segments", "datagrams", "kept")

    def __init__(self, l4: int):
        self.l4 = l4
        self.segments: tuple = ([], [])   # (seq, bytes) per direction
        self.datagrams: tuple = ([], [])  # (ts, bytes) per direction
        self.kept = [0, 0]                # payload bytes held per direction

    def add(self, d: int, seq: int, ts: int, data: bytes) -> bool:
        """Keep a packet's payload, cut to the direction's byte budget; False if it was cut."""
        room = KEEP_FLOW_BYTES - self.kept[d]
        whole = len(data) <= room
        if not whole:
            data = data[:max(room, 0)]
        self.kept[d] += len(data)
        if self.l4 == 6:
            self.segments[d].append((seq, data))
        else:
            self.datagrams[d].append((ts, data))
        return whole


@dataclass
class Evidence:
    """What the payload of one flow showed (all names already escaped by the dissectors)."""
    wa_prologue: bool = False
    wa_version: str = ""
    sni: str | None = None
    alpn: tuple = ()
    quic_sni: str | None = None
    quic_version: int | None = None
    http_host: str | None = None
    stun: bool = False
    stun_whatsapp: bool = False
    stun_mapped: tuple = ()
    stun_rtt_ms: float | None = None
    dns_queries: tuple = ()
    dns_answers: list = field(default_factory=list)  # (ts_ns, address, queried name)
    local_names: tuple = ()  # names of local devices (see dissect/names.py)
    client_cert: str | None = None  # Meta's webhook mTLS client certificate name, seen in clear (TLS 1.2)


def reassemble(segments: list[tuple[int, bytes]], limit: int = KEEP_FLOW_BYTES) -> bytes:
    """Contiguous stream from the lowest sequence number; overlaps taken once; stops at a gap."""
    if not segments:
        return b""
    if len(segments) == 1:  # the usual first flight: one segment, nothing to order
        return bytes(segments[0][1][:limit])
    first = segments[0][0]
    rel = sorted(((((seq - first + 2**31) % 2**32) - 2**31, data) for seq, data in segments),
                 key=lambda x: x[0])
    start = rel[0][0]
    out = bytearray()
    for off, data in rel:
        pos = off - start
        if pos > len(out):
            break  # a gap: what follows cannot be placed
        out += data[len(out) - pos:]
        if len(out) >= limit:
            break
    return bytes(out[:limit])


def extract(kept: FlowBytes, counts: Counter) -> Evidence:
    ev = Evidence()
    if kept.l4 == 6:
        _tcp(reassemble(kept.segments[0]), ev, counts)
    elif kept.l4 == 17:
        _udp(kept, ev, counts)
    return ev


def merged(items: list[Evidence]) -> Evidence:
    """Evidence of one flow from its records in time order."""
    if len(items) == 1:
        return items[0]
    out = Evidence()
    for e in items:
        out.wa_prologue |= e.wa_prologue
        out.wa_version = out.wa_version or e.wa_version
        out.sni = out.sni or e.sni
        out.alpn = out.alpn or e.alpn
        out.quic_sni = out.quic_sni or e.quic_sni
        out.quic_version = out.quic_version or e.quic_version
        out.http_host = out.http_host or e.http_host
        out.stun |= e.stun
        out.stun_whatsapp |= e.stun_whatsapp
        out.stun_mapped += tuple(a for a in e.stun_mapped if a not in out.stun_mapped)
        if e.stun_rtt_ms is not None:
            out.stun_rtt_ms = e.stun_rtt_ms if out.stun_rtt_ms is None else min(out.stun_rtt_ms, e.stun_rtt_ms)
        out.dns_queries += tuple(q for q in e.dns_queries if q not in out.dns_queries)
        out.dns_answers += e.dns_answers
        out.local_names += tuple(n for n in e.local_names if n not in out.local_names)
        out.client_cert = out.client_cert or e.client_cert
    return out


def _tcp(stream: bytes, ev: Evidence, counts: Counter) -> None:
    if not stream:
        return
    status, pro = whatsapp.parse_prologue(stream)
    if status == "ok":
        ev.wa_prologue, ev.wa_version = True, f"{pro.version[0]}.{pro.version[1]}"
        return
    hello = tlsfast.client_hello(stream)  # the common case, compiled; None: the reference decides
    status, hello = ("ok", hello) if hello is not None else tls.parse_client_hello(stream)
    if status == "ok" and hello is not None:
        ev.sni, ev.alpn = hello.sni, hello.alpn
        # TLS 1.2 sends the client's Certificate in clear in its second flight (within the
        # first packets kept); under TLS 1.3 it is encrypted and this never matches.
        if WEBHOOK_CLIENT_CERT in stream:
            ev.client_cert = WEBHOOK_CLIENT_CERT.decode()
        return
    if status in ("malformed", "need-more", "limit"):
        counts[f"tls-{status}"] += 1
        return
    ev.http_host, limited = http.request_host(stream)
    if limited:
        counts["http-limit"] += 1


def _udp(kept: FlowBytes, ev: Evidence, counts: Counter) -> None:
    asked: dict[bytes, int] = {}  # transaction id -> time the originator's request left
    for d in (0, 1):
        for ts, data in kept.datagrams[d]:
            msg = stun.parse_stun(data)
            if msg is None:
                continue
            ev.stun = True
            if msg.limited:
                counts["stun-limit"] += 1
            ev.stun_whatsapp |= msg.whatsapp
            ev.stun_mapped += tuple(f"{ip}:{port}" for ip, port in msg.mapped if f"{ip}:{port}" not in ev.stun_mapped)
            if d == 0 and msg.msg_class == "request":
                asked.setdefault(msg.transaction_id, ts)
            elif d == 1 and msg.transaction_id in asked and ts >= asked[msg.transaction_id]:
                rtt = (ts - asked[msg.transaction_id]) / 1e6  # request -> response, as seen here
                ev.stun_rtt_ms = rtt if ev.stun_rtt_ms is None else min(ev.stun_rtt_ms, rtt)
    if ev.stun or not kept.datagrams[0]:
        return
    first = kept.datagrams[0][0][1]
    if first and first[0] & 0x80:  # a QUIC long header
        status, hello, version = quic.parse_initial([data for _ts, data in kept.datagrams[0]])
        ev.quic_version = version
        if status == "ok" and hello is not None:
            ev.quic_sni = hello.sni
        elif status != "not-quic":
            counts[f"quic-{status}"] += 1


MULTICAST_NAME_PORTS = (5353, 5355)  # mDNS, LLMNR: every name in them is a local device's


def add_dns(ev: Evidence, l4: int, ts: int, data: bytes, counts: Counter, port: int = 53) -> None:
    """Dissect one DNS payload at once (UDP datagram or a TCP segment carrying whole messages).

    Unicast DNS (port 53) gives queries and answers; mDNS and LLMNR give local names only."""
    if l4 == 17:
        msg = dns.parse_dns(data)
        msgs = [] if msg is None else [msg]
        if msg is None:
            counts["dns-malformed"] += 1
    else:
        msgs, _used = dns.parse_dns_tcp(data)
    for msg in msgs:
        if not msg.complete:
            counts["dns-incomplete"] += 1
        if msg.limited:
            counts["dns-limit"] += 1
        if port in MULTICAST_NAME_PORTS:
            _add_local(ev, _multicast_names(msg), counts)
            continue
        _add_local(ev, _unicast_local_names(msg), counts)
        for name, _qtype in msg.questions:
            if name not in ev.dns_queries:
                if len(ev.dns_queries) >= MAX_FLOW_NAMES:
                    counts["dns-flow-limit"] += 1
                    break
                ev.dns_queries += (name,)
        if msg.is_response:
            found = dns.address_names(msg)
            if len(ev.dns_answers) + len(found) > MAX_FLOW_ANSWERS:
                counts["dns-flow-limit"] += 1
                continue
            ev.dns_answers += [(ts, addr, name) for addr, name in found.items()]


def _unicast_local_names(msg: dns.DnsMessage) -> list[str]:
    """Names a unicast message shows to be local: by suffix, resolving to a local address,
    or the PTR target of a local address (the reverse names are addresses: pseudonymised so)."""
    names = [q for q, _ in msg.questions if localnames.is_local_name(q) and not localnames.reverse_address(q)]
    if msg.is_response:
        names += [name for addr, name in dns.address_names(msg).items() if localnames.is_local_address(addr)]
        for r in msg.answers:
            ip = localnames.reverse_address(r.name) if r.rtype == dns.TYPE_PTR else None
            if ip and localnames.is_local_address(ip) and r.value:
                names.append(r.value)
    return names


def _multicast_names(msg: dns.DnsMessage) -> list[str]:
    names = [q for q, _ in msg.questions] + [r.name for r in msg.answers]
    names += [r.value for r in msg.answers if r.rtype in dns.NAME_TYPES]
    return [n for n in names if n and not localnames.reverse_address(n) and not localnames.is_service_type(n)]


def _add_local(ev: Evidence, names, counts: Counter) -> None:
    for name in names:
        if name not in ev.local_names:
            if len(ev.local_names) >= MAX_FLOW_NAMES:
                counts["local-names-flow-limit"] += 1
                return
            ev.local_names += (name,)


def add_dhcp(ev: Evidence, data: bytes, counts: Counter) -> None:
    """A DHCP message's host names (options 12 and 81) are local names."""
    msg = dhcp.parse_dhcp(data)
    if msg is None:
        counts["dhcp-malformed"] += 1
        return
    if msg.limited:
        counts["dhcp-limit"] += 1
    _add_local(ev, [n for n in (msg.host_name, msg.client_fqdn) if n], counts)


def for_flows(flows, collector, n_flows: int) -> list:
    """Evidence per final flow (flow_id order; None where nothing was kept), from
    `flows` (flows/merge.MergedFlows).

    A flow's records are taken in time order. Pending bytes of its records are joined
    (directions aligned to the merged flow's originator), cut to the first kept packets
    per direction, then dissected once.
    """
    mask = _kept_records(flows, collector)
    out: list = [None] * n_flows
    decided: dict[int, list] = {}
    pending: dict[int, FlowBytes] = {}
    closed: set[int] = set()
    idx, fids, swaps = flows.by_flow(mask)
    for part, serial, fid, swap in zip(flows.capture[idx].tolist(), flows.serial[idx].tolist(), fids.tolist(),
                                       swaps.tolist()):
        key = (part, serial)
        found = collector.evidence.get(key)
        if found is not None:
            decided.setdefault(fid, []).append(found)
            if key in collector.decided:
                closed.add(fid)  # its first packets were dissected: later records add nothing
        kept = collector.pending.get(key)
        if kept is not None and fid not in closed:
            into = pending.setdefault(fid, FlowBytes(kept.l4))
            for d in (0, 1):
                src = 1 - d if swap else d
                into.segments[d].extend(kept.segments[src])
                into.datagrams[d].extend(kept.datagrams[src])
    for fid, kept in pending.items():
        keep = KEEP_TCP if kept.l4 == 6 else KEEP_UDP
        for d in (0, 1):
            del kept.segments[d][keep[d]:]
            del kept.datagrams[d][keep[d]:]
        decided.setdefault(fid, []).append(extract(kept, collector.counts))
    collector.pending.clear()
    for fid, items in decided.items():
        out[fid] = merged(items)
    return out


def _kept_records(flows, collector) -> np.ndarray:
    """Which records (flows.capture, flows.serial) the collector holds evidence or bytes of:
    matched as one integer a (part, serial) key, not as 100k tuples in a set."""
    kept = [*collector.evidence, *collector.pending]
    if not kept:
        return np.zeros(len(flows.serial), dtype=bool)
    parts, serials = np.array(kept, dtype=np.int64).T
    width = int(max(serials.max(), flows.serial.max(initial=0))) + 1
    return np.isin(flows.capture * width + flows.serial, parts * width + serials)
