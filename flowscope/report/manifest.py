"""manifest.json: what went in, what came out, with SHA-256 of every file, and how.

The manifest names every input capture and every output file with its hash, the
versions and dates of flowscope, the catalog and the databases, the settings and the
time of analysis: enough for `flowscope verify` and for someone repeating the analysis.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from flowscope import hashing
from flowscope._version import __version__
from flowscope.report.names import MANIFEST

FORMAT = 1
PACKAGES = ("numpy", "pandas", "pyarrow", "numba", "geoip2", "matplotlib", "jinja2")
CHUNK_BYTES = 8 << 20


def now_utc() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            h.update(chunk)
    return h.hexdigest()


def output_files(out_dir: Path) -> list[str]:
    """Every file in the directory except the manifest itself, as sorted relative paths."""
    files = (p for p in Path(out_dir).rglob("*") if p.is_file())
    return sorted(p.relative_to(out_dir).as_posix() for p in files if p.name != MANIFEST)


def outputs(out_dir: Path) -> dict:
    return {rel: {"sha256": file_sha256(out_dir / rel), "bytes": (out_dir / rel).stat().st_size}
            for rel in output_files(out_dir)}


def build(summary: dict, analysed_at: str, report_settings: dict, database_files: dict | None = None) -> dict:
    """Everything but the outputs (added by `write`). `summary` is what summary.json holds."""
    geo = summary.get("geo") or {}
    return {
        "manifest_format": FORMAT,
        "analysed_at": analysed_at,
        "tool": {"flowscope": __version__, "python": platform.python_version(), "packages": _versions()},
        "inputs": [{"path": c.get("path"), "sha256": c.get("sha256"), "error": c.get("error")}
                   for c in summary.get("captures", [])],
        "catalog": summary.get("catalog"),
        "databases": [{**{k: d.get(k) for k in ("name", "kind", "build_date", "licence", "attribution")},
                       "sha256": (database_files or {}).get(d.get("path"))} for d in geo.get("databases", [])],
        "data_files": _data_files(geo),
        "settings": {"analysis": summary.get("settings"), "report": report_settings},
        "heuristics_version": (summary.get("metadata") or {}).get("heuristics_version"),
        **scenario_entry(summary),
    }


def scenario_entry(summary: dict) -> dict:
    """The scenario file an alignment read (path and SHA-256), when there was one."""
    sc = summary.get("scenario")
    return {"scenario": {"path": sc.get("file"), "sha256": sc.get("sha256"),
                         "tolerance_s": sc.get("tolerance_s")}} if sc else {}


def _data_files(geo: dict) -> dict:
    out = {}
    if geo.get("airports"):
        out["airports"] = geo["airports"]
    if geo.get("regions"):
        out["regions_as_of"] = geo["regions"].get("as_of")
    return out


def database_hashes(summary: dict) -> dict:
    """SHA-256 of the geolocation database files the analysis read (path -> hash)."""
    out = {}
    for d in (summary.get("geo") or {}).get("databases", []):
        path = d.get("path")
        if path and os.path.isfile(path):
            out[path] = hashing.sha256_of(path)  # hashed while the captures were read (geo/stage.Opener)
    return out


def _versions() -> dict:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def write(out_dir: Path, manifest: dict) -> Path:
    """Hash every file now in `out_dir` into the manifest and write it (atomically)."""
    out_dir = Path(out_dir)
    manifest = {**manifest, "outputs": outputs(out_dir)}
    path = out_dir / MANIFEST
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def read(out_dir: Path) -> dict | None:
    try:
        return json.loads((Path(out_dir) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
