"""The compiled flow table alone (flows/table.py), fed batches the real reader decoded."""
from __future__ import annotations

import numpy as np
import pytest

from flowscope.decode.layout import KEEP, KEEP_RESYNC, KEEP_STREAM
from flowscope.flows import layout as L
from flowscope.flows.table import FlowTable
from flowscope.flows.timeouts import timeouts_ns
from flowscope.settings import Settings
from flowscope.testing import decoded_batches, ethernet, ipv4, tcp, udp, write_pcap

T0 = 1_700_000_000_000_000_000
MS = 1_000_000
A, B = "10.0.0.2", "157.240.20.53"


def _table(tmp_path, packets, rows=1 << 14, keep=(4, 0, 4, 2, -1), batch=16384):
    path = write_pcap(tmp_path / "t.pcap", [(ts, ethernet(ip)) for ts, ip in packets])
    s = Settings()
    table = FlowTable(timeouts_ns(s), s.dedup_ns(), rows=rows, keep=keep)
    kept = []
    for buf, P in decoded_batches(path, batch):
        table.add(P, len(P), part=0, capture=0, buf=buf)
        kept.append(P[:, KEEP].copy())
    table.flush()
    return table.records(), np.concatenate(kept)


def _handshake(t, sport=40000, dport=5222, data=b""):
    pkts = [(t, ipv4(A, B, 6, tcp(sport, dport, flags="S", seq=99))),
            (t + MS, ipv4(B, A, 6, tcp(dport, sport, flags="SA", seq=499, ack=100))),
            (t + 2 * MS, ipv4(A, B, 6, tcp(sport, dport, flags="A", seq=100, ack=500)))]
    if data:
        pkts.append((t + 3 * MS, ipv4(A, B, 6, tcp(sport, dport, flags="PA", seq=100, ack=500, payload=data))))
    return pkts


def test_a_connection_is_one_record_with_its_originator_and_counts(tmp_path):
    R, _ = _table(tmp_path, _handshake(T0, data=b"hello"))
    assert len(R) == 1
    r = R[0]
    o, p = L.D, L.D + L.ND
    assert (r[o + L.PKTS], r[p + L.PKTS], r[o + L.PAYLOAD]) == (3, 1, 5)
    assert r[L.FIRST_PURE_SYN] == 1 and r[o + L.ISN] == 100 and r[p + L.ISN] == 500
    assert r[o + L.SYN_TS] == T0 and r[p + L.SYNACK_TS] == T0 + MS
    assert r[L.OPEN_AT_END] == 1 and r[L.END_REASON] == L.END_EOF


def test_a_new_syn_after_close_starts_a_new_record(tmp_path):
    first = _handshake(T0) + [(T0 + 5 * MS, ipv4(A, B, 6, tcp(40000, 5222, flags="R", seq=100)))]
    R, _ = _table(tmp_path, first + _handshake(T0 + 10 * MS))
    assert len(R) == 2
    assert sorted(R[:, L.END_REASON].tolist()) == [L.END_EOF, L.END_RST]


def test_an_idle_flow_ends_and_the_next_packet_starts_another(tmp_path):
    gap = int(Settings().udp_idle_s * 1e9) + MS
    pkts = [(T0, ipv4(A, B, 17, udp(5000, 3478, b"x"))), (T0 + gap, ipv4(A, B, 17, udp(5000, 3478, b"y")))]
    R, _ = _table(tmp_path, pkts)
    assert len(R) == 2 and L.END_IDLE in R[:, L.END_REASON].tolist()


def test_mirror_duplicates_are_counted_not_accounted(tmp_path):
    pkt = ipv4(A, B, 17, udp(5000, 3478, b"x"))
    R, _ = _table(tmp_path, [(T0, pkt), (T0 + 1000, pkt)])
    assert R[0, L.D + L.PKTS] == 1 and R[0, L.DUPS] == 1


def test_the_table_grows_past_its_first_size(tmp_path):
    pkts = [(T0 + k * MS, ipv4(A, B, 17, udp(1000 + k, 53, b"q"))) for k in range(300)]
    R, _ = _table(tmp_path, pkts, rows=16, batch=64)
    ports = {int(p) for p in R[:, L.K_PORTS].tolist() for p in (p >> 16, p & 0xFFFF)} - {53}
    assert len(R) == 300 and ports == set(range(1000, 1300))


@pytest.mark.parametrize("dport, walked", [(443, True), (5222, True), (8080, False)])
def test_a_connection_already_open_on_a_chat_port_is_walked(tmp_path, dport, walked):
    """No SYN: a record that began before the capture; its payload is marked for the
    resynchronising walk on 5222, 443 and 80 only."""
    pkts = [(T0 + 10 * k * MS, ipv4(A, B, 6, tcp(40000, dport, flags="PA", seq=100 + 40 * k, ack=1, payload=bytes(40))))
            for k in range(3)]
    R, keep = _table(tmp_path, pkts)
    assert (R[0, L.STREAM] == L.STREAM_RESYNC) == walked
    assert (((keep & (KEEP_STREAM | KEEP_RESYNC)) == (KEEP_STREAM | KEEP_RESYNC)).all()) == walked


def test_a_syn_started_connection_is_not_resynchronised(tmp_path):
    R, keep = _table(tmp_path, _handshake(T0, dport=443, data=bytes(40)))
    assert R[0, L.STREAM] == L.STREAM_NONE and not (keep & KEEP_RESYNC).any()
