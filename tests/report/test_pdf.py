"""report.pdf's browser (flowscope/report/pdf.py) when Chromium is missing, crashes or
hangs: one clear line, nothing left running, no profile left behind. Stand-in browsers are
shell scripts; with the real Chromium: test_report_equivalence.py."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from flowscope.report import pdf


def _fake(tmp_path: Path, body: str) -> str:
    path = tmp_path / "fake-chromium"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return str(path)


def _gone(pid: int) -> bool:
    """Not running: no such process, or a zombie waiting for init to reap it."""
    for _ in range(200):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.01)
    return False


def test_no_chromium_is_said_when_the_pdf_is_due(monkeypatch, tmp_path):
    monkeypatch.setenv("FLOWSCOPE_CHROMIUM", str(tmp_path / "no-such-browser"))
    browser = pdf.Browser.launch()
    with browser, pytest.raises(FileNotFoundError, match="Chromium not found"):
        browser.print_pdf(tmp_path / "report.html", tmp_path / "report.pdf", "2026-03-02T12:00:00Z")


def test_a_browser_that_dies_gives_one_line_with_its_exit_code_and_last_words(tmp_path):
    binary = _fake(tmp_path, 'echo "starting" >&2; printf "[FATAL] No usable sandbox!\\n  details\\n" >&2; exit 3')
    with pdf.Browser.start(binary) as browser:
        profile = browser.profile
        with pytest.raises(pdf.PdfError) as err:
            browser.print_pdf(tmp_path / "report.html", tmp_path / "report.pdf", "2026-03-02T12:00:00Z")
    assert str(err.value) == "Chromium exited (exit 3): details"
    assert not (tmp_path / "report.pdf").exists() and not os.path.exists(profile)


def test_a_browser_that_hangs_is_given_up_and_ended(monkeypatch, tmp_path):
    monkeypatch.setattr(pdf, "TIMEOUT_S", 1)
    with pdf.Browser.start(_fake(tmp_path, "exec sleep 600")) as browser:
        pid, profile = browser._pid, browser.profile
        t = time.monotonic()
        with pytest.raises(pdf.PdfError, match="did not start within 1 s"):
            browser.print_pdf(tmp_path / "report.html", tmp_path / "report.pdf", "2026-03-02T12:00:00Z")
        assert time.monotonic() - t < 10
    assert _gone(pid) and not os.path.exists(profile)


def test_closing_early_ends_the_browser_and_what_it_started(tmp_path):
    """close() before printing (the tables failed, say): the browser and its children end."""
    marker = tmp_path / "child.pid"
    browser = pdf.Browser.start(_fake(tmp_path, f"sleep 600 & echo $! > {marker}; exec sleep 600"))
    pid = browser._pid
    for _ in range(500):
        if marker.exists() and marker.read_text().strip():
            break
        time.sleep(0.01)
    child = int(marker.read_text())
    browser.close()
    assert _gone(pid) and _gone(child) and not os.path.exists(browser.profile)


def test_a_browser_that_cannot_be_executed_is_a_pdf_error(tmp_path):
    binary = tmp_path / "not-executable-chromium"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    binary.write_bytes(b"\x7fELF garbage")  # executable bit, not a program
    with pytest.raises(pdf.PdfError, match="could not be started"):
        pdf.Browser.start(str(binary))
