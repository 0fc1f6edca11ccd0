"""The payload collector (what leaves the read buffer) and the evidence join across parts,
driven by batches the real reader decoded (flowscope.testing.decoded_batches)."""
from __future__ import annotations

import numpy as np

from flowscope.dissect import evidence as ev
from flowscope.dissect.collect import PayloadCollector
from flowscope.flows.merge import MergedFlows, merge_parts
from flowscope.flows.table import FlowTable
from flowscope.flows.timeouts import timeouts_ns
from flowscope.settings import Settings
from flowscope.testing import decoded_batches, ethernet, ipv4, tcp, tls_client_hello, write_pcap

T0 = 1_700_000_000_000_000_000
MS = 1_000_000
A, B = "10.0.0.2", "157.240.20.53"


def _https(t, sport=40000):
    hello = tls_client_hello("web.whatsapp.com")
    return [(t, ipv4(A, B, 6, tcp(sport, 443, flags="S", seq=99))),
            (t + MS, ipv4(B, A, 6, tcp(443, sport, flags="SA", seq=499, ack=100))),
            (t + 2 * MS, ipv4(A, B, 6, tcp(sport, 443, flags="A", seq=100, ack=500))),
            (t + 3 * MS, ipv4(A, B, 6, tcp(sport, 443, flags="PA", seq=100, ack=500, payload=hello)))]


def _read(tmp_path, name, packets, part, collector):
    path = write_pcap(tmp_path / name, [(ts, ethernet(ip)) for ts, ip in packets])
    s = Settings()
    table = FlowTable(timeouts_ns(s), s.dedup_ns(), keep=collector.keep)
    for buf, P in decoded_batches(path):
        table.add(P, len(P), part=part, capture=part, buf=buf)
        collector(buf, P, part)
    table.flush()
    return table.records()


def test_the_client_s_first_payload_is_kept_until_it_is_dissected(tmp_path):
    """A SYN record's client sent one segment (the hello): it waits, copied out of the read
    buffer, until the record's first packets are complete or the run ends; then the
    dissectors see it once. The server's SYN-ACK and the ACKs carry no payload: not kept."""
    c = PayloadCollector(parts=1)
    records = _read(tmp_path, "a.pcap", _https(T0), 0, c)
    assert list(c.pending) == [(0, 0)] and c.counts["payload-packets-kept"] == 1
    kept = c.pending[(0, 0)]
    assert len(kept.segments[0]) == 1 and kept.segments[0][0][1].startswith(b"\x16\x03")
    merged, dest = merge_parts(records, timeouts_ns(Settings()))
    out = ev.for_flows(MergedFlows.of(records, dest, merged), c, 1)
    assert out[0].sni == "web.whatsapp.com" and not c.pending


def test_evidence_of_a_flow_split_across_parts_is_joined_once(tmp_path):
    """The hello's record continues in a second part: the merge joins the records, and the
    evidence is that of one flow (the SNI once), not of two."""
    pkts = _https(T0)
    c = PayloadCollector(parts=2, continuation_ns=int(timeouts_ns(Settings()).max()))
    r0 = _read(tmp_path, "a.pcap", pkts[:3], 0, c)
    r1 = _read(tmp_path, "b.pcap", pkts[3:], 1, c)
    records = np.concatenate([r0, r1])
    merged, dest = merge_parts(records, timeouts_ns(Settings()))
    assert len(merged) == 1
    flows = MergedFlows.of(records, dest, merged)
    out = ev.for_flows(flows, c, 1)
    assert out[0] is not None and out[0].sni == "web.whatsapp.com"


def test_merged_evidence_keeps_the_first_name_and_ors_the_flags():
    a, b = ev.Evidence(sni="a.example", stun=False), ev.Evidence(sni="b.example", stun=True, dns_queries=("x",))
    m = ev.merged([a, b])
    assert (m.sni, m.stun, m.dns_queries) == ("a.example", True, ("x",))
