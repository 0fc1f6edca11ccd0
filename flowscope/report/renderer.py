"""Render charts/*.png, report.html and report.pdf from the tables in an output directory."""
from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from flowscope import heap
from flowscope.report import charts as ch
from flowscope.report import findings as fd
from flowscope.report.data import ReportData, load
from flowscope.report.names import CHARTS, HTML, PDF
from flowscope.report.html import Chart, render_html
from flowscope.report.painter import Painter
from flowscope.report.scripted import build as build_scripted
from flowscope.report.text import caption


@dataclass
class Rendered:
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)   # e.g. why report.pdf was not written


def chart_specs(data: ReportData) -> list[tuple]:
    """(name, title, caption, build or None, reason) of each chart; build() makes the figure
    (None: every panel would lack data, the chart is not drawn and `reason` says why)."""
    flows, events, summary = data.flows, data.events, data.summary
    plain, geo = caption(summary, flows), caption(summary, flows, geo=True)
    no_events = fd.NO_EVENTS
    km_per_ms = (summary.get("geo") or {}).get("km_per_ms")
    return [
        ("timeline", "Event timeline by service and direction", plain,
         None if events is None else lambda: ch.event_timeline(events, plain), no_events),
        ("destinations", "WhatsApp/Meta IP bytes and events by country and region", geo,
         _if(data.has("region"), lambda: ch.destinations(flows, events, geo, events_reason=no_events)),
         fd.NO_GEO),
        ("services", "Flows, IP bytes and events by service", plain,
         _if(data.has("service"), lambda: ch.services(flows, events, plain, events_reason=no_events)),
         fd.NO_CLASSIFY),
        ("rtt_bounds", "Round-trip-time bound versus database distance", geo,
         _if(data.has("max_distance_km"), lambda: ch.rtt_bounds(flows, geo, km_per_ms)),
         "no trusted round-trip time to any remote endpoint, or geolocation was off"),
        ("activity", "Activity per hour", plain, lambda: ch.activity_per_hour(events, flows, plain), ""),
        ("call_peers", "Call-peer exposure", geo,
         _if(data.has("service"), lambda: ch.call_peer_exposure(flows, geo)), fd.NO_CLASSIFY),
    ]


# Drawn by the forked painter (painter.py): about half the drawing at 20k and 100k flows;
# the other half, with the charts' imports and the tables' read, is this process's.
PAINTED = ("destinations", "services", "call_peers")
PAINTER_GRACE_S = 30


def build_charts(data: ReportData) -> list[Chart]:
    """Each chart with its caption; a chart whose every panel lacks data is not drawn.
    A forked painter draws the PAINTED ones on the other core (here, should it fail)."""
    specs = chart_specs(data)
    builds = {name: build for name, _, _, build, _ in specs if build}
    painter = Painter.fork({name: builds[name] for name in PAINTED if name in builds})
    remote = set(painter.names) if painter is not None else set()
    started = time.monotonic()
    try:
        pngs = draw_pngs({name: build for name, build in builds.items() if name not in remote})
        if painter is not None:
            # a painter stuck (say, on a lock another thread held at the fork) is given up on
            pngs.update(painter.pngs(timeout_s=PAINTER_GRACE_S + 4 * (time.monotonic() - started)))
    finally:
        if painter is not None:
            painter.close()  # reaped even when a chart drawn here raised
    pngs.update(draw_pngs({name: build for name, build in builds.items() if name not in pngs}))
    return [Chart(name, title, cap, pngs.get(name) if build else None, "" if build else reason)
            for name, title, cap, build, reason in specs]


def draw_pngs(builds: dict) -> dict[str, bytes]:
    """PNG bytes by name; each PNG is compressed on a thread while the next chart is drawn
    (zlib lets go of the GIL)."""
    if not builds:
        return {}
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="flowscope-png") as pool:
        futures = {name: pool.submit(ch.encode_png, ch.draw(build())) for name, build in builds.items()}
        return {name: future.result() for name, future in futures.items()}


def _if(condition: bool, build):
    return build if condition else None


def render_report(out_dir, analysed_at: str, privacy: dict, pdf: bool = True, browser=None) -> Rendered:
    """charts/*.png + report.html (+ report.pdf) from the tables in `out_dir`.

    `privacy`: {"pseudonymized": bool, "pseudonym_key_id": str} as the tables were written.
    `browser`: a pdf.Browser started by the caller (before the tables were written, say);
    without one, Chromium is started here, before the charts are drawn, and closed again."""
    with ExitStack() as stack:
        if pdf and browser is None:
            from flowscope.report.pdf import Browser
            browser = stack.enter_context(Browser.launch())
        return _render(Path(out_dir), analysed_at, privacy, browser if pdf else None)


# flows.parquet's list columns: no chart or table of the report reads them
NOT_SHOWN = ("dns_queries", "stun_mapped", "local_names")


def _render(out: Path, analysed_at: str, privacy: dict, browser) -> Rendered:
    with heap.without_cyclic_gc():
        return _render_all(out, analysed_at, privacy, browser)


def _render_all(out: Path, analysed_at: str, privacy: dict, browser) -> Rendered:
    data = load(out, skip=NOT_SHOWN)
    charts = build_charts(data)
    scripted = build_scripted(data, caption(data.summary, data.flows))
    result = Rendered()
    result.files += _write_charts(out, charts + ([scripted.chart] if scripted else []))
    html = render_html(data, fd.compute(data.flows, data.events, data.summary), charts, analysed_at, privacy,
                       scripted)
    result.files.append(_write_text(out / HTML, html))
    (out / PDF).unlink(missing_ok=True)  # never leave a PDF of another rendering behind
    if browser is not None:
        _pdf(out, analysed_at, result, browser)
    return result


def _write_charts(out: Path, charts: list[Chart]) -> list[Path]:
    folder = out / CHARTS
    folder.mkdir(exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    written = []
    for chart in charts:
        if chart.png:
            path = folder / f"{chart.name}.png"
            path.write_bytes(chart.png)
            written.append(path)
    return written


def _write_text(path: Path, text: str) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def _pdf(out: Path, analysed_at: str, result: Rendered, browser) -> None:
    from flowscope.report.pdf import PdfError
    try:
        result.files.append(browser.print_pdf(out / HTML, out / PDF, analysed_at))
    except (FileNotFoundError, PdfError) as exc:
        result.notes.append(f"report.pdf not written: {exc}")
