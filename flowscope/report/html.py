"""report.html: one self-contained page (images as data: URIs, CSS inline, no script).

Everything taken from a capture (host names, SNI, app names, DNS names, catalog rules)
reaches the page through Jinja2 with autoescaping on, and a Content-Security-Policy that
allows no script and no request at all: a crafted server name stays text.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd

from flowscope._version import __version__
from flowscope.geo import operators, readers
from flowscope.report import business, transfers
from flowscope.report.findings import Findings, ip_bytes, meta_mask
from flowscope.report.text import METHOD, period_text

TEMPLATES = Path(__file__).with_name("templates")
TOP_ENDPOINTS = 15
REGION_WORDS = {"adequate": "adequacy-decision countries", "third": "third countries", "unknown": "not located"}


@dataclass
class Chart:
    name: str                 # file stem in charts/
    title: str
    caption: str
    png: bytes | None = None  # None: not available
    reason: str = ""

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["flow_id_runs"] = flow_id_runs
    return env


FLOW_ID_RUNS_SHOWN = 40


def flow_id_runs(ids: list[int], shown: int = FLOW_ID_RUNS_SHOWN) -> str:
    """A recipient's flow ids as runs of consecutive ids ("3–7, 12"), the first `shown`
    runs; the others are counted and left to transfers.json, which lists every id (and
    which the manifest hashes). A mirror port's 38k Meta flows made 250 of the PDF's
    306 pages a list of numbers (benchmarks/README.md, "The report's cost")."""
    runs: list[list[int]] = []
    for fid in ids:
        if runs and fid == runs[-1][1] + 1:
            runs[-1][1] = fid
        else:
            runs.append([fid, fid])
    text = ", ".join(f"{a}–{b}" if b > a else str(a) for a, b in runs[:shown])
    rest = sum(b - a + 1 for a, b in runs[shown:])
    return text + (f" and {rest:,} more (transfers.json lists every one)" if rest else "")


def render_html(data, findings: Findings, charts: list[Chart], analysed_at: str, privacy: dict,
                scripted=None) -> str:
    summary = data.summary
    databases = _databases(summary)
    # DB-IP's licence asks for its attribution where its data are shown, and only there
    dbip = readers.DBIP_ATTRIBUTION if any(d["name"] == readers.DBIP_NAME for d in databases) else ""
    return _environment().get_template("report.html.j2").render(
        title=_title(summary), period=period_text(data.flows), version=__version__,
        analysed_at=analysed_at, findings=findings_items(findings), charts=charts,
        endpoints=endpoint_rows(data.flows), method=METHOD, warnings=_warnings(summary),
        captures=_captures(summary), databases=databases, dbip=dbip,
        sources=_sources(summary), settings=_settings(summary, privacy),
        controller_note=operators.EU_CONTROLLER_NOTE, scripted=scripted,
        business=business.section(data.flows, data.events), transfers=_transfers(data))


def _transfers(data) -> dict:
    """transfers.json as written (or rebuilt from the tables of an older analysis)."""
    return data.transfers if data.transfers is not None else transfers.build(data.flows, data.events, data.summary)


def _title(summary: dict) -> str:
    names = [Path(c["path"]).name for c in summary.get("captures", [])]
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return shown or "no capture"


def _n(x) -> str:
    return f"{int(x):,}"


def _pct(share) -> str:
    return "–" if share is None or share.percent is None else f"{share.percent:.1f} %"


def findings_items(f: Findings) -> list[dict]:
    """(label, value, note) rows for the first screen; 'not available' says why."""
    items = []

    def add(label, value, note="", key=None):
        if value is None:
            items.append({"label": label, "value": "not available", "note": f.missing.get(key, note), "na": True})
        else:
            items.append({"label": label, "value": value, "note": note, "na": False})

    add("Flows reaching WhatsApp/Meta",
        f.flows and f"{_n(f.flows.part)} of {_n(f.flows.whole)} ({_pct(f.flows)})", key="flows")
    add("IP bytes reaching WhatsApp/Meta",
        f.bytes and f"{_n(f.bytes.part)} of {_n(f.bytes.whole)} bytes ({_pct(f.bytes)})",
        "both directions, IP headers included", key="flows")
    add("Events reaching WhatsApp/Meta", None if f.events is None else _n(f.events),
        ", ".join(f"{k} {_n(v)}" for k, v in f.events_by_kind.items()) + (
            " (kinds are heuristics from frame size and timing)" if f.events else ""), key="events")
    add("Leaving the EU/EEA by location", f.outside_location and
        f"{_pct(f.outside_location)} of WhatsApp/Meta IP bytes ({_n(f.outside_location.part)} bytes)",
        _location_note(f), key="location")
    add("Leaving the EU/EEA by operator jurisdiction", f.outside_jurisdiction and
        f"{_pct(f.outside_jurisdiction)} of WhatsApp/Meta IP bytes ({_n(f.outside_jurisdiction.part)} bytes)",
        _jurisdiction_note(f), key="location")
    add("Call peers exposed", None if f.peers is None else _peers_value(f.peers), _peers_note(f.peers), key="peers")
    add("Counterparts revealed: people", None if f.people is None else _people_value(f.people),
        "distinct call peers (their own addresses); recipient devices the outbound messages address, "
        "estimated from frame sizes (a lower bound; the sender's own companion devices included)",
        key="counterparts")
    add("Infrastructure contacted", None if f.infrastructure is None else _infrastructure_value(f.infrastructure),
        "relays counted once per call (not once per leg); servers: other WhatsApp/Meta addresses",
        key="counterparts")
    add("Locations ruled out by physics", None if f.impossible is None else
        f"{_n(f.impossible)} flows", f"RTT bound checked from the vantage point {f.vantage}" if f.vantage else "",
        key="impossible")
    return items


def _people_value(p: dict) -> str:
    return (f"{_n(p['call peers'])} call peer(s), {_n(p['recipient devices (at least)'])} recipient device(s) "
            f"in {_n(p['outbound messages'])} outbound message(s)")


def _infrastructure_value(i: dict) -> str:
    return f"{_n(i['call relays'])} call relay(s) in {_n(i['calls'])} call(s), {_n(i['servers'])} server(s)"


def _location_note(f: Findings) -> str:
    if not f.location or not f.outside_location or not f.outside_location.whole:
        return ""
    whole = f.outside_location.whole
    parts = [f"{REGION_WORDS.get(k, k)} {100 * v / whole:.1f} %" for k, v in f.location.items()
             if k in REGION_WORDS and v]
    return ("where the first server (edge, relay, CDN) stands: " + "; ".join(parts)) if parts else \
        "where the first server (edge, relay, CDN) stands"


def _jurisdiction_note(f: Findings) -> str:
    if not f.jurisdiction or not f.outside_jurisdiction or not f.outside_jurisdiction.whole:
        return ""
    whole = f.outside_jurisdiction.whole
    parts = [f"{k} {100 * v / whole:.1f} %" for k, v in f.jurisdiction.items() if v]
    return "country of incorporation of the endpoint's operator: " + "; ".join(parts)


def _peers_value(peers: pd.DataFrame) -> str:
    if peers.empty:
        return "none"
    return f"{len(peers)} peer address{'es' if len(peers) != 1 else ''} in {_n(peers['legs'].sum())} direct call leg(s)"


def _peers_note(peers) -> str:
    if peers is None or peers.empty:
        return "no peer-to-peer call leg: calls, if any, went through relays"
    countries = sorted({c for c in peers["country"] if isinstance(c, str)})
    return (f"{peers['duration_s'].sum():,.1f} s of direct media; each side learns the other's IP address"
            + (f"; peer countries: {', '.join(countries)}" if countries else ""))


ENDPOINT_FIRST = ("remote_country", "region", "operator", "operator_country", "max_distance_km", "geo_consistent")


def endpoint_rows(flows: pd.DataFrame) -> list[dict]:
    """The WhatsApp/Meta remote endpoints carrying the most bytes.

    Column-wise: flows and bytes are summed per endpoint over the whole table; names,
    services and the endpoint's first flow (country, region, operator, bound, check) are
    looked up for the shown endpoints only."""
    if flows.empty or "is_meta" not in flows or not flows["is_meta"].notna().any():
        return []
    mask = meta_mask(flows)
    meta = flows.loc[mask, [c for c in ("remote_ip", "resp_ip", "hostname", "service", *ENDPOINT_FIRST)
                            if c in flows.columns]]
    size = ip_bytes(flows.loc[mask, ["bytes_orig", "bytes_resp"]])
    key = meta["remote_ip"] if "remote_ip" in meta and meta["remote_ip"].notna().any() else meta["resp_ip"]
    endpoint = key.fillna(meta["resp_ip"])
    keep = endpoint.notna().to_numpy()  # groupby drops a missing key
    meta, size, endpoint = meta[keep], size[keep], endpoint[keep]
    if meta.empty:
        return []
    # one row an endpoint, in the order of its first flow
    codes, uniques = pd.factorize(endpoint, sort=False)
    n_flows = np.bincount(codes, minlength=len(uniques))
    n_bytes = np.zeros(len(uniques), dtype="int64")
    np.add.at(n_bytes, codes, size.to_numpy(dtype="int64"))
    # largest first, ties by endpoint: the order of sorting (-bytes, endpoint), among the
    # endpoints that reach the TOP_ENDPOINTS-th largest byte count (the others cannot be shown)
    least = np.sort(n_bytes)[::-1][min(TOP_ENDPOINTS, len(n_bytes)) - 1]
    candidates = np.flatnonzero(n_bytes >= least).tolist()
    top = sorted(candidates, key=lambda i: (-int(n_bytes[i]), uniques[i]))[:TOP_ENDPOINTS]
    first = np.unique(codes, return_index=True)[1]  # position of each endpoint's first flow
    shown = np.isin(codes, top)
    hosts = _distinct(codes[shown], meta["hostname"].to_numpy(dtype=object)[shown], nonempty=True)
    services = _distinct(codes[shown], meta["service"].to_numpy(dtype=object)[shown])
    rows = []
    for i in top:
        row = {c: meta[c].iloc[first[i]] for c in ENDPOINT_FIRST if c in meta}
        rows.append({
            "endpoint": uniques[i], "names": _names(sorted(hosts.get(i, ()))),
            "services": ", ".join(sorted(services.get(i, ()))),
            "country": _text(row.get("remote_country")), "region": _text(row.get("region")),
            "operator": _join(row.get("operator"), row.get("operator_country")),
            "flows": _n(n_flows[i]), "bytes": _n(n_bytes[i]),
            "bound_km": _km(row.get("max_distance_km")), "check": _check(row.get("geo_consistent")),
        })
    return rows


def _distinct(codes: np.ndarray, values: np.ndarray, nonempty: bool = False) -> dict[int, set]:
    """Endpoint code -> the set of its values that are text (non-empty ones with `nonempty`)."""
    out: dict[int, set] = {}
    pairs = pd.DataFrame({"code": codes, "value": values}).dropna().drop_duplicates()
    for code, value in zip(pairs["code"].tolist(), pairs["value"].tolist()):
        if isinstance(value, str) and (value or not nonempty):
            out.setdefault(code, set()).add(value)
    return out


def _names(names: list[str], shown: int = 5) -> str:
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")


def _text(v) -> str:
    return v if isinstance(v, str) else ""


def _join(op, country) -> str:
    op, country = _text(op), _text(country)
    return f"{op} ({country})" if op and country else op or country


def _km(v) -> str:
    return "" if v is None or pd.isna(v) else f"≤ {v:,.0f}"


def _check(v) -> str:
    """The location check of an endpoint's first flow. A column without nulls loads as numpy
    booleans, one with nulls as objects: both are results; None/NA is no check."""
    if isinstance(v, (bool, np.bool_)):
        return "consistent" if v else "impossible"
    return ""


def _warnings(summary: dict) -> list[str]:
    return list((summary.get("geo") or {}).get("warnings", [])) + \
        list((summary.get("metadata") or {}).get("warnings", []))


def _captures(summary: dict) -> list[dict]:
    return [{"path": c.get("path", ""), "sha256": c.get("sha256") or "", "format": c.get("format") or "",
             "packets": _n(c.get("packets_read", 0)), "error": c.get("error") or ""}
            for c in summary.get("captures", [])]


def _databases(summary: dict) -> list[dict]:
    return [{k: d.get(k) or "" for k in ("name", "kind", "build_date", "licence", "attribution")}
            for d in (summary.get("geo") or {}).get("databases", [])]


def _sources(summary: dict) -> list[str]:
    geo = summary.get("geo") or {}
    out = []
    if summary.get("catalog"):
        out.append(f"Service catalog {summary['catalog'].get('version', '')} "
                   f"({len(summary['catalog'].get('sources', []))} files, each entry with its source and date)")
    if geo.get("airports"):
        out.append(f"Airport table for PoP codes: {geo['airports'].get('source', '')}")
    if geo.get("regions"):
        out.append(f"EU/EEA membership and adequacy decisions as of {geo['regions'].get('as_of', '')}")
    return out


def _settings(summary: dict, privacy: dict) -> list[tuple[str, str]]:
    settings = dict(summary.get("settings") or {})
    settings.update({k: privacy.get(k) for k in ("pseudonymized", "pseudonym_key_id")})
    return [(k, "" if v is None else ", ".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v))
            for k, v in settings.items()]
