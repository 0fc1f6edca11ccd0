"""The synthetic company capture (captures/make_company.py) against its truth: every flow's
service, operator and country, and the API calls and webhook deliveries cut from its TLS records."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import flowscope

pytestmark = pytest.mark.slow  # not in `make check` (whole analyses, browsers, live capture)

ROOT = Path(__file__).resolve().parent.parent
PCAP = ROOT / "captures" / "company_session.pcap"
TRUTH = json.loads((ROOT / "captures" / "company_session.truth.json").read_text())


@pytest.fixture(scope="module")
def result():
    return flowscope.analyze(PCAP)


def _key(row):
    return (row["orig_ip"], int(row["orig_port"]), row["resp_ip"], int(row["resp_port"]))


def test_truth_is_synthetic_and_small():
    assert TRUTH["synthetic"] is True and "SYNTHETIC" in TRUTH["description"]
    assert PCAP.stat().st_size < 300_000


def test_every_flow_has_its_service_operator_and_country(result):
    flows = {_key(r): r for r in result.flows.to_dict("records")}
    assert set(flows) == {_key(t) for t in TRUTH["flows"]}
    for t in TRUTH["flows"]:
        got = flows[_key(t)]
        assert (got["service"], got["operator"], got["operator_country"]) == \
            (t["service"], t["operator"], t["operator_country"]), (t["note"], got["catalog_rule"])


def test_the_phones_graph_api_flow_is_not_the_cloud_api(result):
    phone = result.flows[(result.flows.orig_ip == TRUTH["phone"]) & (result.flows.hostname == "graph.facebook.com")]
    assert len(phone) == 1
    assert phone.service.iloc[0] == "meta.other"
    assert "shared by all Graph API products" in phone.catalog_rule.iloc[0]


def test_providers_are_not_meta_and_say_the_onward_leg_is_hidden(result):
    bsp = result.flows[result.flows.service == "whatsapp.bsp"]
    assert len(bsp) == 2 and not bsp.is_meta.any()
    assert bsp.catalog_rule.str.contains("onward leg to Meta is not visible").all()
    assert set(bsp[bsp.confidence == "low"].hostname) == {"api.twilio.com"}


def test_mtls_certificate_is_evidence(result):
    cert = result.flows[result.flows.evidence == "tls-client-cert"]
    assert len(cert) == 1 and cert.confidence.iloc[0] == "high"


def test_api_calls_and_webhooks_per_flow(result):
    flows = {_key(r): r["flow_id"] for r in result.flows.to_dict("records")}
    events = result.events
    for t in TRUTH["flows"]:
        mine = events[events.flow_id == flows[_key(t)]]
        assert (mine.kind == "api-call").sum() == t["api_calls"], t["note"]
        assert (mine.kind == "webhook").sum() == t["webhooks"], t["note"]
    assert set(events[events.kind == "api-call"].direction) == {"up"}
    assert set(events[events.kind == "webhook"].direction) == {"down"}


def _without_webhooks(path: Path) -> Path:
    """The company capture with every packet from or to a webhook source cut out."""
    import ipaddress
    import struct
    hooks = {ipaddress.ip_address(t["orig_ip"]).packed for t in TRUTH["flows"] if t["service"] == "whatsapp.webhook"}
    data = PCAP.read_bytes()
    out, pos = [data[:24]], 24
    while pos < len(data):
        n = struct.unpack_from("<I", data, pos + 8)[0]
        frame = data[pos + 16:pos + 16 + n]
        ip = frame[14:]
        src, dst = (ip[12:16], ip[16:20]) if ip[0] >> 4 == 4 else (ip[8:24], ip[24:40])
        if src not in hooks and dst not in hooks:
            out.append(data[pos:pos + 16 + n])
        pos += 16 + n
    path.write_bytes(b"".join(out))
    return path


def test_without_webhooks_only_a_given_platform_host_calls_the_cloud_api(tmp_path):
    cut = _without_webhooks(tmp_path / "no-webhooks.pcap")
    for given, expected, calls in (((), "meta.other", 0), (("10.20.0.0/24",), "whatsapp.business_api", 6)):
        result = flowscope.analyze(cut, platform_hosts=given)
        flows = result.flows
        assert "whatsapp.webhook" not in set(flows.service)
        graph = flows[(flows.orig_ip == "10.20.0.5") & (flows.hostname == "graph.facebook.com")]
        assert len(graph) == 2 and set(graph.service) == {expected}
        # a Cloud API name from a host not (yet) known as a platform host is not walked at all
        assert graph.frames_up.notna().sum() == (2 if given else 0)
        assert (result.events[result.events.flow_id.isin(graph.flow_id)].kind == "api-call").sum() == calls


def test_a_platform_host_holding_a_chat_connection_is_the_on_premises_api(tmp_path, key_file):
    """Naming the phone as a platform host (as an auditor might by mistake, or for a server
    running the old On-Premises client): its chat flow stays whatsapp.chat, with the finding."""
    result = flowscope.analyze(PCAP, platform_hosts=[TRUTH["phone"]])
    chat = result.flows[result.flows.service == "whatsapp.chat"]
    assert len(chat) == 1 and "legacy On-Premises API" in chat.catalog_rule.iloc[0]
    assert "2025-10-23" in chat.catalog_rule.iloc[0]
    out = tmp_path / "out"
    result.write(out, pseudonym_key=key_file, pdf=False)
    html = (out / "report.html").read_text()
    assert "Legacy On-Premises API" in html and "stopped working on 2025-10-23" in html
    assert TRUTH["phone"] not in html  # the given platform host is pseudonymised like a local address
