"""The CLI is a thin, documented front end: every option is in docs/cli.md (generated from
the parser, tests/test_cli_doc.py), the README points there, and it works."""
from __future__ import annotations

import pytest

import json
import shutil
import subprocess
import sys

import pyarrow.parquet as pq

from conftest import ROOT, SAMPLE
from flowscope.cli import build_parser

pytestmark = pytest.mark.slow  # not in `make check` (whole analyses, browsers, live capture)


def _flowscope(*args):
    return subprocess.run([sys.executable, "-m", "flowscope.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_every_option_is_documented_and_the_readme_points_there():
    page = (ROOT / "docs" / "cli.md").read_text()
    assert "docs/cli.md" in (ROOT / "README.md").read_text()
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.choices and isinstance(a.choices, dict))
    for name, sub in subparsers.choices.items():
        assert f"flowscope {name}" in page, name
        for action in sub._actions:
            for flag in action.option_strings:
                if flag not in ("-h", "--help"):
                    assert f"`{flag}`" in page, f"{name} {flag} is not documented in docs/cli.md"


def test_analyze_writes_tables_and_refuses_to_overwrite_another_run(tmp_path):
    out = tmp_path / "out"
    r = _flowscope("analyze", SAMPLE, "--out", out)
    assert r.returncode == 0, r.stderr
    assert "25 flows" in r.stdout and "reach WhatsApp/Meta" in r.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["flows"] == pq.read_table(out / "flows.parquet").num_rows == 25
    other = tmp_path / "other.pcap"
    other.write_bytes(SAMPLE.read_bytes()[:24])  # a valid, empty capture: different evidence
    r = _flowscope("analyze", other, "--out", out)
    assert r.returncode == 2 and "--force" in r.stderr and "Traceback" not in r.stderr
    assert _flowscope("analyze", other, "--out", out, "--force").returncode == 0


def test_no_classify_leaves_labels_null(tmp_path):
    r = _flowscope("analyze", SAMPLE, "--out", tmp_path, "--no-classify")
    assert r.returncode == 0, r.stderr
    table = pq.read_table(tmp_path / "flows.parquet")
    assert table["service"].null_count == table.num_rows == 25


def test_catalog_command_and_user_catalog_override(tmp_path):
    r = _flowscope("catalog")
    assert r.returncode == 0
    assert "57.144.0.0/14" in r.stdout and "source=" in r.stdout
    user = tmp_path / "mine.toml"
    user.write_text('[[host]]\npattern = "api.example.org"\nservice = "meta.other"\n'
                    'source = "audit team, test"\ndate = "2026-11-28"\n')
    r = _flowscope("analyze", SAMPLE, "--out", tmp_path / "o", "--catalog", user)
    assert r.returncode == 0, r.stderr
    flows = pq.read_table(tmp_path / "o" / "flows.parquet").to_pandas()
    http = flows[flows.resp_port == 80].iloc[0]
    assert (http.service, http.evidence) == ("meta.other", "http-host")
    bad = tmp_path / "bad.toml"
    bad.write_text('[[host]]\npattern = "x.test"\nservice = "not-a-service"\nsource = "s"\ndate = "2026-11-28"\n')
    r = _flowscope("catalog", "--catalog", bad)
    assert r.returncode == 2 and str(bad) in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_bad_geo_options_fail_fast_naming_the_problem(tmp_path):
    missing = tmp_path / "GeoLite2-City.mmdb"
    r = _flowscope("analyze", str(SAMPLE), "--out", str(tmp_path / "o1"), "--geoip", str(missing))
    assert r.returncode == 2 and r.stderr.strip() == f"flowscope: error: {missing}: geo database not found"
    assert not (tmp_path / "o1").exists()
    corrupt = tmp_path / "bad.mmdb"
    corrupt.write_bytes(b"\0" * 4096)
    r = _flowscope("analyze", str(SAMPLE), "--out", str(tmp_path / "o2"), "--geoip", str(corrupt))
    assert r.returncode == 2 and f"{corrupt}: not a readable MaxMind .mmdb database" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = _flowscope("analyze", str(SAMPLE), "--out", str(tmp_path / "o3"), "--vantage", "Atlantis")
    assert r.returncode == 2 and "--vantage: unknown place 'Atlantis'" in r.stderr


def test_geo_columns_and_database_names_in_the_outputs(tmp_path):
    r = _flowscope("analyze", str(SAMPLE), "--out", str(tmp_path), "--vantage", "MXP")
    assert r.returncode == 0, r.stderr
    assert "by region of the remote endpoint" in r.stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    dbs = {d["name"]: d for d in summary["geo"]["databases"]}
    assert dbs["dbip-city-lite"]["licence"] == "CC BY 4.0" and dbs["dbip-city-lite"]["build_date"]
    assert "db-ip.com" in dbs["dbip-city-lite"]["attribution"]
    assert summary["geo"]["vantage"]["given"] == "MXP"
    schema = pq.read_schema(tmp_path / "flows.parquet")
    assert {"remote_country", "max_distance_km", "geo_consistent", "region", "operator"} <= set(schema.names)
    named = json.loads(schema.metadata[b"geo_databases"])
    assert [(d["name"], d["kind"]) for d in named] == [("dbip-city-lite", "city"), ("geoip2fast-asn", "asn")]
    assert all(d["build_date"] for d in named)


def test_report_and_verify_commands(tmp_path):
    out, key = tmp_path / "out", tmp_path / "keys" / "pseudonym.key"
    r = _flowscope("analyze", SAMPLE, "--out", out, "--pseudonym-key", key)
    assert r.returncode == 0, r.stderr
    assert "report.html" in r.stdout and "manifest.json" in r.stdout and key.is_file()
    r = _flowscope("verify", out)
    assert (r.returncode, r.stdout.strip()) == (0, f"{out}: every file matches manifest.json")
    (out / "charts" / "services.png").write_bytes(b"edited")
    (out / "report.pdf").unlink(missing_ok=True)
    r = _flowscope("verify", out)
    lines = r.stdout.strip().splitlines()
    assert r.returncode == 1 and lines[0].startswith(f"changed: {out / 'charts' / 'services.png'} (sha256 ")
    assert lines[1:] == ([f"missing: {out / 'report.pdf'}"] if shutil.which("chromium") else [])
    r = _flowscope("report", out)  # re-rendered from the tables: the evidence is whole again
    assert r.returncode == 0, r.stderr
    assert _flowscope("verify", out).returncode == 0
    flows = pq.read_table(out / "flows.parquet").to_pandas()
    assert flows["orig_ip"].str.startswith("local-").all()


def test_no_report_no_pseudonymize_and_key_placement(tmp_path):
    out = tmp_path / "plain"
    r = _flowscope("analyze", SAMPLE, "--out", out, "--no-report", "--no-pseudonymize", "-q")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["events.parquet", "flows.parquet", "frames.parquet",
                                                     "manifest.json", "summary.json", "transfers.json"]
    assert "10.215.173.1" in set(pq.read_table(out / "flows.parquet")["orig_ip"].to_pylist())
    r = _flowscope("analyze", SAMPLE, "--out", tmp_path / "o", "--pseudonym-key", tmp_path / "o" / "k.key")
    assert r.returncode == 2 and "outside the output directory" in r.stderr and len(r.stderr.splitlines()) == 1
    r = _flowscope("analyze", SAMPLE, "--out", tmp_path / "o", "--pseudonym-key", "k", "--no-pseudonymize")
    assert r.returncode == 2 and "exclude each other" in r.stderr
    r = _flowscope("verify", tmp_path / "nothing-here")
    assert r.returncode == 1 and "not a directory" in r.stdout
