"""classify_columns decides once per distinct decision: it must give every flow the label a
decision of its own gives (classify: no sharing), whatever the flows share."""
from __future__ import annotations

import dataclasses
import itertools
import random

import pytest

from flowscope.classify import FlowEvidence, classify, load_catalog
from flowscope.classify.classifier import classify_columns

# addresses: WhatsApp and Meta prefixes (two in one prefix), a webhook source, local, unknown
IPS = ["157.240.20.53", "157.240.20.52", "57.144.151.32", "31.13.86.36", "2a03:2880:f12d:83:face:b00c:0:25de",
       "3.33.221.48", "192.168.2.1", "10.0.0.7", "203.0.113.5", "173.252.127.1"]
NAMES = [None, "web.whatsapp.com", "mmg.whatsapp.net", "graph.facebook.com", "api.twilio.com", "example.org"]
APPS = [None, "com.whatsapp", "com.facebook.orca", "org.example"]


@pytest.fixture(scope="module")
def cat():
    return load_catalog()


def _random_flows(seed: int, n: int) -> list[FlowEvidence]:
    rng = random.Random(seed)
    flows = []
    for _ in range(n):
        l4 = rng.choice(["tcp", "udp", "icmp"])
        flows.append(FlowEvidence(
            l4=l4, resp_ip=rng.choice(IPS), orig_ip=rng.choice(IPS), resp_port=rng.choice([443, 5222, 3478, 53, 80]),
            orig_port=rng.choice([53, 50000, 40001]), app=rng.choice(APPS), wa_prologue=rng.random() < 0.1,
            stun=rng.random() < 0.2, stun_whatsapp=rng.random() < 0.1, sni=rng.choice(NAMES),
            quic_sni=rng.choice(NAMES), http_host=rng.choice(NAMES + ["mmg.whatsapp.net:443"]),
            dns_name=rng.choice(NAMES), dns_queries=tuple(rng.sample(NAMES[1:], rng.choice([0, 0, 1, 2]))),
            resp_local=rng.random() < 0.3, platform_host=rng.random() < 0.2,
            client_cert=rng.choice([None, "client.webhooks.fbclientcerts.com"])))
    return flows


@pytest.mark.parametrize("seed", range(5))
def test_shared_decisions_equal_own_decisions(cat, seed):
    flows = _random_flows(seed, 400)
    flows += [dataclasses.replace(f, resp_ip="157.240.20.52", orig_port=60000) for f in flows[:50]]
    # twins that differ from a flow in one field only: a field left out of the decision key
    # would give the twin its sibling's label
    other = _random_flows(seed + 100, 60)
    flows += [dataclasses.replace(f, **{name: getattr(o, name)}) for f, o in zip(flows[:60], other)
              for name in (fld.name for fld in dataclasses.fields(FlowEvidence))]
    columns = {f.name: [getattr(ev, f.name) for ev in flows] for f in dataclasses.fields(FlowEvidence)}
    assert classify_columns(columns, cat) == [classify(ev, cat) for ev in flows]


def test_every_field_is_either_decisive_or_only_matched(cat):
    """A flow field _decide reads must be in the decision key; the rest reach it only
    through the prefix and webhook-source matches (or, for orig_port, DNS's port)."""
    from flowscope.classify.classifier import _DECISION_FIELDS, _FIELDS
    matched = {"resp_ip", "orig_ip", "orig_port", "resp_local"}
    assert set(_FIELDS) == set(_DECISION_FIELDS) | matched


def test_missing_columns_take_defaults(cat):
    got = classify_columns({"resp_ip": ["157.240.20.53"], "resp_port": [5222], "l4": ["tcp"],
                            "orig_ip": ["192.168.1.2"]}, cat)
    want = classify(FlowEvidence(l4="tcp", resp_ip="157.240.20.53", resp_port=5222, orig_ip="192.168.1.2"), cat)
    assert got == [want]


def test_label_objects_are_shared_between_alike_flows(cat):
    flows = [FlowEvidence(l4="tcp", resp_ip=ip, resp_port=443, orig_port=port, sni="mmg.whatsapp.net")
             for ip, port in itertools.product(["157.240.20.53", "157.240.20.52"], [40000, 40001])]
    columns = {f.name: [getattr(ev, f.name) for ev in flows] for f in dataclasses.fields(FlowEvidence)}
    labels = classify_columns(columns, cat)
    assert len({id(lb) for lb in labels}) == 1 and labels[0].evidence == "sni"
