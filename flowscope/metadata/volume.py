"""Volume of what reaches Meta: bytes, packets, flows and events per service, region,
country, operator jurisdiction, hour and local device; and the share leaving the EU/EEA.

Pure functions, DataFrame in, DataFrame out: `flows` and `events` as AnalysisResult gives
them (flows.parquet / events.parquet columns). Only WhatsApp/Meta flows (is_meta) count.
Bytes are IP bytes; "up" is from the local device. A flow counts in the hour it started.
"""
from __future__ import annotations

import pandas as pd

from flowscope.geo import regions
from flowscope.metadata.sides import local_is_orig

IN_EU_EEA = ("eu", "eea")
OUTSIDE_EU_EEA = ("adequate", "third")
COUNTS = ["flows", "packets", "bytes", "bytes_up", "bytes_down", "events"]


def meta_flows(flows: pd.DataFrame) -> pd.DataFrame:
    """The Meta flows with local_ip, bytes, bytes_up, bytes_down, packets and hour added."""
    m = flows[flows["is_meta"].fillna(False).astype(bool)].copy()
    remote = m["remote_ip"].tolist() if "remote_ip" in m else None
    orig = pd.Series(local_is_orig(m["orig_ip"].tolist(), m["resp_ip"].tolist(), remote), index=m.index, dtype=bool)
    m["local_ip"] = m["orig_ip"].where(orig, m["resp_ip"])
    m["bytes"] = m["bytes_orig"] + m["bytes_resp"]
    m["bytes_up"] = m["bytes_orig"].where(orig, m["bytes_resp"])
    m["bytes_down"] = m["bytes_resp"].where(orig, m["bytes_orig"])
    m["packets"] = m["pkts_orig"] + m["pkts_resp"]
    m["hour"] = m["ts_start"].dt.floor("h")
    return m


def volume_by(flows: pd.DataFrame, events: pd.DataFrame | None = None, key: str = "service") -> pd.DataFrame:
    """Totals per value of `key`: a flows column (service, region, remote_country,
    operator_country, operator, local_ip...) or "hour" (UTC; events by their own start)."""
    m = meta_flows(flows)
    m[key] = m[key].fillna("unknown") if key != "hour" else m[key]
    out = m.groupby(key, dropna=False).agg(flows=("flow_id", "size"), packets=("packets", "sum"),
                                          bytes=("bytes", "sum"), bytes_up=("bytes_up", "sum"),
                                          bytes_down=("bytes_down", "sum"))
    out["events"] = 0
    if events is not None and len(events):
        if key == "hour":
            ev = events["ts_start"].dt.floor("h").value_counts()
        else:
            ev = events[["flow_id"]].merge(m[["flow_id", key]], on="flow_id", how="inner")[key].value_counts()
        out = out.join(ev.rename("events_n"), how="outer")
        out["events"] = out.pop("events_n")
        out = out.fillna(0)
    out = out.astype({c: "int64" for c in COUNTS})
    total = out["bytes"].sum()
    out["share_bytes"] = out["bytes"] / total if total else 0.0
    out = out.reset_index().rename(columns={"index": key})
    return out.sort_values(key if key == "hour" else ["bytes", key], ascending=key == "hour",
                           kind="stable").reset_index(drop=True)


def leaving_eu(flows: pd.DataFrame) -> pd.DataFrame:
    """Share of Meta bytes and flows that leave the EU/EEA, on two bases:
    location (region of the remote endpoint: adequate or third country = outside; unknown
    apart) and operator (operator_country outside the EEA = outside; unknown apart)."""
    m = meta_flows(flows)
    eea = regions.eea_members()
    region = m["region"].fillna("unknown")
    where = {"location": region.map(lambda r: "inside" if r in IN_EU_EEA
                                    else "outside" if r in OUTSIDE_EU_EEA else "unknown"),
             "operator": m["operator_country"].map(lambda c: "unknown" if not isinstance(c, str) or not c
                                                   else "inside" if c.upper() in eea else "outside")}
    rows = []
    for basis, side in where.items():
        b = m["bytes"].groupby(side).sum()
        f = side.value_counts()
        total = int(m["bytes"].sum())
        rows.append({"basis": basis, "flows": len(m), "flows_outside": int(f.get("outside", 0)),
                     "flows_unknown": int(f.get("unknown", 0)), "bytes": total,
                     "bytes_eu_eea": int(b.get("inside", 0)), "bytes_outside": int(b.get("outside", 0)),
                     "bytes_unknown": int(b.get("unknown", 0)),
                     "share_outside": b.get("outside", 0) / total if total else 0.0,
                     "share_not_eu_eea": (total - b.get("inside", 0)) / total if total else 0.0})
    return pd.DataFrame(rows)


def per_device(flows: pd.DataFrame, events: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per local address (`local_ip`, as captured: a phone's IPv4 and IPv6 are two rows;
    pseudonymise before publishing): Meta flows, packets, bytes, events, services, span."""
    m = meta_flows(flows)
    out = volume_by(flows, events, "local_ip").drop(columns="share_bytes")
    extra = m.groupby("local_ip").agg(services=("service", lambda s: ",".join(sorted(set(s.dropna())))),
                                      first_seen=("ts_start", "min"), last_seen=("ts_end", "max"))
    return out.merge(extra.reset_index(), on="local_ip", how="left")


def summary(flows: pd.DataFrame, events: pd.DataFrame) -> dict:
    """The compact numbers summary.json carries (the tables above hold the detail)."""
    if not flows["is_meta"].fillna(False).any():
        return {}
    eu = leaving_eu(flows).set_index("basis")
    by_service = volume_by(flows, events, "service")
    return {
        "bytes_by_service": dict(zip(by_service["service"], by_service["bytes"].astype(int).tolist())),
        "leaving_eu_eea": {basis: {k: (round(float(v), 4) if k.startswith("share") else int(v))
                                   for k, v in eu.loc[basis].items()} for basis in eu.index},
        "local_devices": int(meta_flows(flows)["local_ip"].nunique()),
    }
