"""`flowscope diff DIR_A DIR_B`: two written analyses side by side.

Before and after a settings change, WhatsApp against WhatsApp Business, two app versions:
what changed in services, destinations (country, region, operator), bytes, events per kind,
and which remote endpoints are new or gone. Only WhatsApp/Meta flows count (is_meta), as in
the report. Computed from the evidence files (pseudonymised as written), never from captures.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from flowscope.report.data import ReportData, load
from flowscope.report.findings import ip_bytes, meta_mask

DIMENSIONS = (("service", "service"), ("country", "remote_country"), ("region", "region"),
              ("operator", "operator"))
MAX_ENDPOINTS_LISTED = 50


@dataclass
class Diff:
    a: str
    b: str
    totals: dict          # name -> (a, b)
    by: dict              # dimension -> [{key, flows_a, flows_b, bytes_a, bytes_b}]
    events: list          # [{kind, a, b}]
    new_endpoints: list   # [{endpoint, names, service, bytes}] only in B
    vanished_endpoints: list

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "totals": {k: {"a": a, "b": b} for k, (a, b) in self.totals.items()},
                "by": self.by, "events_by_kind": self.events,
                "new_endpoints": self.new_endpoints, "vanished_endpoints": self.vanished_endpoints}

    def text(self) -> str:
        lines = [f"A: {self.a}", f"B: {self.b}", "", f"{'':32} {'A':>14} {'B':>14} {'change':>14}"]
        for k, (a, b) in self.totals.items():
            lines.append(f"{k:32} {a:>14,} {b:>14,} {b - a:>+14,}")
        for dim, rows in self.by.items():
            lines += ["", f"WhatsApp/Meta IP bytes by {dim} (flows A/B)"]
            for r in rows:
                lines.append(f"  {r['key'][:30]:30} {r['bytes_a']:>14,} {r['bytes_b']:>14,} "
                             f"{r['bytes_b'] - r['bytes_a']:>+14,}  ({r['flows_a']}/{r['flows_b']})")
        lines += ["", "Events by kind"]
        lines += [f"  {r['kind']:30} {r['a']:>14,} {r['b']:>14,} {r['b'] - r['a']:>+14,}" for r in self.events]
        for title, rows in (("New endpoints (only in B)", self.new_endpoints),
                            ("Vanished endpoints (only in A)", self.vanished_endpoints)):
            lines += ["", f"{title}: {len(rows)}"]
            lines += [f"  {r['endpoint']:40} {r['service']:16} {r['bytes']:>12,}  {r['names']}"
                      for r in rows[:MAX_ENDPOINTS_LISTED]]
            if len(rows) > MAX_ENDPOINTS_LISTED:
                lines.append(f"  ... and {len(rows) - MAX_ENDPOINTS_LISTED} more (--json lists all)")
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        from flowscope.report.diffpage import render
        return render(self)


def compare(dir_a, dir_b) -> Diff:
    a, b = load(dir_a), load(dir_b)
    ma, mb = _meta(a.flows), _meta(b.flows)
    totals = {"flows": (len(a.flows), len(b.flows)), "WhatsApp/Meta flows": (len(ma), len(mb)),
              "IP bytes": (int(ip_bytes(a.flows).sum()), int(ip_bytes(b.flows).sum())),
              "WhatsApp/Meta IP bytes": (int(ma["ip_bytes"].sum()), int(mb["ip_bytes"].sum())),
              "WhatsApp/Meta endpoints": (ma["endpoint"].nunique(), mb["endpoint"].nunique())}
    by = {name: _side_by_side(ma, mb, col) for name, col in DIMENSIONS}
    ends_a, ends_b = _endpoints(ma), _endpoints(mb)
    return Diff(_name(dir_a, a), _name(dir_b, b), totals, by, _events(a, b),
                [ends_b[k] for k in sorted(set(ends_b) - set(ends_a))],
                [ends_a[k] for k in sorted(set(ends_a) - set(ends_b))])


def _name(path, data: ReportData) -> str:
    caps = ", ".join(Path(c.get("path", "")).name for c in data.summary.get("captures", []))
    return f"{path} ({caps})" if caps else str(path)


def _meta(flows: pd.DataFrame) -> pd.DataFrame:
    if "is_meta" not in flows or flows.empty:
        return flows.iloc[0:0].assign(ip_bytes=pd.Series(dtype="int64"), endpoint=pd.Series(dtype="object"))
    m = flows[meta_mask(flows)]
    key = m["remote_ip"] if "remote_ip" in m and m["remote_ip"].notna().any() else m["resp_ip"]
    return m.assign(ip_bytes=ip_bytes(m), endpoint=key.fillna(m["resp_ip"]))


def _side_by_side(ma: pd.DataFrame, mb: pd.DataFrame, col: str) -> list[dict]:
    def agg(m):
        if col not in m:
            return {}
        key = m[col].where(m[col].notna() & (m[col].astype(str) != ""), "unknown").astype(str)
        g = m.assign(_k=key).groupby("_k")
        return {k: (int(len(v)), int(v["ip_bytes"].sum())) for k, v in g}
    xa, xb = agg(ma), agg(mb)
    rows = [{"key": k, "flows_a": xa.get(k, (0, 0))[0], "flows_b": xb.get(k, (0, 0))[0],
             "bytes_a": xa.get(k, (0, 0))[1], "bytes_b": xb.get(k, (0, 0))[1]} for k in set(xa) | set(xb)]
    return sorted(rows, key=lambda r: (-max(r["bytes_a"], r["bytes_b"]), r["key"]))


def _events(a: ReportData, b: ReportData) -> list[dict]:
    ca = a.events["kind"].value_counts().to_dict() if a.events is not None else {}
    cb = b.events["kind"].value_counts().to_dict() if b.events is not None else {}
    return [{"kind": k, "a": int(ca.get(k, 0)), "b": int(cb.get(k, 0))} for k in sorted(set(ca) | set(cb))]


def _endpoints(m: pd.DataFrame) -> dict[str, dict]:
    out = {}
    for endpoint, g in m.groupby("endpoint", sort=True):
        names = sorted({h for h in g["hostname"] if isinstance(h, str) and h}) if "hostname" in g else []
        out[endpoint] = {"endpoint": endpoint, "names": ", ".join(names[:5]),
                         "service": ", ".join(sorted(set(g["service"].dropna()))),
                         "country": next((c for c in g.get("remote_country", []) if isinstance(c, str)), ""),
                         "bytes": int(g["ip_bytes"].sum())}
    return out


__all__ = ["Diff", "compare"]
