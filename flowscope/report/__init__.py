"""Report stage: the evidence directory an analysis leaves behind.

    DIR/flows.parquet, events.parquet, frames.parquet   the tables (pseudonymised)
    DIR/actions.parquet                                 the scripted session (with a scenario)
    DIR/summary.json                                    per-capture statistics, catalog, databases
    DIR/charts/*.png, report.html, report.pdf           the report, rendered from those tables
    DIR/manifest.json                                   SHA-256 of every input and output

`write(result, DIR)` writes it all (what `AnalysisResult.write` and `flowscope analyze`
call); `render(DIR)` re-renders the report from the tables; `align(DIR, FILE)` adds a
scenario to a written analysis; `verify(DIR)` re-checks the hashes.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from flowscope import heap

__all__ = ["align", "render", "verify", "write"]



def write(result, out, *, force: bool = False, report: bool = True, pdf: bool = True,
          pseudonymize: bool = True, pseudonym_key=None, scenario=None,
          scenario_tolerance_s: float | None = None, release: bool = False) -> tuple[list[Path], list[str]]:
    """Write tables, report and manifest for `result` into `out`; (files written, notes).
    With `scenario` (a CSV file), also the scripted session (actions.parquet). `release`:
    `result` lets its tables go once they are written (the report is drawn from the files)."""
    from flowscope.report import manifest as mf
    from flowscope.report import pseudonym, tables
    out = Path(out)
    if scenario is not None:  # a bad scenario row must fail before anything is written
        from flowscope.scenario import read_scenario
        read_scenario(scenario)
    tables.check_out_dir(out, [c.sha256 for c in result.captures], force)
    scrub, key_id = None, None
    if pseudonymize:  # the key first: a bad key must fail before anything is written
        key = pseudonym.load_key(pseudonym_key, out_dir=out)
        scrub, key_id = _pseudonymizer(result, key), pseudonym.key_id(key)
    # Chromium boots while the tables are written; the geolocation databases are hashed on
    # a thread while the report is drawn and printed. The pseudonymised copies are lists of
    # short-lived strings, a flow each: no cyclic collection rescans them (-0.06 s at 100k)
    with _early_browser(report and pdf) as browser, ThreadPoolExecutor(max_workers=1) as pool, \
            heap.without_cyclic_gc():
        out.mkdir(parents=True, exist_ok=True)
        tables.clear_outputs(out)
        files = tables.write_tables(result, out, scrub)
        if scenario is not None:
            files = _attach(out, scenario, scenario_tolerance_s, files)
        if release:
            result.release()
            heap.release()
        summary = _read_summary(out)
        databases = pool.submit(mf.database_hashes, summary)
        notes: list[str] = []
        privacy = {"pseudonymized": pseudonymize, "pseudonym_key_id": key_id}
        if report:
            files, notes = _render(out, result.analysed_at, privacy, pdf, files, notes, browser)
        settings = {"report": report, "pdf": (out / "report.pdf").is_file(), **privacy}
        base = mf.build(summary, result.analysed_at, settings, databases.result())
        files.append(mf.write(out, base))
    return files, notes


def _early_browser(wanted: bool):
    """Headless Chromium started now (closed on leaving the block; pdf.Unavailable says
    why not), or nothing."""
    from contextlib import nullcontext
    if not wanted:
        return nullcontext()
    from flowscope.report.pdf import Browser
    return Browser.launch()


def _attach(out: Path, scenario, tolerance_s, files: list) -> list:
    from flowscope.scenario import DEFAULT_TOLERANCE_S
    from flowscope.scenario.evidence import attach
    written = attach(out, scenario, DEFAULT_TOLERANCE_S if tolerance_s is None else tolerance_s)
    return [f for f in files if f not in written] + written


def align(out, scenario, tolerance_s: float | None = None, *, force: bool = False,
          pdf: bool = True) -> tuple[list[Path], list[str]]:
    """Add a scenario to the analysis written in `out`: actions.parquet, summary.json's
    `scenario` section, the report re-rendered (if one was written), the manifest updated
    so that `flowscope verify` passes. Evidence changed since its manifest is refused
    without `force`."""
    from flowscope.errors import UsageError
    from flowscope.report import manifest as mf
    from flowscope.report.data import check
    from flowscope.scenario import read_scenario
    out = Path(out)
    read_scenario(scenario)
    recorded = mf.read(out) or {}
    changed = _changed_tables(out, recorded.get("outputs") or {})
    if changed and not force:
        raise UsageError(f"{out}: {', '.join(changed)} changed since the analysis (see flowscope verify); "
                         "use --force to align anyway")
    check(out)
    files = _attach(out, scenario, tolerance_s, [])
    notes: list[str] = []
    report_settings = (recorded.get("settings") or {}).get("report") or {}
    if report_settings.get("report", True):
        privacy = {k: report_settings.get(k) for k in ("pseudonymized", "pseudonym_key_id")}
        files, notes = _render(out, recorded.get("analysed_at") or mf.now_utc(), privacy,
                               pdf and bool(report_settings.get("pdf", True)), files, notes)
    summary = _read_summary(out)
    base = {k: v for k, v in recorded.items() if k != "outputs"} or mf.build(summary, mf.now_utc(), {}, {})
    base.update(mf.scenario_entry(summary))
    files.append(mf.write(out, base))
    return files, notes


def _pseudonymizer(result, key: bytes):
    from flowscope.report import pseudonym
    peers = pseudonym.call_peers(result.table)
    return pseudonym.Pseudonymizer(key, peers=peers, own=pseudonym.own_addresses(result.table, peers),
                                   local_nets=pseudonym.local_nets_of(result.summary),
                                   names=pseudonym.local_names(result.table))


def _render(out: Path, analysed_at: str, privacy: dict, pdf: bool, files: list, notes: list, browser=None):
    from flowscope.report.renderer import render_report
    rendered = render_report(out, analysed_at, privacy, pdf=pdf, browser=browser)
    return files + rendered.files, notes + rendered.notes


def _read_summary(out: Path) -> dict:
    import json
    return json.loads((out / "summary.json").read_text())


def render(out, *, force: bool = False, pdf: bool = True) -> tuple[list[Path], list[str]]:
    """Re-render charts, report.html and report.pdf from the tables in `out` and update its
    manifest. Tables changed since the manifest was written are refused without `force`."""
    from flowscope.errors import UsageError
    from flowscope.report import manifest as mf
    from flowscope.report.data import check
    out = Path(out)
    check(out)  # fails with a clear message when the tables are missing or unreadable
    recorded = mf.read(out) or {}
    changed = _changed_tables(out, recorded.get("outputs") or {})
    if changed and not force:
        raise UsageError(f"{out}: {', '.join(changed)} changed since the analysis (see flowscope verify); "
                         "use --force to render them anyway")
    analysed_at = recorded.get("analysed_at") or mf.now_utc()
    privacy = ((recorded.get("settings") or {}).get("report") or {})
    privacy = {k: privacy.get(k) for k in ("pseudonymized", "pseudonym_key_id")}
    files, notes = _render(out, analysed_at, privacy, pdf, [], [])
    base = {k: v for k, v in recorded.items() if k != "outputs"} or \
        mf.build(_read_summary(out), analysed_at, {}, {})
    base.setdefault("settings", {}).setdefault("report", {}).update(
        report=True, pdf=(out / "report.pdf").is_file())
    files.append(mf.write(out, base))
    return files, notes


def _changed_tables(out: Path, listed: dict) -> list[str]:
    from flowscope.report.manifest import file_sha256
    from flowscope.report.names import TABLES
    return [name for name in TABLES if name in listed
            and (not (out / name).is_file() or file_sha256(out / name) != listed[name].get("sha256"))]


def verify(out, *, captures: bool = True) -> list[str]:
    """One line per changed, missing or unlisted file (empty: all hashes match)."""
    from flowscope.report.verifier import verify as _verify
    return _verify(out, captures=captures)
