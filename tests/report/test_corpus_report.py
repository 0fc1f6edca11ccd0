"""The report renders on real WhatsApp captures (nDPI corpus), in Chromium too."""
from __future__ import annotations

import pytest

from reportkit import browse, network_requests

import flowscope
from flowscope import report
from flowscope.report.pdf import find_chromium

pytestmark = pytest.mark.slow  # not in `make check` (whole analyses, browsers, live capture)

CHAT = ["whatsapp_login_chat.pcap", "whatsapp.pcap", "wa_voice.pcap", "whatsapp_login_call.pcap"]


def test_report_renders_on_the_corpus_chat_captures(corpus, tmp_path, key_file):
    result = flowscope.analyze([corpus / "pcap" / name for name in CHAT], vantage="PSA")
    assert result.frames_table.num_rows > 0 and result.events_table.num_rows > 0
    out = tmp_path / "out"
    result.write(out, pseudonym_key=key_file, pdf=find_chromium() is not None)
    html = (out / "report.html").read_text()
    findings = html[html.index('id="findings"'):html.index('id="charts"')]
    assert "Events reaching WhatsApp/Meta" in findings and "Not available" not in findings
    assert len(list((out / "charts").glob("*.png"))) == 6
    assert report.verify(out) == []
    if find_chromium():
        seen = browse(out / "report.html")
        assert seen["errors"] == [] and network_requests(seen, out / "report.html") == []
        assert (out / "report.pdf").read_bytes()[:5] == b"%PDF-"
