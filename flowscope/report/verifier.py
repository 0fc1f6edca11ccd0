"""`flowscope verify DIR`: re-check every hash the manifest records.

One line per problem: a changed or missing output, a file the manifest does not list, a
changed or missing input capture. No lines: the evidence is as it was written.
"""
from __future__ import annotations

from pathlib import Path

from flowscope.report import manifest as mf
from flowscope.report.names import MANIFEST


def verify(out_dir, captures: bool = True) -> list[str]:
    """Problems found in `out_dir` (empty list: everything matches)."""
    out = Path(out_dir)
    if not out.is_dir():
        return [f"{out}: not a directory"]
    recorded = mf.read(out)
    if recorded is None:
        return [f"{out / MANIFEST}: missing or unreadable"]
    problems = _outputs(out, recorded.get("outputs") or {})
    if captures:
        problems += _inputs(recorded.get("inputs") or [])
    return problems


def _outputs(out: Path, listed: dict) -> list[str]:
    problems = []
    for rel, entry in sorted(listed.items()):
        path = out / rel
        if not path.is_file():
            problems.append(f"missing: {path}")
        elif (found := mf.file_sha256(path)) != entry.get("sha256"):
            problems.append(f"changed: {path} (sha256 {found}, manifest {entry.get('sha256')})")
    problems += [f"not in manifest: {out / rel}" for rel in mf.output_files(out) if rel not in listed]
    return problems


def _inputs(inputs: list) -> list[str]:
    problems = []
    for entry in inputs:
        path, expected = entry.get("path"), entry.get("sha256")
        if not path or not expected:  # unreadable at analysis time: nothing to compare
            continue
        if not Path(path).is_file():
            problems.append(f"missing capture: {path}")
        elif (found := mf.file_sha256(Path(path))) != expected:
            problems.append(f"changed capture: {path} (sha256 {found}, manifest {expected})")
    return problems
