"""docs/audit.md walks through one audit: its analysis commands run on the company capture and
leave the files it names; the catalog command prints the snapshot date it tells auditors to note."""
from __future__ import annotations

import pytest

import json
import re
import subprocess
from pathlib import Path

pytestmark = pytest.mark.slow  # not in `make check` (whole analyses, browsers, live capture)

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "audit.md").read_text()


def _commands() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", DOC, flags=re.S)
    return [line for block in blocks for line in block.splitlines() if line.startswith(".venv/bin/")]


def test_the_audit_commands_run_and_leave_the_files_named(tmp_path):
    commands = _commands()
    assert any(c.startswith(".venv/bin/flowscope analyze captures/company_session.pcap") for c in commands)
    outputs = {}
    for command in commands:
        run = command.replace("out/audit", str(tmp_path / "audit"))
        done = subprocess.run(run, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, (command, done.stderr)
        outputs[command.split()[1]] = done.stdout
    out = tmp_path / "audit"
    for name in ("flows.parquet", "events.parquet", "frames.parquet", "summary.json", "transfers.json",
                 "report.html", "manifest.json"):
        assert (out / name).is_file(), name
        assert name in DOC
    assert "every file matches manifest.json" in outputs["verify"]
    assert "WhatsApp LLC US" in outputs["-c"]
    recipients = {(r["operator"], r["country"]) for r in json.loads((out / "transfers.json").read_text())["recipients"]}
    for operator, country in recipients:
        assert f"{operator} ({country})" in DOC  # the doc names every recipient the analysis finds


def test_the_catalog_command_shows_the_snapshot_date():
    catalog = next(c for c in _commands() if "flowscope catalog" in c)
    done = subprocess.run(catalog, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert re.search(r"webhook sources: snapshot of \d{4}-\d{2}-\d{2}", done.stdout)
