"""The geo stage on captures: remote side, special addresses, RTT bound, disagreements,
operators; and the physical check on real corpus calls and chats."""
from __future__ import annotations

import struct

import pandas as pd
import pytest
from conftest import CORPUS, SAMPLE

import flowscope
from flowscope.geo import physics
from flowscope.geo.stage import Place, _check
from flowscope.testing import ethernet, ipv4, tcp, write_pcap

MILAN = "45.4642,9.19"
META_EDGE = "157.240.20.53"      # DB-IP City Lite (2023-04): Frankfurt, DE
PHONE = "192.168.1.20"


def _handshake(t0: float, client: str, server: str, rtt_s: float, cport: int = 40000) -> list[tuple]:
    return [(t0, ethernet(ipv4(client, server, 6, tcp(cport, 443, flags="S", seq=1)))),
            (t0 + rtt_s, ethernet(ipv4(server, client, 6, tcp(443, cport, flags="SA", seq=9, ack=2)))),
            (t0 + rtt_s + 0.0001, ethernet(ipv4(client, server, 6, tcp(cport, 443, flags="A", seq=2, ack=10))))]


@pytest.fixture(scope="module")
def us_placing_db(tmp_path_factory):
    """A user City database that puts Meta's Frankfurt edge in the US, as some databases do."""
    mmdb_writer = pytest.importorskip("mmdb_writer")
    from netaddr import IPSet
    w = mmdb_writer.MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-City",
                               languages=["en"], description="test: Meta edge placed in the US")
    w.insert_network(IPSet(["157.240.0.0/17"]), {
        "country": {"iso_code": "US", "names": {"en": "United States"}},
        "city": {"names": {"en": "Menlo Park"}},
        "location": {"latitude": 37.4529, "longitude": -122.1817, "accuracy_radius": 1000}})
    path = tmp_path_factory.mktemp("mmdb") / "GeoLite2-City.mmdb"
    w.to_db_file(str(path))
    return str(path)


def _one(result, **match):
    f = result.flows
    for k, v in match.items():
        f = f[f[k] == v]
    assert len(f) == 1, match
    return f.iloc[0]


def test_us_placed_edge_reached_in_5_7_ms_from_italy_is_an_eu_edge(tmp_path, us_placing_db):
    cap = write_pcap(tmp_path / "edge.pcap", _handshake(1_700_000_000.0, PHONE, META_EDGE, 0.0057))
    result = flowscope.analyze(cap, geoip=[us_placing_db], vantage=MILAN)
    row = _one(result, remote_ip=META_EDGE)
    assert row.rtt_ms == pytest.approx(5.7, abs=0.01)
    assert row.max_distance_km == pytest.approx(5.7 * physics.FIBRE, abs=0.2)   # ~570 km
    assert 565 < row.max_distance_km < 575
    checks = dict(c.split("=", 1) for c in row.geo_checks.split("; "))
    assert checks["GeoLite2-City"].startswith("US ") and checks["GeoLite2-City"].endswith("impossible")
    assert checks["dbip-city-lite"].startswith("DE ") and checks["dbip-city-lite"].endswith("consistent")
    assert (row.remote_country, row.region, row.geo_consistent) == ("DE", "eu", True)
    assert row.geo_source.startswith("dbip-city-lite")
    assert "country: dbip-city-lite=DE" in row.geo_disagreement and "GeoLite2-City=US" in row.geo_disagreement
    # located in the EU, run by a US company: both facts, in separate columns
    expected = "WhatsApp LLC" if row.service.startswith("whatsapp.") else "Meta Platforms, Inc."
    assert (row.operator, row.operator_country) == (expected, "US")
    assert result.summary["geo"]["impossible"] == 0
    assert [d["name"] for d in result.summary["geo"]["databases"]] == ["dbip-city-lite", "geoip2fast-asn",
                                                                       "GeoLite2-City"]


def test_a_location_physics_rules_out_counts_in_no_region():
    us = Place("db-a", "US", "Menlo Park", 37.45, -122.18)
    chosen, ok, notes = _check([us], 5.7, physics.parse_vantage(MILAN))
    assert chosen is us and ok is False and notes.endswith("impossible")
    # a country-only answer in another country is taken, unchecked
    ie = Place("db-b", "IE", None, None, None)
    chosen, ok, notes = _check([us, ie], 5.7, physics.parse_vantage(MILAN))
    assert chosen is ie and ok is None and "db-b=IE unchecked" in notes


def test_without_vantage_the_bound_is_still_reported(tmp_path):
    cap = write_pcap(tmp_path / "edge.pcap", _handshake(1_700_000_000.0, PHONE, META_EDGE, 0.0057))
    result = flowscope.analyze(cap)
    row = _one(result, remote_ip=META_EDGE)
    assert 565 < row.max_distance_km < 575
    assert row.geo_consistent is None and row.geo_checks == ""
    assert any("--vantage" in w for w in result.summary["geo"]["warnings"])


def test_special_addresses_are_labelled_not_geolocated_and_inbound_flows_use_the_originator(tmp_path):
    pkts = _handshake(1.0, PHONE, "10.0.0.9", 0.001, 40001)            # private both sides
    pkts += _handshake(2.0, PHONE, "224.0.0.251", 0.001, 40002)        # multicast
    pkts += _handshake(3.0, PHONE, "192.0.2.7", 0.001, 40003)          # documentation
    pkts += _handshake(4.0, META_EDGE, PHONE, 0.002, 40004)            # inbound: remote is the originator
    result = flowscope.analyze(write_pcap(tmp_path / "special.pcap", pkts))
    by_remote = result.flows.set_index("remote_ip")
    assert by_remote.loc["10.0.0.9", "geo_source"] == "special:private"
    assert by_remote.loc["224.0.0.251", "geo_source"] == "special:multicast"
    assert by_remote.loc["192.0.2.7", "geo_source"] == "special:documentation"
    for ip in ("10.0.0.9", "224.0.0.251", "192.0.2.7"):
        row = by_remote.loc[ip]
        assert pd.isna(row.remote_country) and row.region == "unknown" and pd.isna(row.operator)
    inbound = by_remote.loc[META_EDGE]
    assert inbound.orig_ip == META_EDGE and inbound.remote_country == "DE"


def test_pcapdroid_tcp_rtts_are_not_trusted_but_stun_rtts_are(sample_default):
    result = sample_default
    f = result.flows
    tcp_rtt = f[(f.rtt_source == "syn/syn-ack") & ~f.remote_ip.isin(f[f.rtt_source == "stun"].remote_ip)]
    assert len(tcp_rtt) and tcp_rtt.max_distance_km.isna().all()
    stun = f[(f.rtt_source == "stun") & (f.geo_source != "special:documentation")]
    assert len(stun) and (stun.max_distance_km == (stun.rtt_ms * physics.FIBRE).round(1)).all()
    assert any("PCAPdroid" in w for w in result.summary["geo"]["warnings"])


def test_sample_pop_and_operators(sample_default):
    f = sample_default.flows
    media = f[f.hostname == "media-fra3-1.cdn.whatsapp.net"]
    assert len(media) and set(media.pop_code) == {"FRA"} and set(media.remote_city) == {"Frankfurt"}
    assert set(media.geo_source.str.split("+").str[0]) == {"pop:FRA"}
    wa = f[f.service.str.startswith("whatsapp.") & f.remote_asn.notna()]
    assert set(wa.operator) == {"WhatsApp LLC"} and set(wa.operator_country) == {"US"}


def test_no_geo_leaves_the_columns_null():
    f = flowscope.analyze(SAMPLE, geo=False).flows
    assert f.remote_ip.isna().all() and f.region.isna().all()


# ------------------------------------------------------------------- corpus: calls and chats

def _independent_rtts_ms(path) -> dict[str, dict[str, list[float]]]:
    """Every SYN -> SYN-ACK and STUN request -> response time per remote address, by dpkt."""
    import dpkt
    from conftest import corpus_ip_packets
    syn, stun_req, seen = {}, {}, {}

    def keep(ip, kind, ms):
        seen.setdefault(ip, {"tcp": [], "stun": []})[kind].append(ms)
    for ts, pkt in _timed(path, corpus_ip_packets):
        src, dst = _addr(pkt.src), _addr(pkt.dst)
        l4 = pkt.data
        if isinstance(l4, dpkt.tcp.TCP):
            flags = l4.flags & (dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK)
            if flags == dpkt.tcp.TH_SYN:
                syn.setdefault((src, l4.sport, dst, l4.dport), ts)
            elif flags == dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK and (dst, l4.dport, src, l4.sport) in syn:
                keep(src, "tcp", (ts - syn[(dst, l4.dport, src, l4.sport)]) * 1000)
        elif isinstance(l4, dpkt.udp.UDP) and len(l4.data) >= 20:
            mtype, _len, cookie = struct.unpack("!HHI", l4.data[:8])
            txid = bytes(l4.data[8:20])
            if cookie == 0x2112A442 or mtype in (0x0001, 0x0800, 0x0801, 0x0802):
                if mtype & 0x0110 == 0:  # request
                    stun_req.setdefault(txid, ts)
                elif txid in stun_req:
                    keep(src, "stun", (ts - stun_req[txid]) * 1000)
    return seen


def _timed(path, reader):
    yield from reader(path, with_ts=True)


def _addr(raw: bytes) -> str:
    import ipaddress
    return str(ipaddress.ip_address(raw))


@pytest.mark.parametrize("name", ["wa_voice.pcap", "whatsapp_login_call.pcap", "whatsappfiles.pcap",
                                  "whatsapp_login_chat.pcap"])
def test_rtt_bound_on_corpus_calls_and_chats(corpus, name):
    result = flowscope.analyze(CORPUS / "pcap" / name)
    f = result.flows
    f = f[f.service.str.startswith("whatsapp.") & f.max_distance_km.notna()]
    assert len(f), "no WhatsApp flow with an RTT"
    seen = _independent_rtts_ms(CORPUS / "pcap" / name)
    for row in f.itertuples():
        tcp_ms, stun_ms = seen[row.remote_ip]["tcp"], seen[row.remote_ip]["stun"]
        bound_ms = row.max_distance_km / physics.FIBRE
        # the bound comes from one real exchange ...
        assert any(abs(bound_ms - ms) < 0.002 for ms in tcp_ms + stun_ms), row.remote_ip
        # ... and is never tighter than the packets allow: the fastest handshake exactly, and
        # for STUN (only the first exchanges of a flow are dissected) at least the fastest one
        assert bound_ms >= min(tcp_ms + stun_ms) - 0.002, row.remote_ip
        if tcp_ms and (not stun_ms or min(tcp_ms) <= min(stun_ms)):
            assert bound_ms == pytest.approx(min(tcp_ms), abs=0.002), row.remote_ip


def test_corpus_call_relays_placed_beyond_light_are_flagged(corpus):
    """wa_voice.pcap (nDPI's tests, recorded in Pisa): DB-IP puts two call relays in Brazil and
    the US, but their STUN answers came back in 33 and 29 ms: at most ~4,900 km in vacuum."""
    f = flowscope.analyze(CORPUS / "pcap" / "wa_voice.pcap", vantage="PSA").flows.set_index("remote_ip")
    for ip, db_country in (("185.60.216.51", "BR"), ("157.240.193.48", "US")):
        row = f.loc[ip]
        assert f"dbip-city-lite={db_country} " in row.geo_checks and "impossible" in row.geo_checks
        assert row.region != "third"   # never counted where physics says it cannot be
    assert f.loc["185.60.216.51", "remote_country"] == "IE"   # GeoLite2 (geoip2fast), not ruled out
    assert f.loc["157.240.193.48", "geo_consistent"] == False  # noqa: E712 (numpy bool)
