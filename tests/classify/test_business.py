"""The Business Platform rules (issue 13): Cloud API only from a platform host, webhooks
from Meta's networks to a local server, solution providers that are not Meta."""
from __future__ import annotations

import pytest

from flowscope.classify import FlowEvidence, classify, load_catalog
from flowscope.classify.classifier import webhook_receivers
from flowscope.errors import UsageError
from flowscope.settings import Settings

GRAPH_IP = "157.240.0.17"
PLATFORM = "10.20.0.5"
PHONE = "192.168.50.23"
META_V4_HOOK = "173.252.88.10"      # in AS32934's 173.252.64.0/18
META_V6_HOOK = "2a03:2880:20ff:b::face:b00c"
NOT_META = "198.51.100.9"


@pytest.fixture(scope="module")
def cat():
    return load_catalog()


def out(ip_local, sni, remote=GRAPH_IP, **kw):
    return FlowEvidence(l4="tcp", orig_ip=ip_local, resp_ip=remote, resp_port=443, orig_port=50000, sni=sni, **kw)


def hook(src, dst=PLATFORM, **kw):
    return FlowEvidence(l4="tcp", orig_ip=src, resp_ip=dst, resp_port=443, orig_port=40000, resp_local=True, **kw)


@pytest.mark.parametrize("ev, service, evidence, confidence, is_meta, says", [
    (out(PLATFORM, "graph.facebook.com", platform_host=True), "whatsapp.business_api", "sni", "high", True,
     "platform host"),
    (out(PLATFORM, "lookaside.fbsbx.com", platform_host=True), "whatsapp.business_api", "sni", "high", True,
     "platform host"),
    (out(PHONE, "graph.facebook.com"), "meta.other", "sni", "high", True, "shared by all Graph API products"),
    (out(PHONE, "lookaside.fbsbx.com"), "meta.facebook", "sni", "high", True, "shared by all Graph API products"),
    (out(PLATFORM, "waba-v2.360dialog.io", remote=NOT_META), "whatsapp.bsp", "sni", "high", False,
     "onward leg to Meta is not visible"),
    (out(PLATFORM, "api.twilio.com", remote=NOT_META), "whatsapp.bsp", "sni", "low", False,
     "shared with SMS"),
    (out(PLATFORM, "acme42.api.infobip.com", remote=NOT_META), "whatsapp.bsp", "sni", "low", False, "Infobip Ltd"),
    (hook(META_V4_HOOK), "whatsapp.webhook", "ip-prefix", "low", True, "crawlers"),
    (hook(META_V6_HOOK), "whatsapp.webhook", "ip-prefix", "low", True, "AS32934"),
    (hook(META_V4_HOOK, client_cert="client.webhooks.fbclientcerts.com"), "whatsapp.webhook", "tls-client-cert",
     "high", True, "mTLS"),
    (hook(NOT_META), "other", "", "low", False, "no catalog match"),
    # not inbound to a local server: an outbound flow to the same Meta address is not a webhook
    (FlowEvidence(l4="tcp", orig_ip=PHONE, resp_ip=META_V4_HOOK, resp_port=443, orig_port=5), "meta.other", "ip-prefix",
     "low", True, "AS32934"),
])
def test_business_rules(cat, ev, service, evidence, confidence, is_meta, says):
    label = classify(ev, cat)
    assert (label.service, label.evidence, label.confidence, label.is_meta) == (service, evidence, confidence, is_meta)
    assert says in label.rule


def test_dns_query_for_graph_is_not_the_cloud_api(cat):
    ev = FlowEvidence(l4="udp", resp_ip="192.168.50.1", resp_port=53, dns_queries=("graph.facebook.com",))
    assert classify(ev, cat).service == "meta.other"
    ev = FlowEvidence(l4="udp", resp_ip="192.168.50.1", resp_port=53, dns_queries=("api.twilio.com",))
    assert classify(ev, cat).service == "other"


def test_webhook_receivers_are_platform_hosts(cat):
    flows = [hook(META_V4_HOOK), hook(NOT_META, dst="10.20.0.6"), out(PHONE, "graph.facebook.com")]
    assert webhook_receivers(flows, cat) == {PLATFORM}


def test_user_snapshot_replaces_the_builtin_one(tmp_path):
    path = tmp_path / "snap.toml"
    path.write_text('[[webhook_source]]\nprefix = "198.51.100.0/24"\nowner = "test"\n'
                    'source = "test snapshot"\ndate = "2027-01-02"\n')
    cat = load_catalog([path])
    assert [r.prefix for r in cat.webhook_sources] == ["198.51.100.0/24"]
    assert cat.webhook_snapshot_date() == "2027-01-02"
    assert any("webhook_source snapshot" in o for o in cat.overridden)
    assert classify(hook(NOT_META), cat).service == "whatsapp.webhook"
    assert classify(hook(META_V4_HOOK), cat).service != "whatsapp.webhook"
    assert "snapshot of 2027-01-02" in cat.to_text()


@pytest.mark.parametrize("entry, message", [
    ('pattern = "x.example"\nservice = "whatsapp.bsp"\noperator = "X"\ncountry = "DE"', "needs channel"),
    ('pattern = "x.example"\nservice = "whatsapp.bsp"\noperator = "X"\ncountry = "DEU"\nchannel = "shared"',
     "alpha-2"),
    ('pattern = "x.example"\nservice = "whatsapp.business_api"', "needs fallback"),
    ('pattern = "x.example"\nservice = "meta.other"\noperator = "X"', "for whatsapp.bsp hosts only"),
])
def test_bad_business_entries(tmp_path, entry, message):
    path = tmp_path / "bad.toml"
    path.write_text(f'[[host]]\n{entry}\nsource = "s"\ndate = "2026-01-01"\n')
    with pytest.raises(UsageError, match=message):
        load_catalog([path])


def test_platform_host_setting():
    assert Settings(platform_hosts=["10.20.0.5", "2001:db8::/64"]).platform_hosts == ("10.20.0.5/32", "2001:db8::/64")
    with pytest.raises(UsageError, match="platform host"):
        Settings(platform_hosts=["10.20.0.5/8"])
    with pytest.raises(UsageError, match="platform host"):
        Settings(platform_hosts=["nonsense"])
