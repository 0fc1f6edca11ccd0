"""Per-flow evidence from the kept payload bytes: run the dissectors once per finished flow.

Partial records of one flow (from consecutive files) are combined first, their directions
aligned to the merged flow's originator. Malformed input is counted per reason, never
raised (`counts`), so summary.json can say how much each dissector had to skip.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from flowscope.dissect import dns, http, quic, stun, tls, whatsapp
from flowscope.dissect.collect import DNS_PORT, FlowBytes


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
    dns_queries: tuple = ()
    dns_answers: list = field(default_factory=list)  # (ts_ns, address, queried name)


def reassemble(segments: list[tuple[int, bytes]], limit: int = 16 << 10) -> bytes:
    """Contiguous stream from the lowest sequence number; overlaps taken once; stops at a gap."""
    if not segments:
        return b""
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


def combine(parts: list[tuple[FlowBytes, bool]]) -> FlowBytes:
    """Join partial records in time order; `swapped` flips a record's directions."""
    if len(parts) == 1 and not parts[0][1]:
        return parts[0][0]
    out = FlowBytes()
    for kept, swapped in parts:
        for d in (0, 1):
            src = 1 - d if swapped else d
            out.segments[d].extend(kept.segments[src])
            out.datagrams[d].extend(kept.datagrams[src])
    return out


def extract(kept: FlowBytes, l4: str, orig_port: int, resp_port: int, counts: Counter) -> Evidence:
    ev = Evidence()
    if resp_port == DNS_PORT or orig_port == DNS_PORT:
        _dns(kept, l4, ev, counts)
    elif l4 == "tcp":
        _tcp(reassemble(kept.segments[0]), ev, counts)
    elif l4 == "udp":
        _udp(kept, resp_port, ev, counts)
    return ev


def _tcp(stream: bytes, ev: Evidence, counts: Counter) -> None:
    if not stream:
        return
    status, pro = whatsapp.parse_prologue(stream)
    if status == "ok":
        ev.wa_prologue, ev.wa_version = True, f"{pro.version[0]}.{pro.version[1]}"
        return
    status, hello = tls.parse_client_hello(stream)
    if status == "ok" and hello is not None:
        ev.sni, ev.alpn = hello.sni, hello.alpn
        return
    if status in ("malformed", "need-more"):
        counts[f"tls-{status}"] += 1
        return
    ev.http_host = http.http_host(stream)


def _udp(kept: FlowBytes, resp_port: int, ev: Evidence, counts: Counter) -> None:
    for d in (0, 1):
        for _ts, data in kept.datagrams[d]:
            msg = stun.parse_stun(data)
            if msg is None:
                continue
            ev.stun = True
            ev.stun_whatsapp |= msg.whatsapp
            ev.stun_mapped += tuple(f"{ip}:{port}" for ip, port in msg.mapped if f"{ip}:{port}" not in ev.stun_mapped)
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


def _dns(kept: FlowBytes, l4: str, ev: Evidence, counts: Counter) -> None:
    messages = []
    if l4 == "udp":
        for d in (0, 1):
            for ts, data in kept.datagrams[d]:
                msg = dns.parse_dns(data)
                if msg is None:
                    counts["dns-malformed"] += 1
                else:
                    messages.append((ts, msg))
    elif l4 == "tcp":
        for d in (0, 1):
            msgs, _used = dns.parse_dns_tcp(reassemble(kept.segments[d]))
            messages += [(None, m) for m in msgs]
    queries = []
    for ts, msg in messages:
        for name, _qtype in msg.questions:
            if name not in queries:
                queries.append(name)
        if msg.is_response and ts is not None:
            ev.dns_answers += [(ts, addr, name) for addr, name in dns.address_names(msg).items()]
    ev.dns_queries = tuple(queries)


def for_flows(records, dest, flow_of_merged, merged_orig_is_a, kept: dict, l4, orig_port, resp_port,
              counts: Counter) -> list[Evidence]:
    """Evidence per final flow (flow_id order) from the partial records' kept bytes.

    records: partial records (CAPTURE, SERIAL, ORIG_IS_A columns); dest[k]: merged row of
    record k; flow_of_merged[m]: flow_id of merged row m.
    """
    from flowscope.flows.layout import CAPTURE, ORIG_IS_A, PART, SERIAL
    parts: dict[int, list] = {}
    order = sorted(range(len(records)), key=lambda k: (records[k, PART], records[k, SERIAL]))
    for k in order:
        got = kept.get((int(records[k, CAPTURE]), int(records[k, SERIAL])))
        if got is None:
            continue
        m = int(dest[k])
        swapped = bool(records[k, ORIG_IS_A] != merged_orig_is_a[m])
        parts.setdefault(int(flow_of_merged[m]), []).append((got, swapped))
    out = []
    for fid in range(len(l4)):
        got = parts.get(fid)
        out.append(extract(combine(got), l4[fid], orig_port[fid], resp_port[fid], counts) if got else Evidence())
    return out
