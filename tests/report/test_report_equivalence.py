"""The faster report (issue 14) gives the results of the slower one it replaced, kept in
tests/report/report_reference.py: the endpoint table built column-wise equals the per-row
builder, the RTT chart's points equal the itertuples builder, chart PNGs are savefig's
bytes, and report.pdf (printed over the DevTools pipe by a browser started early) is the
bytes of Chromium's own --print-to-pdf; on the sample, a crafted capture and the corpus.
A browser that fails leaves everything else written and says why in one line."""
from __future__ import annotations

import json

import pytest

from report_reference import endpoint_rows as reference_rows
from report_reference import geo_check_points as reference_points
from report_reference import png_bytes as savefig_png
from report_reference import print_pdf_cli
from reportkit import chromium_or_skip, evidence_bytes
from test_safety import crafted_pcap

import flowscope
from flowscope import report
from flowscope.report import charts, renderer
from flowscope.report.data import load
from flowscope.report.html import endpoint_rows
from flowscope.report.pdf import find_chromium

pytestmark = pytest.mark.slow  # not in `make check` (whole analyses, browsers, live capture)

CHAT = ["whatsapp_login_chat.pcap", "whatsapp.pcap", "wa_voice.pcap", "whatsapp_login_call.pcap"]


def _same_tables_and_charts(out, monkeypatch):
    data = load(out)
    rows = endpoint_rows(data.flows)
    assert rows == reference_rows(data.flows)
    assert charts.geo_check_points(data.flows).equals(reference_points(data.flows))
    monkeypatch.setattr(charts, "png_bytes", savefig_png)  # the charts again, through savefig
    for chart in renderer.build_charts(data):
        written = out / "charts" / f"{chart.name}.png"
        assert (chart.png is None and not written.exists()) or chart.png == written.read_bytes(), chart.name
    return rows


def test_the_sample(written_dir, monkeypatch):
    rows = _same_tables_and_charts(written_dir, monkeypatch)
    assert len(rows) > 5


def test_a_crafted_capture(tmp_path, key_file, monkeypatch):
    result = flowscope.analyze(crafted_pcap(tmp_path / "crafted.pcap"))
    result.write(tmp_path / "out", pseudonym_key=key_file, pdf=find_chromium() is not None)
    rows = _same_tables_and_charts(tmp_path / "out", monkeypatch)
    assert any("<script>" in r["names"] for r in rows)
    if find_chromium():
        _same_pdf(tmp_path / "out", tmp_path)


@pytest.mark.parametrize("which", ["chat", "all"])
def test_the_corpus(corpus, tmp_path, key_file, monkeypatch, which):
    pcaps = sorted((corpus / "pcap").iterdir()) if which == "all" else [corpus / "pcap" / n for n in CHAT]
    result = flowscope.analyze(pcaps, **({"vantage": "PSA"} if which == "chat" else {}))
    result.write(tmp_path / "out", pseudonym_key=key_file, pdf=False)
    rows = _same_tables_and_charts(tmp_path / "out", monkeypatch)
    assert rows


def _same_pdf(out, tmp_path):
    """Equal to --print-to-pdf's bytes, with Chromium's node names blanked (reportkit)."""
    analysed_at = json.loads((out / "manifest.json").read_text())["analysed_at"]
    reference = print_pdf_cli(out / "report.html", tmp_path / "reference.pdf", analysed_at)
    assert evidence_bytes(out / "report.pdf") == evidence_bytes(reference)


def test_the_pdf_is_what_print_to_pdf_writes(written_dir, tmp_path):
    chromium_or_skip()
    _same_pdf(written_dir, tmp_path)


def test_a_browser_that_fails_leaves_the_rest_written(evidence_copy, monkeypatch, tmp_path):
    fake = tmp_path / "chromium"
    fake.write_text('#!/bin/sh\necho "[FATAL:zygote_host_impl_linux.cc] No usable sandbox!" >&2\nexit 1\n')
    fake.chmod(0o755)
    monkeypatch.setenv("FLOWSCOPE_CHROMIUM", str(fake))
    _files, notes = report.render(evidence_copy, force=True)
    assert notes == ["report.pdf not written: Chromium exited (exit 1): "
                     "[FATAL:zygote_host_impl_linux.cc] No usable sandbox!"]
    assert not (evidence_copy / "report.pdf").exists()
    assert (evidence_copy / "report.html").is_file() and len(list((evidence_copy / "charts").glob("*.png"))) == 6
    assert report.verify(evidence_copy) == []
    assert json.loads((evidence_copy / "manifest.json").read_text())["settings"]["report"]["pdf"] is False
