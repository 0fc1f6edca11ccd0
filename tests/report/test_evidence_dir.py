"""The evidence directory: every file hashed in manifest.json, verify finds every change,
the report re-renders to the same bytes, and another run's evidence is never overwritten."""
from __future__ import annotations

import json
import re

import pyarrow.parquet as pq
import pytest

import flowscope
from flowscope import report
from flowscope.errors import UsageError
from flowscope.report.pdf import find_chromium
from reportkit import SAMPLE, SAMPLE_ANALYSED_AT, evidence_bytes, with_metadata

pytestmark = pytest.mark.slow  # not in `make check` (whole analyses, browsers, live capture)

EXPECTED = {"flows.parquet", "events.parquet", "frames.parquet", "summary.json", "transfers.json", "report.html", "report.pdf",
            "charts/timeline.png", "charts/destinations.png", "charts/services.png", "charts/rtt_bounds.png",
            "charts/activity.png", "charts/call_peers.png"}
needs_chromium = pytest.mark.skipif(find_chromium() is None, reason="chromium is not installed (report.pdf)")


@needs_chromium
def test_manifest_lists_inputs_outputs_versions_settings_and_time(written_dir):
    m = json.loads((written_dir / "manifest.json").read_text())
    assert set(m["outputs"]) == EXPECTED
    assert m["analysed_at"] == SAMPLE_ANALYSED_AT
    assert m["inputs"] == [{"path": str(SAMPLE), "sha256": m["inputs"][0]["sha256"], "error": None}]
    assert re.fullmatch(r"[0-9a-f]{64}", m["inputs"][0]["sha256"])
    assert m["tool"]["flowscope"] == flowscope.__version__ and m["tool"]["packages"]["matplotlib"]
    assert m["catalog"]["version"].startswith("builtin-")
    dbip = next(d for d in m["databases"] if d["name"] == "dbip-city-lite")
    assert dbip["licence"] == "CC BY 4.0" and dbip["build_date"] and re.fullmatch(r"[0-9a-f]{64}", dbip["sha256"])
    assert m["settings"]["analysis"]["vantage"] == "MXP"
    assert m["settings"]["report"] == {"report": True, "pdf": True, "pseudonymized": True,
                                       "pseudonym_key_id": m["settings"]["report"]["pseudonym_key_id"]}


def test_verify_passes_then_names_every_change(evidence_copy):
    out = evidence_copy
    assert report.verify(out) == []
    (out / "charts" / "services.png").write_bytes(b"not the chart")
    (out / "charts" / "activity.png").unlink()
    (out / "notes.txt").write_text("added later")
    problems = report.verify(out)
    assert len(problems) == 3
    assert any(re.fullmatch(r"changed: .*services\.png \(sha256 [0-9a-f]{64}, manifest [0-9a-f]{64}\)", p)
               for p in problems)
    assert any(p.startswith("missing: ") and "activity.png" in p for p in problems)
    assert any(p.startswith("not in manifest: ") and "notes.txt" in p for p in problems)
    (out / "manifest.json").unlink()
    assert report.verify(out) == [f"{out / 'manifest.json'}: missing or unreadable"]


def test_verify_checks_the_input_captures(evidence_copy, tmp_path):
    m = json.loads((evidence_copy / "manifest.json").read_text())
    moved = tmp_path / "gone.pcap"
    m["inputs"][0]["path"] = str(moved)
    (evidence_copy / "manifest.json").write_text(json.dumps(m))
    assert report.verify(evidence_copy) == [f"missing capture: {moved}"]
    assert report.verify(evidence_copy, captures=False) == []
    moved.write_bytes(SAMPLE.read_bytes()[:100])
    assert report.verify(evidence_copy)[0].startswith(f"changed capture: {moved}")


def test_report_re_renders_the_same_bytes(evidence_copy, written_dir):
    for name in ("report.html", "charts/services.png"):
        (evidence_copy / name).unlink()
    report.render(evidence_copy)
    for name in sorted(EXPECTED) + ["manifest.json"]:
        if (written_dir / name).exists():
            assert evidence_bytes(evidence_copy / name) == evidence_bytes(written_dir / name), name
    assert report.verify(evidence_copy) == []


def test_report_refuses_tables_changed_since_the_analysis(evidence_copy):
    table = pq.read_table(evidence_copy / "flows.parquet")
    pq.write_table(table.slice(0, 3), evidence_copy / "flows.parquet")
    with pytest.raises(UsageError, match="flows.parquet changed since the analysis"):
        report.render(evidence_copy)
    report.render(evidence_copy, force=True, pdf=False)
    assert "3 of 3 (100.0 %)" in (evidence_copy / "report.html").read_text()
    assert report.verify(evidence_copy) == []  # the manifest now describes what is there


@pytest.mark.parametrize("damage", ["flows.parquet missing", "events.parquet cut", "summary.json garbled"])
def test_report_and_align_of_a_damaged_directory_fail_first_with_one_line(evidence_copy, tmp_path, damage):
    name, how = damage.split(" ", 1)
    path = evidence_copy / name
    if how == "missing":
        path.unlink()
    else:
        path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])
    before = {p.name: p.read_bytes() for p in evidence_copy.iterdir() if p.is_file()}
    expected = "no flows.parquet and summary.json here" if how == "missing" else "cannot read the analysis tables"
    with pytest.raises(UsageError, match=expected) as raised:
        report.render(evidence_copy, force=True)
    assert str(evidence_copy) in str(raised.value) and "\n" not in str(raised.value)
    scenario = tmp_path / "scenario.csv"
    scenario.write_text("time,action,peer,note\n2026-03-02T09:00:00Z,message_sent,alice,\n")
    with pytest.raises(UsageError, match=expected):
        report.align(evidence_copy, scenario, force=True)
    assert {p.name: p.read_bytes() for p in evidence_copy.iterdir() if p.is_file()} == before  # nothing written


def test_same_input_same_outputs_only_the_analysis_time_differs(tmp_path, sample_result, key_file, written_dir):
    again = tmp_path / "again"
    with_metadata(sample_result).write(again, pseudonym_key=key_file)
    for name in sorted(EXPECTED):
        if (written_dir / name).exists():
            assert evidence_bytes(again / name) == evidence_bytes(written_dir / name), name
    later = tmp_path / "later"
    with_metadata(sample_result, analysed_at="2026-03-03T08:30:00Z").write(later, pseudonym_key=key_file, pdf=False)
    old, new = ((d / "report.html").read_text().splitlines() for d in (written_dir, later))
    changed = [(a, b) for a, b in zip(old, new) if a != b]
    assert len(old) == len(new) and len(changed) == 1
    assert "2026-03-03T08:30:00Z" in changed[0][1] and "Analysed at" in changed[0][1]
    for name in EXPECTED - {"report.html", "report.pdf"}:
        assert (later / name).read_bytes() == (written_dir / name).read_bytes(), name


def test_another_runs_evidence_is_not_overwritten(tmp_path, sample_result, key_file):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.html").write_text("<p>another audit</p>")  # no summary, no manifest: unknown run
    with pytest.raises(UsageError, match="different analysis"):
        sample_result.write(out, report=False, pseudonym_key=key_file)
    sample_result.write(out, report=False, pseudonym_key=key_file, force=True)
    assert not (out / "report.html").exists()  # not left beside evidence it does not describe
    sample_result.write(out, report=False, pseudonym_key=key_file)  # the same inputs again: fine
    other = flowscope.AnalysisResult(sample_result.table, [], sample_result.settings, sample_result.notes)
    with pytest.raises(UsageError, match="different analysis"):
        other.write(out, report=False, pseudonym_key=key_file)
    assert report.verify(out) == []


@needs_chromium
def test_pdf_is_a_pdf_with_the_report_text_and_the_analysis_time(written_dir):
    import pypdf
    data = (written_dir / "report.pdf").read_bytes()
    assert data.startswith(b"%PDF-")
    text = " ".join(page.extract_text() for page in pypdf.PdfReader(written_dir / "report.pdf").pages)
    for expected in ("What WhatsApp/Meta traffic reveals", "Findings", "Method and limits",
                     "IP Geolocation by DB-IP", "CC BY 4.0", "sample_session.pcap", SAMPLE_ANALYSED_AT):
        assert expected in text, expected
    assert b"/CreationDate (D:20260302120000+00'00')" in data


def test_html_is_self_contained_and_names_its_sources(written_dir):
    html = (written_dir / "report.html").read_text()
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(?!data:|#)[a-z]+:""", html.replace('href="https://db-ip.com"', ""))
    assert html.count('src="data:image/png;base64,') == 6
    assert "IP Geolocation by DB-IP (https://db-ip.com)" in html and "CC BY 4.0" in html
    findings = html[html.index('id="findings"'):html.index('id="charts"')]
    for label in ("Flows reaching WhatsApp/Meta", "IP bytes reaching WhatsApp/Meta", "Events reaching WhatsApp/Meta",
                  "Leaving the EU/EEA by location", "Leaving the EU/EEA by operator jurisdiction", "Call peers exposed"):
        assert label in findings
    assert "17 of 25 (68.0 %)" in findings


def test_missing_tables_render_as_not_available(tmp_path, sample_result, key_file):
    """A directory without events.parquet/frames.parquet (an older run, or copied without
    them) still renders: those sections say so instead of failing."""
    out = tmp_path / "plain"
    sample_result.write(out, pseudonym_key=key_file, pdf=False)
    assert (out / "events.parquet").exists() and (out / "charts" / "timeline.png").exists()
    (out / "events.parquet").unlink()
    (out / "frames.parquet").unlink()
    report.render(out, force=True)
    html = (out / "report.html").read_text()
    assert "Not available: no events.parquet" in html
    assert not (out / "charts" / "timeline.png").exists() and (out / "charts" / "services.png").exists()


def test_without_classification_or_geolocation_the_report_still_renders(tmp_path, key_file):
    result = flowscope.analyze(SAMPLE, classify=False, geo=False)
    result.write(tmp_path / "bare", pseudonym_key=key_file, pdf=False)
    html = (tmp_path / "bare" / "report.html").read_text()
    assert "classification was off (--no-classify)" in html and "IP Geolocation by DB-IP" in html
