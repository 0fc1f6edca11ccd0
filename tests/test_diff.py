"""flowscope diff: two analyses side by side (text, JSON, HTML that opens in Chromium with
no console error and no request)."""
from __future__ import annotations

import json

import pytest
from conftest import SAMPLE
from reportkit import browse, network_requests

import flowscope
from flowscope.cli import main

pytestmark = pytest.mark.slow  # not in `make check` (whole analyses, browsers, live capture)


@pytest.fixture(scope="module")
def two_dirs(corpus, tmp_path_factory, key_file):
    base = tmp_path_factory.mktemp("diff")
    a, b = base / "voice", base / "call"
    flowscope.analyze(corpus / "pcap" / "wa_voice.pcap").write(a, pseudonym_key=key_file, pdf=False)
    flowscope.analyze(corpus / "pcap" / "whatsapp_login_call.pcap").write(b, pseudonym_key=key_file, pdf=False)
    return a, b


def test_diff_of_two_corpus_analyses(two_dirs, capsys):
    a, b = two_dirs
    d = flowscope.diff(a, b).to_dict()
    sa, sb = (json.loads((x / "summary.json").read_text()) for x in (a, b))
    assert d["totals"]["WhatsApp/Meta flows"] == {"a": sa["meta"]["flows"], "b": sb["meta"]["flows"]}
    services = {r["key"]: r for r in d["by"]["service"]}
    assert services["whatsapp.call"]["flows_a"] == sa["meta"]["flows_by_service"]["whatsapp.call"]
    assert services["whatsapp.call"]["flows_b"] == sb["meta"]["flows_by_service"]["whatsapp.call"]
    events = {r["kind"]: (r["a"], r["b"]) for r in d["events_by_kind"]}
    assert events["call"] == (1, 1) and events["handshake"] == (1, 1)
    new = {r["endpoint"] for r in d["new_endpoints"]}
    gone = {r["endpoint"] for r in d["vanished_endpoints"]}
    assert new and gone and not new & gone
    assert main(["diff", str(a), str(b), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(d))
    assert main(["diff", str(a), str(b)]) == 0
    text = capsys.readouterr().out
    assert "WhatsApp/Meta IP bytes by country" in text and f"New endpoints (only in B): {len(new)}" in text


def test_diff_html_opens_without_console_error_or_request(two_dirs, tmp_path):
    a, b = two_dirs
    page = tmp_path / "diff.html"
    assert main(["diff", str(a), str(b), "--html", str(page)]) == 0
    html = page.read_text()
    assert "Content-Security-Policy" in html and "<script" not in html and "Vanished endpoints" in html
    seen = browse(page)
    assert seen["errors"] == [] and network_requests(seen, page) == []
    assert seen["title"].startswith("flowscope diff:")


def test_diff_escapes_what_the_evidence_holds(tmp_path, key_file):
    out = tmp_path / "sample"
    flowscope.analyze(SAMPLE).write(out, pseudonym_key=key_file, report=False)
    summary = json.loads((out / "summary.json").read_text())
    summary["captures"][0]["path"] = "<img src=x onerror=alert(1)>.pcap"
    (out / "summary.json").write_text(json.dumps(summary))
    html = flowscope.diff(out, out).html()
    assert "<img src=x" not in html and "&lt;img src=x" in html
    d = flowscope.diff(out, out).to_dict()
    assert d["new_endpoints"] == [] and d["vanished_endpoints"] == []
