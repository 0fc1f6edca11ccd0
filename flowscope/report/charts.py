"""Charts: pure functions from the analysis tables (pandas DataFrames) to matplotlib Figures.

    fig = charts.services(flows, caption="Data: sample_session.pcap, 2026-03-02")
    png = charts.png_bytes(fig)          # the same input gives the same bytes

Figures are built with the object API and drawn by Agg (no pyplot, no global figure
state, no display needed). Every function takes a `caption` (data source and date) that
is printed under the figure, so a PNG taken out of the report still says where it came
from. Text from captures (host names, countries, pseudonyms) is never parsed as mathtext.
A panel whose data is missing says "not available" and why.
"""
from __future__ import annotations

import io
import re
import textwrap
from contextlib import contextmanager
from functools import wraps

import matplotlib
import matplotlib.dates as mdates
import matplotlib.image as mimage
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from flowscope.geo import physics
from flowscope.report.findings import call_peers as peer_table
from flowscope.report.findings import ip_bytes, meta_mask
from flowscope.schema import SERVICES

DPI = 150
WIDTH_IN, HEIGHT_IN = 8.0, 4.4
RC = {
    "text.parse_math": False,        # a '$' in a host name must not become mathtext
    "font.family": "DejaVu Sans",    # shipped with matplotlib: the same glyphs everywhere
    "font.size": 8.5, "axes.titlesize": 9.5, "figure.titlesize": 11,
    "axes.spines.top": False, "axes.spines.right": False,
    "axes.grid": True, "grid.alpha": 0.3, "axes.axisbelow": True,
    "svg.hashsalt": "flowscope",     # deterministic ids should anyone save SVG
    "path.simplify": True, "agg.path.chunksize": 0,
}
SERVICE_COLOURS = dict(zip(SERVICES, (
    "#1b9e77", "#66a61e", "#d95f02", "#7570b3", "#a6761d",
    "#1f78b4", "#e7298a", "#6a3d9a", "#b15928", "#a6cee3", "#bdbdbd")))
REGION_ORDER = ("eu", "eea", "adequate", "third", "unknown")
REGION_COLOURS = {"eu": "#3b7dd8", "eea": "#69a7e8", "adequate": "#f0a030", "third": "#d7301f",
                  "unknown": "#bdbdbd"}
REGION_LABELS = {"eu": "EU", "eea": "EEA (IS, LI, NO)", "adequate": "adequacy decision",
                 "third": "third country", "unknown": "not located"}
KIND_COLOURS = {"message": "#d95f02", "receipt": "#7570b3", "presence": "#e7298a", "keepalive": "#bbbbbb",
                "contact-sync": "#e31a1c", "handshake": "#666666", "call": "#1b9e77", "media": "#1f78b4",
                "flow": "#a6761d"}
VERDICT_COLOURS = {"consistent": "#1a9850", "impossible": "#d73027"}
TOP_COUNTRIES = 12
TOP_ENDPOINTS = 20


@contextmanager
def style():
    """matplotlib settings for our figures only (the caller's rcParams are left alone)."""
    with matplotlib.rc_context(RC):
        yield


def _styled(build):
    @wraps(build)
    def wrapper(*args, **kwargs):
        with style():
            return build(*args, **kwargs)
    return wrapper


def png_bytes(fig: Figure, dpi: int = DPI) -> bytes:
    """PNG bytes without a timestamp or software version: same figure, same bytes.

    What `fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})` writes,
    byte for byte, with one pass of the layout engine and one draw instead of savefig's
    layout pass, empty draw and real draw (tests/report/test_charts.py compares them)."""
    return encode_png(draw(fig, dpi), dpi)


def draw(fig: Figure, dpi: int = DPI) -> np.ndarray:
    """The figure's pixels (RGBA, as savefig draws them at `dpi`): `encode_png` turns them
    into the PNG, on another thread if the caller likes (it does not touch the figure)."""
    canvas = FigureCanvasAgg(fig)
    with style():
        fig.dpi = dpi
        canvas.draw()
    return np.array(canvas.buffer_rgba())


def encode_png(pixels: np.ndarray, dpi: int = DPI) -> bytes:
    buf = io.BytesIO()
    mimage.imsave(buf, pixels, format="png", origin="upper", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def _figure(title: str, caption: str, nrows: int = 1, ncols: int = 1, height: float = HEIGHT_IN, **kw):
    fig = Figure(figsize=(WIDTH_IN, height), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    fig.suptitle(title, fontweight="bold", x=0.01, ha="left")
    if caption:
        fig.supxlabel("\n".join(textwrap.wrap(caption, 150)), x=0.01, ha="left", fontsize=6.5, color="#555555")
    return fig, axes


def _unavailable(ax, reason: str) -> None:
    ax.set_axis_off()
    ax.text(0.5, 0.5, "not available:\n" + "\n".join(textwrap.wrap(reason, 48)), ha="center", va="center",
            transform=ax.transAxes, color="#777777", fontsize=8)


def _empty(ax, text: str) -> None:
    ax.set_axis_off()
    ax.text(0.5, 0.5, "\n".join(textwrap.wrap(text, 60)), ha="center", va="center", transform=ax.transAxes)


def byte_scale(max_bytes: float) -> tuple[float, str]:
    """Divisor and unit so that the largest value reads between 1 and 1000."""
    for div, unit in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if max_bytes >= div:
            return div, unit
    return 1.0, "bytes"


def _utc_naive(ts: pd.Series) -> pd.Series:
    ts = pd.to_datetime(ts, utc=True)
    return ts.dt.tz_convert("UTC").dt.tz_localize(None)


def _time_axis(ax) -> None:
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_xlabel("time (UTC)")


# --- event timeline --------------------------------------------------------------------

@_styled
def event_timeline(events: pd.DataFrame | None, caption: str = "", reason: str = "") -> Figure:
    """One mark an event, a row per service and direction, coloured by event kind."""
    fig, axes = _figure("Events reaching WhatsApp/Meta over time", caption)
    ax = axes[0, 0]
    if events is None:
        _unavailable(ax, reason or "no events table")
        return fig
    if events.empty:
        _empty(ax, "No events in this capture.")
        return fig
    ev = events.assign(service=events["service"].fillna("unknown"), direction=events["direction"].fillna("?"))
    pair_codes, pairs = pd.MultiIndex.from_arrays([ev["service"], ev["direction"]]).factorize()
    rows = sorted(pairs, key=_row_key)  # the distinct (service, direction) pairs, one row each
    y_of = {row: i for i, row in enumerate(rows)}
    x = mdates.date2num(_utc_naive(ev["ts_start"]).to_numpy())
    y = np.array([y_of[pair] for pair in pairs], dtype=np.int64)[pair_codes]
    kinds = ev["kind"].fillna("unknown").to_numpy()
    for kind in sorted(set(kinds)):
        sel = kinds == kind
        ax.scatter(x[sel], y[sel], marker="|", s=120, linewidths=1.2, label=f"{kind} ({sel.sum():,})",
                   color=KIND_COLOURS.get(kind, "#333333"))
    ax.set_yticks(range(len(rows)), [f"{s} {_arrow(d)}" for s, d in rows])
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_ylabel("service, direction (↑ sent by the device, ↓ received)")
    _time_axis(ax)
    ax.legend(title="event kind (count)", fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def _row_key(row):
    service, direction = row
    order = SERVICES.index(service) if service in SERVICES else len(SERVICES)
    return (order, service, {"up": 0, "down": 1, "both": 2}.get(direction, 3), direction)


def _arrow(direction: str) -> str:
    return {"up": "↑", "down": "↓", "both": "↕"}.get(direction, direction)


# --- destinations by country and region ---------------------------------------------------

@_styled
def destinations(flows: pd.DataFrame, events: pd.DataFrame | None = None, caption: str = "",
                 events_reason: str = "") -> Figure:
    """WhatsApp/Meta IP bytes and events by the remote endpoint's country and GDPR region.

    Without events the figure holds the bytes row only and says why events are missing."""
    title = "Where WhatsApp/Meta traffic goes: country and region of the remote endpoint"
    rows = 1 if events is None else 2
    fig, axes = _figure(title if rows == 2 else f"{title}\n(events not available: {events_reason or 'no events table'})",
                        caption, rows, 2, height=3.4 + 2.8 * (rows - 1), gridspec_kw={"width_ratios": [2.2, 1]})
    if "region" not in flows or not flows["region"].notna().any():
        for ax in axes.flat:
            _unavailable(ax, "no geolocation (--no-geo)")
        return fig
    meta = flows.loc[meta_mask(flows), ["flow_id", "remote_country", "region", "bytes_orig", "bytes_resp"]].copy()
    meta["country"] = meta["remote_country"].fillna("not located")
    meta["region"] = meta["region"].fillna("unknown")
    meta["ip_bytes"] = ip_bytes(meta)
    region_of = meta.groupby("country")["region"].first()
    by_country = _top(meta.groupby("country")["ip_bytes"].sum(), TOP_COUNTRIES)
    by_region = meta.groupby("region")["ip_bytes"].sum().reindex(REGION_ORDER).dropna()
    div, unit = byte_scale(max(by_country.max() if len(by_country) else 0, 1))
    _bars(axes[0, 0], by_country / div, [REGION_COLOURS.get(region_of.get(c), "#999999") for c in by_country.index],
          f"IP bytes ({unit})", "IP bytes by country")
    _bars(axes[0, 1], by_region / div, [REGION_COLOURS[r] for r in by_region.index], f"IP bytes ({unit})",
          "IP bytes by region", labels=[REGION_LABELS[r] for r in by_region.index])
    if events is None:
        return fig
    ev = events.merge(meta[["flow_id", "country", "region"]], on="flow_id", how="left")
    ev["country"] = ev["country"].fillna("not located")
    ev["region"] = ev["region"].fillna("unknown")
    ev_country = _top(ev.groupby("country").size(), TOP_COUNTRIES)
    ev_region = ev.groupby("region").size().reindex(REGION_ORDER).dropna()
    _bars(axes[1, 0], ev_country, [REGION_COLOURS.get(region_of.get(c), "#999999") for c in ev_country.index],
          "events (count)", "Events by country")
    _bars(axes[1, 1], ev_region, [REGION_COLOURS[r] for r in ev_region.index], "events (count)",
          "Events by region", labels=[REGION_LABELS[r] for r in ev_region.index])
    return fig


def _top(series: pd.Series, n: int) -> pd.Series:
    """Largest first (ties by name); the rest summed as 'other'."""
    s = series[series > 0]
    s = s.iloc[np.lexsort((s.index.astype(str), -s.to_numpy()))]
    if len(s) > n:
        s = pd.concat([s.iloc[:n - 1], pd.Series({"other": s.iloc[n - 1:].sum()})])
    return s


def _bars(ax, values: pd.Series, colours, xlabel: str, title: str, labels=None) -> None:
    if values.empty:
        _empty(ax, "none")
        ax.set_title(title)
        return
    labels = list(labels if labels is not None else values.index.astype(str))
    y = np.arange(len(values))[::-1]
    ax.barh(y, values.to_numpy(dtype=float), color=colours)
    ax.set_yticks(y, labels)
    ax.set_xlabel(xlabel)
    ax.set_title(title, loc="left")
    ax.grid(axis="y", visible=False)


# --- service breakdown --------------------------------------------------------------------

@_styled
def services(flows: pd.DataFrame, events: pd.DataFrame | None = None, caption: str = "",
             events_reason: str = "") -> Figure:
    """Flows, IP bytes and events per service label."""
    fig, axes = _figure("Traffic by service", caption, 1, 3, sharey=True)
    if "service" not in flows or not flows["service"].notna().any():
        for ax in axes.flat:
            _unavailable(ax, "no classification (--no-classify)")
        return fig
    service = flows["service"].fillna("unlabelled")
    present = set(service.unique())
    order = [s for s in SERVICES if s in present] + sorted(present - set(SERVICES))
    colours = [SERVICE_COLOURS.get(s, "#999999") for s in order]
    n_flows = service.value_counts().reindex(order, fill_value=0)
    size = ip_bytes(flows).groupby(service).sum().reindex(order, fill_value=0)
    div, unit = byte_scale(max(size.max(), 1))
    _bars(axes[0, 0], n_flows, colours, "flows (count)", "Flows")
    _bars(axes[0, 1], size / div, colours, f"IP bytes ({unit})", "IP bytes", labels=order)
    if events is None:
        _unavailable(axes[0, 2], events_reason or "no events table")
    else:
        n_events = events["service"].fillna("unlabelled").value_counts().reindex(order, fill_value=0)
        _bars(axes[0, 2], n_events, colours, "events (count)", "Events", labels=order)
    return fig


# --- RTT bound versus database distance -------------------------------------------------------

CHECK = re.compile(r"(?P<source>[^=;]+)=(?P<country>\S*) (?P<km>[0-9.]+) km (?P<verdict>consistent|impossible)")


def geo_check_points(flows: pd.DataFrame) -> pd.DataFrame:
    """One row per (remote endpoint, location answer) that was checked against its RTT bound."""
    cols = ["remote_ip", "source", "country", "distance_km", "bound_km", "verdict"]
    if "geo_checks" not in flows:
        return pd.DataFrame(columns=cols)
    per_ip = (flows[["remote_ip", "max_distance_km", "geo_checks"]].dropna(subset=["max_distance_km"])
              .drop_duplicates("remote_ip").sort_values("remote_ip"))
    per_ip = per_ip[(per_ip["geo_checks"] != "").to_numpy(dtype=bool)]  # an empty text checks nothing
    rows = [(ip, m["source"].strip(), m["country"], float(m["km"]), float(bound), m["verdict"])
            for ip, bound, checks in zip(per_ip["remote_ip"], per_ip["max_distance_km"], per_ip["geo_checks"])
            for m in CHECK.finditer(checks or "")]
    return pd.DataFrame(rows, columns=cols)


@_styled
def rtt_bounds(flows: pd.DataFrame, caption: str = "", km_per_ms: dict | None = None) -> Figure:
    """Distance from the capture point to each database answer versus the RTT bound."""
    fibre = (km_per_ms or {}).get("fibre", physics.FIBRE)
    vacuum = (km_per_ms or {}).get("vacuum", physics.VACUUM)
    fig, axes = _figure("Physical check: database location versus the round-trip-time bound", caption)
    ax = axes[0, 0]
    if "max_distance_km" not in flows or not flows["max_distance_km"].notna().any():
        _unavailable(ax, "no trusted RTT to any remote endpoint (or --no-geo)")
        return fig
    points = geo_check_points(flows)
    if points.empty:
        _bound_bars(ax, flows, vacuum / fibre)
        return fig
    top = max(points["bound_km"].max() * vacuum / fibre, points["distance_km"].max()) * 1.1
    xs = np.array([0.0, top])
    ax.fill_between(xs, xs * vacuum / fibre, top * 2, color=VERDICT_COLOURS["impossible"], alpha=0.08,
                    label="impossible: farther than light in vacuum")
    ax.plot(xs, xs, color="#555555", lw=1, label=f"fibre bound ({fibre:.2f} km per ms of RTT)")
    ax.plot(xs, xs * vacuum / fibre, color="#555555", lw=1, ls="--",
            label=f"vacuum bound ({vacuum:.2f} km per ms of RTT)")
    for verdict in ("consistent", "impossible"):
        sel = points[points["verdict"] == verdict]
        ax.scatter(sel["bound_km"], sel["distance_km"], color=VERDICT_COLOURS[verdict], s=28, zorder=3,
                   label=f"{verdict} ({len(sel)})")
    for r in points[points["verdict"] == "impossible"].head(TOP_ENDPOINTS).itertuples():
        ax.annotate(f"{r.source}={r.country}", (r.bound_km, r.distance_km), fontsize=6.5,
                    xytext=(4, 2), textcoords="offset points")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("RTT bound: maximum distance in fibre (km)")
    ax.set_ylabel("distance from the capture point to the database location (km)")
    ax.legend(fontsize=7, loc="upper left")
    return fig


def _bound_bars(ax, flows: pd.DataFrame, vacuum_factor: float) -> None:
    """Without a vantage point nothing is checked; the bounds themselves still say how far
    each endpoint can be at most."""
    per_ip = (flows[["remote_ip", "max_distance_km", "remote_country"]].dropna(subset=["max_distance_km"])
              .drop_duplicates("remote_ip").sort_values(["max_distance_km", "remote_ip"]).head(TOP_ENDPOINTS))
    y = np.arange(len(per_ip))[::-1]
    ax.barh(y, per_ip["max_distance_km"] * vacuum_factor, color="#d9d9d9", label="vacuum bound")
    ax.barh(y, per_ip["max_distance_km"], color="#6a8caf", label="fibre bound")
    labels = [f"{ip} ({c})" if isinstance(c, str) else str(ip)
              for ip, c in zip(per_ip["remote_ip"], per_ip["remote_country"])]
    ax.set_yticks(y, labels)
    ax.set_xlabel("maximum distance from the capture point (km)")
    ax.set_title("no vantage point given (--vantage): bounds only, locations not checked", loc="left")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(axis="y", visible=False)


# --- activity per hour --------------------------------------------------------------------------

@_styled
def activity_per_hour(events: pd.DataFrame | None, flows: pd.DataFrame, caption: str = "") -> Figure:
    """Events per clock hour (UTC), stacked by kind; without events, flows started per hour."""
    fig, axes = _figure("Activity per hour", caption)
    ax = axes[0, 0]
    if events is not None:
        ts, groups, what, colours = events["ts_start"], events["kind"].fillna("unknown"), "events", KIND_COLOURS
    elif "is_meta" in flows and flows["is_meta"].notna().any():
        groups = meta_mask(flows).map({True: "WhatsApp/Meta", False: "other"})
        ts, what, colours = flows["ts_start"], "flows started (no events table)", \
            {"WhatsApp/Meta": "#1b9e77", "other": "#bdbdbd"}
    else:
        ts, groups, what, colours = flows["ts_start"], pd.Series("all", index=flows.index), "flows started", {}
    if len(ts) == 0:
        _empty(ax, "No activity in this capture.")
        return fig
    bin_name, period, freq, width_days = _time_bin(_utc_naive(ts))
    slot = _utc_naive(ts).dt.to_period(period).dt.start_time
    counts = pd.crosstab(slot.to_numpy(), groups.to_numpy())
    full = pd.date_range(counts.index.min(), counts.index.max(), freq=freq)
    counts = counts.reindex(full, fill_value=0)
    x = mdates.date2num(counts.index.to_numpy())
    bottom = np.zeros(len(counts))
    for name in sorted(counts.columns, key=lambda k: (k == "other", str(k))):
        ax.bar(x, counts[name].to_numpy(), width=width_days * 0.9, bottom=bottom, align="edge",
               color=colours.get(name, "#888888"), label=str(name))
        bottom += counts[name].to_numpy()
    if bin_name != "hour":  # captures that span weeks or years: one bar an hour would be unreadable
        ax.set_title(f"Activity per {bin_name} (the captures span {len(full):,} {bin_name}s)", loc="left",
                     fontsize=9)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(ax.xaxis.get_major_locator()))
        ax.set_xlabel(f"{bin_name} (UTC); a bar counts one {bin_name}")
        ax.set_ylabel(f"{what} per {bin_name} (count)")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        return fig
    _hour_axis(ax, x[0], x[-1])
    ax.set_xlabel("hour (UTC); a bar counts one clock hour")
    ax.set_ylabel(f"{what} per hour (count)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


MAX_BARS = 400  # more bars than this are neither drawable in time nor readable


def _time_bin(ts: pd.Series) -> tuple[str, str, str, float]:
    """(name, pandas period, date_range frequency, width in days) of the finest bin that
    keeps the bars few."""
    span_h = (ts.max() - ts.min()) / pd.Timedelta(hours=1)
    for name, period, freq, days in (("hour", "h", "h", 1 / 24), ("day", "D", "D", 1.0),
                                     ("week", "W-SUN", "W-MON", 7.0), ("month", "M", "MS", 30.0)):
        if span_h / (days * 24) < MAX_BARS:
            return name, period, freq, days
    return "year", "Y", "YS", 365.0


def _hour_axis(ax, first: float, last: float) -> None:
    """Whole hours as ticks, with an hour of margin so that one bar does not fill the axis."""
    hours = round((last - first) * 24) + 1
    ax.set_xlim(first - 1 / 24, last + 2 / 24)
    if hours <= 72:
        locator = mdates.HourLocator(interval=max(1, (hours + 2) // 12 + 1))
    else:
        locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


# --- call peers -----------------------------------------------------------------------------

@_styled
def call_peer_exposure(flows: pd.DataFrame, caption: str = "") -> Figure:
    """Each call peer whose address the device saw (direct call legs): call time and bytes."""
    fig, axes = _figure("Call peers: addresses exchanged directly in peer-to-peer calls", caption)
    ax = axes[0, 0]
    if "service" not in flows or not flows["service"].notna().any():
        _unavailable(ax, "no classification (--no-classify)")
        return fig
    peers = peer_table(flows)
    if peers.empty:
        _empty(ax, "No direct (peer-to-peer) call legs: no call peer's address was exposed in this capture.")
        return fig
    peers = peers.head(TOP_ENDPOINTS)
    y = np.arange(len(peers))  # first peer on top; room for six rows keeps one bar slim
    ax.barh(y, peers["duration_s"], height=0.6, color="#1b9e77")
    ax.set_ylim(max(len(peers), 6) - 0.2, -0.8)
    div, unit = byte_scale(max(peers["bytes"].max(), 1))
    for yi, r in zip(y, peers.itertuples()):
        ax.annotate(f"{r.bytes / div:,.1f} {unit}, {r.legs} leg(s), {r.country or 'not located'}",
                    (r.duration_s, yi), xytext=(4, 0), textcoords="offset points", va="center", fontsize=7)
    ax.set_yticks(y, peers["peer"].astype(str))
    ax.set_xlim(0, peers["duration_s"].max() * 1.6 or 1)
    ax.set_xlabel("time in direct call legs with the peer (s)")
    ax.set_ylabel("call peer")
    ax.grid(axis="y", visible=False)
    return fig
