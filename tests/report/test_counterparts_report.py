"""Counterparts count people once: relays once per call, not once per leg (corpus captures
with several relay legs), and people kept apart from infrastructure."""
from __future__ import annotations

import json

import pytest

import flowscope

pytestmark = pytest.mark.slow  # not in `make check` (whole analyses, browsers, live capture)

# capture -> distinct relays of its one call (the call event's detail, checked below)
CALLS = {"wa_voice.pcap": 5, "whatsapp_login_call.pcap": 13}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_relays_are_counted_once_per_call(corpus, tmp_path, key_file, name):
    result = flowscope.analyze(corpus / "pcap" / name)
    flows, md = result.flows, result.summary["metadata"]
    relay_legs = flows[flows.counterparts_basis == "call-relays"]
    old_sum = int(relay_legs.counterparts.sum())              # what the report used to say
    assert md["calls"] == 1 and md["call_relays"] == CALLS[name]
    assert relay_legs.remote_ip.nunique() == CALLS[name] and len(relay_legs) > 1
    assert old_sum == CALLS[name] * len(relay_legs) != md["call_relays"]
    out = tmp_path / "out"
    result.write(out, pseudonym_key=key_file, pdf=False)
    html = (out / "report.html").read_text()
    assert f"{CALLS[name]} call relay(s) in 1 call(s)" in html
    assert f">{old_sum}<" not in html and "Counterparts revealed: people" in html
    summary = json.loads((out / "summary.json").read_text())["metadata"]
    assert summary["call_relays"] == CALLS[name] and summary["p2p_peers"] >= 1


def test_three_calls_add_their_relays_not_their_legs(corpus):
    # two captures analysed together: two calls, each relay counted once in its call
    result = flowscope.analyze([corpus / "pcap" / n for n in sorted(CALLS)])
    md = result.summary["metadata"]
    assert md["calls"] == 2 and md["call_relays"] == sum(CALLS.values())
