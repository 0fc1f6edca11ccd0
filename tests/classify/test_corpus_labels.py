"""Labels versus nDPI's verdicts on the real captures in ../shared/corpus/ndpi.

Families are compared (whatsapp / meta / other): nDPI's `proto` naming WhatsApp, its
`meta_any` (label, server-IP owner or host name tie the flow to Meta), and flowscope's
service and is_meta. Every disagreement is listed; today there is none on the 600 flows.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import flowscope
from test_corpus_ndpi import NDPI_LIKE, _key

pytestmark = pytest.mark.slow  # not in `make check` (whole analyses, browsers, live capture)

NEGATIVES = ["signal.pcap", "telegram.pcap", "jabber.pcap", "zoom.pcap", "threema.pcap"]
EXPECTED_DISAGREEMENTS: dict = {}  # key -> reason, for any deliberate difference


@pytest.fixture(scope="module")
def joined(corpus):
    truth = pd.read_csv(corpus / "truth_flows.csv")
    rows = []
    for pcap, group in truth.groupby("pcap"):
        flows = flowscope.analyze(corpus / "pcap" / pcap, **NDPI_LIKE).flows
        ours = {_key(f.l4, f.orig_ip, f.orig_port, f.resp_ip, f.resp_port): f for f in flows.itertuples()}
        for r in group.itertuples():
            o = ours.get(_key(r.l4, r.src, r.sport, r.dst, r.dport))
            if o is None:  # the few fuzzed or fragment flows the readers see differently (test_corpus_ndpi)
                assert pcap in ("fuzz-2006-06-26-2594.pcap", "ip_fragmented_garbage.pcap"), (pcap, r)
                continue
            rows.append(dict(pcap=pcap, key=f"{pcap} {r.l4} {r.src}:{r.sport} {r.dst}:{r.dport}",
                             ndpi=r.proto, ndpi_wa="WhatsApp" in str(r.proto), meta_any=bool(r.meta_any),
                             meta_ip=bool(r.meta_ip), service=o.service, is_meta=bool(o.is_meta),
                             evidence=o.evidence))
    return pd.DataFrame(rows)


def test_whatsapp_recall(joined):
    wa = joined[joined.ndpi_wa]
    hit = wa.service.str.startswith("whatsapp.")
    assert len(wa) == 125
    assert hit.mean() >= 0.98, wa[~hit][["key", "ndpi", "service", "evidence"]].to_string()


def test_meta_recall(joined):
    meta = joined[joined.meta_any]
    assert len(meta) == 156
    assert meta.is_meta.mean() >= 0.95, meta[~meta.is_meta][["key", "ndpi", "service"]].to_string()


def test_negative_captures_show_no_meta_flow_unless_the_address_is_meta(joined):
    neg = joined[joined.pcap.isin(NEGATIVES)]
    assert len(neg) > 100
    wrong = neg[neg.is_meta & ~neg.meta_ip]
    assert wrong.empty, wrong[["key", "ndpi", "service", "evidence"]].to_string()


def test_every_disagreement_with_ndpi_is_explained(joined):
    theirs = np.where(joined.ndpi_wa, "whatsapp", np.where(joined.meta_any, "meta", "other"))
    ours = np.where(joined.service.str.startswith("whatsapp."), "whatsapp", np.where(joined.is_meta, "meta", "other"))
    differ = joined.assign(theirs=theirs, ours=ours)[theirs != ours]
    listed = {k: (t, o) for k, t, o in zip(differ.key, differ.theirs, differ.ours)}
    assert set(listed) == set(EXPECTED_DISAGREEMENTS), "\n".join(f"{k}: nDPI {t}, flowscope {o}" for k, (t, o) in listed.items())


def test_protocol_evidence_decides_chat_and_calls(joined):
    chat = joined[joined.ndpi.isin(["WhatsApp"]) & joined.key.str.contains(":5222")]
    assert (chat.evidence == "wa-prologue").mean() > 0.9
    calls = joined[joined.ndpi.str.contains("STUN.WhatsAppCall", na=False)]
    assert (calls.evidence == "stun").all()
