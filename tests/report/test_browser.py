"""report.html in a real browser (headless Chromium over the DevTools protocol): no console
error, no network request; and the harness itself does see errors and requests."""
from __future__ import annotations

import pytest

from reportkit import browse, network_requests

pytestmark = pytest.mark.slow  # not in `make check` (whole analyses, browsers, live capture)


def test_report_opens_without_console_error_or_network_request(written_dir):
    page = written_dir / "report.html"
    seen = browse(page)
    assert seen["errors"] == []
    assert network_requests(seen, page) == []
    assert seen["title"] == "flowscope report: sample_session.pcap"
    assert sum(u.startswith("data:image/png") for u in seen["requests"]) >= 1  # the charts did load


def test_the_harness_sees_script_errors_blocked_loads_and_requests(tmp_path):
    leaky = tmp_path / "leaky.html"
    leaky.write_text('<!DOCTYPE html><title>leaky</title><img src="http://example.invalid/x.png">'
                     '<script>console.error("boom"); missing()</script>')
    seen = browse(leaky)
    assert network_requests(seen, leaky) == ["http://example.invalid/x.png"]
    assert any("boom" in e for e in seen["errors"]) and any(e.startswith("exception") for e in seen["errors"])
    locked = tmp_path / "locked.html"
    locked.write_text('<!DOCTYPE html><meta http-equiv="Content-Security-Policy" content="default-src \'none\'">'
                      '<title>locked</title><link rel="stylesheet" href="https://example.org/x.css">')
    seen = browse(locked)
    assert any("Content Security Policy" in e for e in seen["errors"])
