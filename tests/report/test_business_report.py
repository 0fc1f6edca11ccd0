"""The Business Platform section and the transfer record (issue 13), on the synthetic company
capture written once: transfers.json, its hash in the manifest, the section in Chromium."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import flowscope
from reportkit import browse, network_requests

pytestmark = pytest.mark.slow  # not in `make check` (whole analyses, browsers, live capture)

ROOT = Path(__file__).resolve().parents[2]
PCAP = ROOT / "captures" / "company_session.pcap"


@pytest.fixture(scope="module")
def company_dir(tmp_path_factory, key_file):
    out = tmp_path_factory.mktemp("company") / "out"
    flowscope.analyze(PCAP).write(out, pseudonym_key=key_file)
    return out


def _recipients(out: Path) -> dict:
    doc = json.loads((out / "transfers.json").read_text())
    return {(r["operator"], r["country"]): r for r in doc["recipients"]}


def test_transfers_list_meta_whatsapp_and_the_providers_with_observed_categories(company_dir):
    rec = _recipients(company_dir)
    assert set(rec) == {("WhatsApp LLC", "US"), ("Meta Platforms, Inc.", "US"), ("360dialog GmbH", "DE"),
                        ("Twilio Inc.", "US")}
    wa = rec[("WhatsApp LLC", "US")]
    assert wa["region"] == "adequate" and "DPF List" in wa["basis"] and "Data Privacy Framework" in wa["basis"]
    assert wa["categories"]["message_counts"]["api-call"] == 7
    assert wa["categories"]["status_counts"]["webhook"] == 20
    assert {"ip_addresses", "timestamps"} <= set(wa["categories"])
    assert wa["flows"] == len(wa["flow_ids"]) == 8 and wa["bytes"] > 0
    dialog = rec[("360dialog GmbH", "DE")]
    assert dialog["region"] == "eu" and dialog["basis"].startswith("none needed")
    assert dialog["categories"]["message_counts"] == {"api-call": 2}
    assert rec[("Twilio Inc.", "US")]["services"] == ["whatsapp.bsp"]


def test_transfers_name_no_local_address(company_dir):
    text = (company_dir / "transfers.json").read_text()
    for local in ("10.20.0.5", "fd00:20::5", "192.168.50.23"):
        assert local not in text


def test_transfers_json_is_hashed_and_verified(company_dir, tmp_path):
    import shutil
    manifest = json.loads((company_dir / "manifest.json").read_text())
    assert "transfers.json" in manifest["outputs"]
    copy = tmp_path / "copy"
    shutil.copytree(company_dir, copy)
    assert flowscope.report.verify(copy, captures=False) == []
    doc = json.loads((copy / "transfers.json").read_text())
    doc["recipients"] = doc["recipients"][1:]
    (copy / "transfers.json").write_text(json.dumps(doc))
    problems = flowscope.report.verify(copy, captures=False)
    assert len(problems) == 1 and "transfers.json" in problems[0]


def test_section_renders_in_chromium_without_console_error_or_request(company_dir):
    html = (company_dir / "report.html").read_text()
    assert "WhatsApp Business Platform" in html and "not observable on the wire" in html
    assert "about 3 status webhooks per sent message" in html
    assert "Transfer record" in html
    page = company_dir / "report.html"
    seen = browse(page)
    assert seen["errors"] == []
    assert network_requests(seen, page) == []


def test_no_section_without_business_flows(written_dir):
    html = (written_dir / "report.html").read_text()
    assert 'id="business"' not in html and 'id="transfers"' in html


def test_on_prem_finding(tmp_path):
    from flowscope.report import business
    import pandas as pd
    flows = pd.DataFrame({"flow_id": [0], "service": ["whatsapp.chat"], "hostname": ["g.whatsapp.net"],
                          "resp_ip": ["157.240.20.53"],
                          "catalog_rule": ["x; from a platform host: the legacy On-Premises API, whose last client "
                                           "expired on 2025-10-23"]})
    got = business.section(flows, None)
    assert got["on_prem"] == ["flow 0: g.whatsapp.net"]
    assert business.section(flows.assign(catalog_rule="x"), None) is None


def test_transfers_without_operators_say_why():
    import pandas as pd
    from flowscope.report import transfers
    doc = transfers.build(pd.DataFrame({"flow_id": [0], "operator": [None], "is_meta": [None]}), None, {})
    assert doc["recipients"] == [] and "off" in doc["not_available"]
    basis = transfers.legal_basis("Example Ltd", "IN")
    assert basis["region"] == "third" and basis["basis"].startswith("none")
    assert transfers.legal_basis("X AG", "CH")["basis"].startswith("adequacy decision")


def test_transfers_equal_the_pandas_reference(company_dir, sample_default):
    """The Arrow build gives the record the first (pandas) implementation gave, on the
    written company tables and on the sample's (calls, relays, peers)."""
    import pyarrow.parquet as pq
    from flowscope.report import transfers
    from transfers_reference import build as reference
    summary = json.loads((company_dir / "summary.json").read_text())
    flows, events = pq.read_table(company_dir / "flows.parquet"), pq.read_table(company_dir / "events.parquet")
    assert transfers.build(flows, events, summary) == reference(flows.to_pandas(), events.to_pandas(), summary)
    assert transfers.build(flows.to_pandas(), events.to_pandas(), summary) == json.loads(
        (company_dir / "transfers.json").read_text())
    sample = sample_default
    got = transfers.build(sample.table, sample.events_table, {})
    assert got == reference(sample.table.to_pandas(), sample.events_table.to_pandas(), {})
    assert any("call_relays" in r["categories"] for r in got["recipients"])
