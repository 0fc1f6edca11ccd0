"""The classifier's precedence ladder: one case per rule and per conflict between rules."""
from __future__ import annotations

import csv
import dataclasses
import ipaddress

import pytest

from flowscope.classify import (CONFIDENCES, EVIDENCE_KINDS, SERVICES, FlowEvidence, Label, classify, classify_many,
                                labels_to_columns, load_catalog)

WA_IP = "157.240.20.53"  # on Meta's 2022 WhatsApp list (157.240.20.52/31); g.whatsapp.net in 2019
META_IP = "57.144.151.32"  # Meta's 57.144.0.0/14, not on a WhatsApp list
FB_IP = "31.13.86.36"  # www.facebook.com in nDPI facebook.pcap
FB_RELAY = "31.13.86.54"  # FacebookVoip STUN in nDPI stun.pcap
META_V6 = "2a03:2880:f12d:83:face:b00c:0:25de"
AWS_GA = "3.33.221.48"  # e*.whatsapp.net via AWS Global Accelerator
SOFTLAYER = "184.173.179.37"  # WhatsApp chat in the 2015 nDPI capture
ISP_RELAY = "93.57.123.227"  # ISP-hosted WhatsApp relay, 2023 capture
PEER = "91.253.176.65"  # a call peer's own address (P2P media)
JABBER = "172.16.1.138"
THREEMA = "185.88.236.110"
SIGNAL = "35.169.3.40"
TELEGRAM = "91.108.8.1"
ZOOM = "162.255.37.14"
LAN_DNS = "192.168.2.1"
UNKNOWN = "203.0.113.5"


def tcp(ip, port=443, **kw):
    return FlowEvidence(l4="tcp", resp_ip=ip, resp_port=port, orig_port=50000, **kw)


def udp(ip, port=3478, **kw):
    return FlowEvidence(l4="udp", resp_ip=ip, resp_port=port, orig_port=50001, **kw)


# (case id, evidence, service, evidence kind, confidence, is_meta)
CASES = [
    # 1a. the WhatsApp prologue decides, whatever the address or the names
    ("prologue-meta-5222", tcp(WA_IP, 5222, wa_prologue=True), "whatsapp.chat", "wa-prologue", "high", True),
    ("prologue-aws-ga", tcp(AWS_GA, 443, wa_prologue=True), "whatsapp.chat", "wa-prologue", "high", True),
    ("prologue-softlayer", tcp(SOFTLAYER, 5222, wa_prologue=True), "whatsapp.chat", "wa-prologue", "high", True),
    ("prologue-unknown-address", tcp(UNKNOWN, 443, wa_prologue=True), "whatsapp.chat", "wa-prologue", "high", True),
    ("prologue-beats-sni", tcp(FB_IP, 443, wa_prologue=True, sni="www.instagram.com"),
     "whatsapp.chat", "wa-prologue", "high", True),
    ("prologue-beats-app", tcp(WA_IP, 443, wa_prologue=True, app="Instagram"), "whatsapp.chat", "wa-prologue", "high", True),
    # 1b. WhatsApp Web
    ("web-sni-443", tcp(META_IP, 443, sni="web.whatsapp.com"), "whatsapp.web", "sni", "high", True),
    ("web-sni-on-unknown-address", tcp(UNKNOWN, 443, sni="WEB.WhatsApp.com."), "whatsapp.web", "sni", "high", True),
    ("web-quic-sni", udp(META_IP, 443, quic_sni="web.whatsapp.com"), "whatsapp.web", "quic-sni", "high", True),
    # 1c. STUN with WhatsApp types
    ("stun-wa-meta-relay", udp(FB_RELAY, 3478, stun=True, stun_whatsapp=True), "whatsapp.call", "stun", "high", True),
    ("stun-wa-isp-relay", udp(ISP_RELAY, 3478, stun=True, stun_whatsapp=True), "whatsapp.call", "stun", "high", True),
    ("stun-wa-p2p-peer", udp(PEER, 9344, stun=True, stun_whatsapp=True), "whatsapp.call", "stun", "high", True),
    ("stun-wa-beats-app", udp(UNKNOWN, 3478, stun=True, stun_whatsapp=True, app="Messenger"),
     "whatsapp.call", "stun", "high", True),
    # 1d. plain STUN
    ("plain-stun-wa-list", udp(WA_IP, 3478, stun=True), "whatsapp.call", "stun", "medium", True),
    ("plain-stun-meta-not-wa", udp(FB_RELAY, 40003, stun=True), "meta.other", "stun", "medium", True),
    ("plain-stun-wa-app", udp(UNKNOWN, 3478, stun=True, app="WhatsApp"), "whatsapp.call", "app-uid", "medium", True),
    ("plain-stun-messenger-app", udp(FB_RELAY, 3478, stun=True, app="com.facebook.orca"),
     "meta.messenger", "app-uid", "medium", True),
    ("plain-stun-zoom", udp(ZOOM, 3478, stun=True), "other", "port", "low", False),
    ("plain-stun-google", udp("74.125.247.128", 3478, stun=True, sni=None), "other", "port", "low", False),
    # 2. DNS flows: the query leaks the intent
    ("dns-query-g", udp(LAN_DNS, 53, dns_queries=("g.whatsapp.net",)), "whatsapp.other", "dns", "medium", True),
    ("dns-query-media", udp(LAN_DNS, 53, dns_queries=("media-mxp1-1.cdn.whatsapp.net",)),
     "whatsapp.other", "dns", "medium", True),
    ("dns-query-facebook", udp(LAN_DNS, 53, dns_queries=("www.facebook.com",)), "meta.other", "dns", "medium", True),
    ("dns-query-whatsapp-first", udp(LAN_DNS, 53, dns_queries=("www.facebook.com", "mmg.whatsapp.net")),
     "whatsapp.other", "dns", "medium", True),
    ("dns-query-tcp", tcp(LAN_DNS, 53, dns_queries=("e12.whatsapp.net",)), "whatsapp.other", "dns", "medium", True),
    ("dns-query-unrelated", udp(LAN_DNS, 53, dns_queries=("zoom.us",)), "other", "", "low", False),
    ("dns-no-queries", udp(LAN_DNS, 53), "other", "", "low", False),
    # 3. names
    ("sni-instagram-on-facebook-address", tcp(FB_IP, 443, sni="scontent-mxp1-1.cdninstagram.com"),
     "meta.instagram", "sni", "high", True),
    ("sni-facebook", tcp(FB_IP, 443, sni="www.facebook.com"), "meta.facebook", "sni", "high", True),
    ("sni-media", tcp(WA_IP, 443, sni="mmg.whatsapp.net"), "whatsapp.media", "sni", "high", True),
    ("sni-media-on-fna-cache", tcp(UNKNOWN, 443, sni="scontent.fmxp1-1.fna.fbcdn.net"), "meta.facebook", "sni", "high", True),
    ("sni-messenger", tcp(META_IP, 443, sni="edge-mqtt.facebook.com"), "meta.messenger", "sni", "high", True),
    ("sni-threads", tcp(META_IP, 443, sni="www.threads.net"), "meta.threads", "sni", "high", True),
    ("sni-beats-dns-name", tcp(WA_IP, 443, sni="www.instagram.com", dns_name="g.whatsapp.net"),
     "meta.instagram", "sni", "high", True),
    ("sni-unknown-falls-to-dns-name", tcp(WA_IP, 443, sni="example.org", dns_name="pps.whatsapp.net"),
     "whatsapp.media", "dns", "medium", True),
    ("sni-beats-app", tcp(META_IP, 443, sni="graph.facebook.com", app="WhatsApp"), "meta.other", "sni", "high", True),
    ("quic-sni", udp("69.171.250.15", 443, quic_sni="graph.facebook.com"), "meta.other", "quic-sni", "high", True),
    ("http-host-with-port", tcp("82.85.26.162", 80, http_host="photos-g.ak.instagram.com:80"),
     "meta.instagram", "http-host", "medium", True),
    ("http-host-beats-dns-name", tcp(UNKNOWN, 80, http_host="www.facebook.com", dns_name="mmg.whatsapp.net"),
     "meta.facebook", "http-host", "medium", True),
    ("dns-name-chat-no-prologue", tcp(WA_IP, 5222, dns_name="g.whatsapp.net"), "whatsapp.chat", "dns", "medium", True),
    ("dns-name-e-on-aws", tcp(AWS_GA, 443, dns_name="e7.whatsapp.net"), "whatsapp.chat", "dns", "medium", True),
    # 4. the PCAPdroid app
    ("app-whatsapp-tcp", tcp(UNKNOWN, 443, app="WhatsApp"), "whatsapp.other", "app-uid", "medium", True),
    ("app-whatsapp-udp-no-stun", udp(UNKNOWN, 40000, app="com.whatsapp"), "whatsapp.other", "app-uid", "medium", True),
    ("app-instagram-beats-address", tcp(WA_IP, 443, app="Instagram"), "meta.instagram", "app-uid", "medium", True),
    ("app-threads-truncated", tcp(UNKNOWN, 443, app="com.instagram.barcel"), "meta.threads", "app-uid", "medium", True),
    ("app-unknown-falls-to-address", tcp(META_IP, 443, app="Chrome"), "meta.other", "ip-prefix", "low", True),
    ("app-non-meta", tcp(SIGNAL, 443, app="Signal", sni="textsecure-service.whispersystems.org"),
     "other", "", "low", False),
    # 5. addresses, ASN, ports
    ("prefix-wa-list", tcp(WA_IP, 443), "whatsapp.other", "ip-prefix", "low", True),
    ("prefix-meta", tcp(META_IP, 443), "meta.other", "ip-prefix", "low", True),
    ("prefix-meta-v6", tcp(META_V6, 443), "meta.other", "ip-prefix", "low", True),
    ("prefix-aws-ga", tcp(AWS_GA, 443), "whatsapp.chat", "ip-prefix", "low", True),
    ("prefix-unknown-sni-on-meta", tcp(META_IP, 443, sni="example.org"), "meta.other", "ip-prefix", "low", True),
    ("prefix-historic-softlayer", tcp(SOFTLAYER, 443), "whatsapp.other", "ip-prefix", "low", True),
    ("historic-not-refined-by-port", tcp(SOFTLAYER, 5222), "whatsapp.other", "ip-prefix", "low", True),
    ("port-5222-on-meta", tcp(META_IP, 5222), "whatsapp.chat", "port", "low", True),
    ("port-5222-on-wa-list", tcp(WA_IP, 5222), "whatsapp.chat", "port", "low", True),
    ("port-3478-udp-relay-no-stun", udp("31.13.93.48", 3478), "whatsapp.call", "port", "low", True),
    # 6. negatives from the corpus stay "other"
    ("xmpp-5222-jabber", tcp(JABBER, 5222), "other", "port", "low", False),
    ("xmpp-5222-threema", tcp(THREEMA, 5222), "other", "port", "low", False),
    ("signal", tcp(SIGNAL, 443, sni="textsecure-service.whispersystems.org"), "other", "", "low", False),
    ("telegram", udp(TELEGRAM, 533), "other", "", "low", False),
    ("zoom-sni", tcp("52.202.62.236", 443, sni="www3.zoom.us"), "other", "", "low", False),
    ("zoom-udp", udp("109.94.160.99", 8801), "other", "", "low", False),
    ("nothing", FlowEvidence(), "other", "", "low", False),
]


@pytest.fixture(scope="module")
def cat():
    return load_catalog()


@pytest.mark.parametrize("ev, service, evidence, confidence, is_meta", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_precedence(cat, ev, service, evidence, confidence, is_meta):
    label = classify(ev, cat)
    assert (label.service, label.evidence, label.confidence, label.is_meta) == (service, evidence, confidence, is_meta), \
        label.rule
    assert label.service in SERVICES and label.evidence in EVIDENCE_KINDS + ("",) and label.confidence in CONFIDENCES
    assert (label.evidence == "") == (label.rule == "no catalog match")
    assert label.rule


def test_classify_many_equals_classify(cat):
    evidences = [c[1] for c in CASES]
    assert classify_many(evidences, cat) == [classify(ev, cat) for ev in evidences]
    assert classify_many(iter(evidences), cat) == classify_many(evidences, cat)
    assert classify_many([], cat) == []


def test_classify_many_computes_addresses_once(cat, monkeypatch):
    calls = []
    real = type(cat).match_address_ids
    monkeypatch.setattr(type(cat), "match_address_ids", lambda self, ips, *a: calls.append(len(ips)) or real(self, ips, *a))
    classify_many([c[1] for c in CASES] * 100, cat)
    assert calls == [len(CASES) * 100]


def test_hostname_order(cat):
    assert classify(tcp(WA_IP, sni="a.test", quic_sni="b.test", http_host="c.test", dns_name="d.test"), cat).hostname == "a.test"
    assert classify(tcp(WA_IP, quic_sni="b.test", http_host="c.test", dns_name="d.test"), cat).hostname == "b.test"
    assert classify(tcp(WA_IP, http_host="c.test:8080", dns_name="d.test"), cat).hostname == "c.test:8080"
    assert classify(tcp(WA_IP, dns_name="d.test"), cat).hostname == "d.test"
    assert classify(tcp(WA_IP), cat).hostname == ""
    dns = classify(udp(LAN_DNS, 53, dns_queries=("zoom.us", "mmg.whatsapp.net")), cat)
    assert dns.hostname == ""  # a resolver has no name of its own; the queries are a column of their own
    assert classify(udp(LAN_DNS, 53, dns_queries=("zoom.us",)), cat).hostname == ""


def test_rule_is_an_audit_trail(cat):
    media = classify(tcp(WA_IP, sni="mmg.whatsapp.net"), cat).rule
    assert media.startswith("host mmg*.whatsapp.net [source: ") and "; date: 2026-11-28]" in media
    assert "57.144.0.0/14" in classify(tcp(META_IP), cat).rule
    assert "historic" in classify(tcp(SOFTLAYER), cat).rule
    assert "port tcp/5222" in classify(tcp(JABBER, 5222), cat).rule and "not applied" in classify(tcp(JABBER, 5222), cat).rule
    assert "(host g.whatsapp.net [source: wire-and-geo-brief" in classify(udp(LAN_DNS, 53, dns_queries=("g.whatsapp.net",)), cat).rule
    aws = classify(tcp(AWS_GA), cat).rule
    assert "ndpi_whatsapp_match.c.inc @de48a9a015b8c291a1de42b4822c70e9a36d7806" in aws and "date: 2022-12-07" in aws


def test_historic_lists_can_be_ignored(cat):
    assert classify(tcp(SOFTLAYER, 443), cat, include_historic=False).service == "other"
    assert classify(tcp("31.13.64.51", 443), cat).service == "whatsapp.other"  # 2016 WhatsApp host
    assert classify(tcp("31.13.64.51", 443), cat, include_historic=False).service == "meta.other"
    many = classify_many([tcp(SOFTLAYER, 443), tcp("31.13.64.51", 443)], cat, include_historic=False)
    assert [x.service for x in many] == ["other", "meta.other"]


@pytest.mark.parametrize("name", [
    "<script>alert(1)</script>.whatsapp.net", "x\\.y.whatsapp.net", "a\x00b.whatsapp.net", "{{7*7}}.whatsapp.net",
    "$(rm -rf /).whatsapp.net", "%s%s%n.whatsapp.net", "a" * 10_000 + ".whatsapp.net",
])
def test_hostile_names_are_compared_not_evaluated(cat, name):
    for ev, evidence in ((tcp(UNKNOWN, sni=name), "sni"), (udp(UNKNOWN, 443, quic_sni=name), "quic-sni"),
                         (tcp(UNKNOWN, 80, http_host=name), "http-host"), (tcp(UNKNOWN, dns_name=name), "dns")):
        label = classify(ev, cat)
        assert (label.service, label.evidence) == ("whatsapp.other", evidence)
        assert label.hostname == name  # returned as given; escaping is the report's job
        assert name not in label.rule
    dns = classify(udp(LAN_DNS, 53, dns_queries=(name,)), cat)
    assert (dns.service, dns.evidence, dns.hostname) == ("whatsapp.other", "dns", "")  # names: dns_queries
    assert name not in dns.rule


@pytest.mark.parametrize("ev", [
    tcp(UNKNOWN, 80, http_host="[::1"), tcp(UNKNOWN, 80, http_host=":::"), tcp(UNKNOWN, 80, http_host=""),
    tcp("not an address"), tcp("", 0), udp(LAN_DNS, 53, dns_queries=("", ".", "..")),
    FlowEvidence(l4="icmp", resp_ip=FB_IP), FlowEvidence(l4="sctp", resp_ip="::1", resp_port=5222),
])
def test_odd_inputs_do_not_raise(cat, ev):
    label = classify(ev, cat)
    assert label.service in SERVICES


def test_asn_evidence_from_user_prefix(tmp_path):
    user = tmp_path / "rib.toml"
    user.write_text('[[prefix]]\nprefix = "198.51.100.0/24"\nowner = "announced by AS32934 (lab RIB)"\nasn = 32934\n'
                    'source = "lab RIB dump 2026-11-20"\ndate = "2026-11-20"\n'
                    '[[prefix]]\nprefix = "192.0.2.0/24"\nowner = "Example"\nasn = 64500\nmeta = false\n'
                    'source = "lab"\ndate = "2026-11-20"\n', encoding="utf-8")
    cat = load_catalog([user])
    label = classify(tcp("198.51.100.7", 443), cat)
    assert (label.service, label.evidence, label.confidence, label.is_meta) == ("meta.other", "asn", "low", True)
    assert "AS32934" in label.rule
    assert classify(tcp("198.51.100.7", 5222), cat).service == "whatsapp.chat"  # port refines a Meta ASN address
    other = classify(tcp("192.0.2.9", 443), cat)
    assert (other.service, other.evidence, other.is_meta) == ("other", "ip-prefix", False)  # a rule did match


def test_labels_to_columns(cat):
    labels = classify_many([c[1] for c in CASES[:3]], cat)
    cols = labels_to_columns(labels)
    assert list(cols) == [f.name for f in dataclasses.fields(Label)]
    assert cols["service"] == [x.service for x in labels] and len(cols["rule"]) == 3


def test_evidence_and_label_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        FlowEvidence().sni = "x"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        Label("other", False, "", "ip-prefix", "low", "x").service = "meta.other"  # type: ignore[misc]


# ----------------------------------------------------------------------------- the real corpus

NEGATIVE_PCAPS = {"signal.pcap", "telegram.pcap", "threema.pcap", "zoom.pcap", "jabber.pcap"}


def corpus_evidence(row) -> tuple[FlowEvidence, str]:
    """Name/address/port evidence for one nDPI truth row (no protocol flags: nDPI's verdicts are not inputs)."""
    a, b = (row["src"], int(row["sport"] or 0)), (row["dst"], int(row["dport"] or 0))

    def private(ip):
        try:
            return ipaddress.ip_address(ip).is_private
        except ValueError:
            return True
    if private(b[0]) and not private(a[0]) or (private(a[0]) == private(b[0]) and 0 < a[1] < b[1]):
        a, b = b, a  # b is the responder: the public side, else the lower port
    host, proto, l4 = row["hostname_sni"] or None, row["proto"], row["l4"].lower()
    kw = {}
    if b[1] == 53 and host:
        kw["dns_queries"] = (host,)
    elif "QUIC" in proto:
        kw["quic_sni"] = host
    elif "TLS" in proto:
        kw["sni"] = host
    elif "HTTP" in proto:
        kw["http_host"] = host
    return FlowEvidence(l4=l4, resp_ip=b[0], resp_port=b[1], orig_port=a[1], stun="STUN" in proto, **kw), b[0]


def test_corpus_negatives_stay_other(corpus):
    rows = [r for r in csv.DictReader((corpus / "truth_flows.csv").open()) if r["pcap"] in NEGATIVE_PCAPS]
    assert len(rows) > 50
    cat = load_catalog()
    labels = classify_many([corpus_evidence(r)[0] for r in rows], cat)
    wrong = [(r["pcap"], r["dst"], r["dport"], x.service, x.rule) for r, x in zip(rows, labels)
             if x.service != "other" or x.is_meta]
    assert wrong == []
    assert any(x.evidence == "port" for x in labels)  # XMPP/Threema on 5222 and Zoom STUN on 3478 were seen


def test_corpus_meta_addresses_are_meta(corpus):
    """Every flow nDPI ties to Meta by server address is Meta's here too, from the address alone."""
    rows = [r for r in csv.DictReader((corpus / "truth_flows.csv").open()) if r["meta_ip"] == "True"]
    assert len(rows) > 100
    cat = load_catalog()
    servers = [corpus_evidence(r)[1] for r in rows]
    matched = cat.match_addresses(servers)
    missing = sorted({ip for ip, m in zip(servers, matched) if m is None or not (m.meta or m.service != "other")})
    assert missing == []


def test_corpus_names_agree_with_ndpi(corpus):
    """Flows nDPI labels by host name (WhatsApp, WhatsAppFiles, Facebook, Instagram) get the same family here."""
    family = {"WhatsApp": "whatsapp", "WhatsAppFiles": "whatsapp", "Facebook": "meta", "Instagram": "meta"}
    rows = [r for r in csv.DictReader((corpus / "truth_flows.csv").open())
            if r["app"] in family and r["hostname_sni"] and "ip_match" in r]
    assert len(rows) > 20
    cat = load_catalog()
    labels = classify_many([corpus_evidence(r)[0] for r in rows], cat)
    wrong = [(r["hostname_sni"], r["app"], x.service) for r, x in zip(rows, labels)
             if not x.service.startswith(family[r["app"]] + ".")]
    assert wrong == []
