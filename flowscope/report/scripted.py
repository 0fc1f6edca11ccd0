"""The report's "Scripted session": the auditor's actions over the events, the per-action
table (what each action sent, where, who runs the endpoint) and the heuristics' scores.
Rendered from DIR/actions.parquet and summary.json `scenario`; scenario text (peers,
notes) reaches the page through the autoescaping template like any capture string."""
from __future__ import annotations

from dataclasses import dataclass

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from flowscope.report import charts as ch

NAME = "scripted_session"
TITLE = "Scripted session: the auditor's actions over the events"


@dataclass
class Scripted:
    chart: object                # html.Chart
    actions: list                # rows for the table
    by_action: list
    by_event_kind: list
    unexplained: str
    summary_line: str


@ch._styled
def timeline(actions: pd.DataFrame, events: pd.DataFrame | None, caption: str = "") -> Figure:
    """Events as marks per kind (one row a kind), actions as vertical lines (solid: matched,
    dashed: nothing within the tolerance) labelled with their action."""
    fig, axes = ch._figure(TITLE, caption, height=4.8)
    ax = axes[0, 0]
    ev = events if events is not None else pd.DataFrame(columns=["kind", "ts_start"])
    kinds = sorted(set(ev["kind"].dropna()))
    y_of = {k: i for i, k in enumerate(kinds)}
    if len(ev):
        x = mdates.date2num(ch._utc_naive(ev["ts_start"]).to_numpy())
        y = ev["kind"].map(y_of).fillna(0).to_numpy(dtype=np.int64)  # a kind-less event on row 0
        for kind in kinds:
            sel = ev["kind"].to_numpy() == kind
            ax.scatter(x[sel], y[sel], marker="|", s=120, linewidths=1.2, color=ch.KIND_COLOURS.get(kind, "#333333"),
                       label=f"{kind} ({int(sel.sum()):,})")
    at = mdates.date2num(ch._utc_naive(actions["time"]).to_numpy())
    top = max(len(kinds), 1) - 0.4
    for k, (t, action, matched) in enumerate(zip(at, actions["action"], actions["matched"])):
        ax.axvline(t, color="#1a1a1a" if matched else "#d73027", linestyle="-" if matched else "--", linewidth=0.8)
        ax.text(t, top + 0.15 + 0.35 * (k % 3), action, rotation=0, fontsize=6, ha="left",
                color="#1a1a1a" if matched else "#d73027")
    ax.set_yticks(range(len(kinds)), kinds)
    ax.set_ylim(-0.7, top + 1.4)
    ax.set_ylabel("event kind")
    ch._time_axis(ax)
    if kinds:
        ax.legend(title="events (count)", fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def build(data, caption: str):
    """Scripted (chart PNG included), or None without a scenario."""
    from flowscope.report.html import Chart
    if data.actions is None or "scenario" not in data.summary:
        return None
    sc = data.summary["scenario"]
    png = ch.png_bytes(timeline(data.actions, data.events, caption))
    chart = Chart(NAME, TITLE, caption, png)
    rows = []
    for r in data.actions.to_dict("records"):
        rows.append({"time": pd.Timestamp(r["time"]).strftime("%H:%M:%S"), "action": r["action"], "peer": r["peer"],
                     "note": r["note"], "matched": "yes" if r["matched"] else "no",
                     "lag": "" if pd.isna(r["lag_s"]) else f"{r['lag_s']:+.2f}",
                     "events": ", ".join(str(e) for e in r["event_ids"]),
                     "sent": f"{int(r['bytes_up']):,} up / {int(r['bytes_down']):,} down",
                     "services": ", ".join(r["services"]), "where": _where(r),
                     "operators": ", ".join(r["operators"])})
    by_action = [{"kind": k, **{x: ("" if v is None else v) for x, v in row.items()}}
                 for k, row in sc["by_action"].items()]
    by_event = [{"kind": k, **{x: ("–" if v is None else v) for x, v in row.items()}}
                for k, row in sc["by_event_kind"].items()]
    unexplained = ", ".join(f"{k} {v:,}" for k, v in sc["unexplained_events"].items()) or "none"
    line = (f"{sc['matched']} of {sc['actions']} actions matched an event they imply within "
            f"{sc['tolerance_s']:g} s (scenario {sc.get('file', '')}, SHA-256 {sc.get('sha256', '')})")
    return Scripted(chart, rows, by_action, by_event, unexplained, line)


def _where(r: dict) -> str:
    countries, regions = ", ".join(r["remote_countries"]), ", ".join(r["regions"])
    return f"{countries} ({regions})" if countries and regions else countries or regions
