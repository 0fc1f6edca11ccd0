"""report.pdf: the HTML page printed by headless Chromium (Debian package `chromium`).

Chromium stamps the PDF with the wall-clock time; those two dates are set to the
analysis time, so the PDF of the same analysis is the same bytes.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from datetime import datetime
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
TIMEOUT_S = 180
_PDF_DATE = re.compile(rb"/(CreationDate|ModDate) \(D:\d{14}[^)]*\)")


class PdfError(Exception):
    """Chromium ran but wrote no PDF."""


def find_chromium() -> str | None:
    """$FLOWSCOPE_CHROMIUM, else the first Chromium/Chrome on PATH."""
    env = os.environ.get("FLOWSCOPE_CHROMIUM")
    if env:
        return env if shutil.which(env) else None
    return next((p for name in CANDIDATES if (p := shutil.which(name))), None)


def chromium_version(binary: str | None = None) -> str | None:
    binary = binary or find_chromium()
    if not binary:
        return None
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.strip().splitlines()[0] if out.strip() else None


def headless_args(binary: str, profile: str) -> list[str]:
    """A throw-away profile and nothing that phones home (no sync, updates or metrics)."""
    return [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--metrics-recording-only",
            "--disable-dev-shm-usage", f"--user-data-dir={profile}"]


def render_pdf(html_path: Path, pdf_path: Path, analysed_at: str, binary: str | None = None) -> Path:
    """Print `html_path` to `pdf_path`; raise FileNotFoundError without Chromium, PdfError if it fails."""
    binary = binary or find_chromium()
    if not binary:
        raise FileNotFoundError("Chromium not found (Debian package chromium; or set $FLOWSCOPE_CHROMIUM)")
    tmp = pdf_path.with_name(pdf_path.name + ".tmp")
    with tempfile.TemporaryDirectory(prefix="flowscope-chromium-") as profile:
        cmd = headless_args(binary, profile) + ["--no-pdf-header-footer", f"--print-to-pdf={tmp}",
                                                html_path.resolve().as_uri()]
        try:
            # its own temp files too go into the throw-away profile, removed with it even
            # when the disk is full (Chromium leaves org.chromium.Chromium.* in $TMPDIR)
            env = {**os.environ, "TMPDIR": profile}
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
        except subprocess.TimeoutExpired:
            raise PdfError(f"Chromium did not finish printing {html_path} within {TIMEOUT_S} s") from None
    if not tmp.is_file() or tmp.stat().st_size == 0:
        last = (run.stderr.strip().splitlines() or ["no output"])[-1]
        raise PdfError(f"Chromium wrote no PDF (exit {run.returncode}): {last}")
    tmp.write_bytes(_stamp(tmp.read_bytes(), analysed_at))
    os.replace(tmp, pdf_path)
    return pdf_path


def _stamp(pdf: bytes, analysed_at: str) -> bytes:
    """Creation and modification dates := the analysis time, same length (the xref table
    holds byte offsets, so nothing may move)."""
    when = datetime.fromisoformat(analysed_at.replace("Z", "+00:00"))
    stamp = when.strftime("%Y%m%d%H%M%S").encode()

    def repl(m: re.Match) -> bytes:
        new = b"/" + m.group(1) + b" (D:" + stamp + b"+00'00')"
        return new if len(new) == len(m.group(0)) else m.group(0)
    return _PDF_DATE.sub(repl, pdf)
