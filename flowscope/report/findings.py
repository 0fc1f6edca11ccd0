"""The numbers an auditor needs first, computed from the tables (DataFrames in, plain data out).

Every figure says what it counts; a figure the tables cannot give is None together with the
reason, so the report prints "not available: <reason>" instead of a misleading zero.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa

from flowscope.geo import regions
from flowscope.report.pseudonym import peer_addresses

OUTSIDE_LOCATION = ("adequate", "third")   # regions that are not EU/EEA (unknown kept apart)
NO_CLASSIFY = "classification was off (--no-classify)"
NO_GEO = "geolocation was off (--no-geo)"
NO_EVENTS = "no events.parquet (events are derived by the metadata stage)"


@dataclass
class Share:
    part: float
    whole: float

    @property
    def percent(self) -> float | None:
        return 100.0 * self.part / self.whole if self.whole else None


@dataclass
class Findings:
    flows: Share | None = None
    bytes: Share | None = None                  # IP bytes, both directions
    events: int | None = None
    events_by_kind: dict = field(default_factory=dict)
    location: dict | None = None                # region -> Meta IP bytes
    location_flows: dict | None = None          # region -> Meta flows
    outside_location: Share | None = None       # Meta bytes to edges outside the EU/EEA
    jurisdiction: dict | None = None            # operator_country -> Meta IP bytes
    outside_jurisdiction: Share | None = None   # Meta bytes to operators outside the EU/EEA
    peers: pd.DataFrame | None = None           # one row a call peer
    counterparts: dict | None = None            # counterparts_basis -> sum over flows (relays: per leg!)
    people: dict | None = None                  # who the operator learns of: call peers, recipient devices
    infrastructure: dict | None = None          # what the devices talked to: call relays (once per call), servers
    impossible: int | None = None               # flows whose database location physics rules out
    vantage: str | None = None
    missing: dict = field(default_factory=dict) # finding name -> why it is not available


def ip_bytes(flows: pd.DataFrame) -> pd.Series:
    return flows["bytes_orig"].fillna(0).astype("int64") + flows["bytes_resp"].fillna(0).astype("int64")


def meta_mask(flows: pd.DataFrame) -> pd.Series:
    return flows["is_meta"].fillna(False).astype(bool)


def compute(flows: pd.DataFrame, events: pd.DataFrame | None, summary: dict) -> Findings:
    f = Findings(vantage=((summary.get("geo") or {}).get("vantage") or {}).get("given"))
    classified = "is_meta" in flows and flows["is_meta"].notna().any()
    if not classified and len(flows):
        f.missing.update(flows=NO_CLASSIFY, location=NO_CLASSIFY, peers=NO_CLASSIFY)
    else:
        _meta_shares(f, flows)
        _geography(f, flows, summary)
        f.peers = call_peers(flows)
    _events(f, flows, events)
    _counterparts(f, flows)
    _people_and_infrastructure(f, flows, events, summary)
    return f


def _meta_shares(f: Findings, flows: pd.DataFrame) -> None:
    meta = meta_mask(flows)
    size = ip_bytes(flows)
    f.flows = Share(int(meta.sum()), len(flows))
    f.bytes = Share(int(size[meta].sum()), int(size.sum()))


def _geography(f: Findings, flows: pd.DataFrame, summary: dict) -> None:
    if "region" not in flows or not flows["region"].notna().any():
        f.missing["location"] = NO_GEO if len(flows) else "no flows"
        return
    meta = flows.loc[meta_mask(flows), ["bytes_orig", "bytes_resp", "region", "operator_country"]]
    size = ip_bytes(meta)
    region = meta["region"].fillna("unknown")
    f.location = {k: int(v) for k, v in size.groupby(region).sum().sort_index().items()}
    f.location_flows = {k: int(v) for k, v in region.value_counts().sort_index().items()}
    f.outside_location = Share(int(size[region.isin(OUTSIDE_LOCATION)].sum()), int(size.sum()))
    country = meta["operator_country"].fillna("unknown")
    f.jurisdiction = {k: int(v) for k, v in size.groupby(country).sum().sort_index().items()}
    eea = regions.eea_members()
    outside = meta["operator_country"].notna() & ~meta["operator_country"].isin(eea)
    f.outside_jurisdiction = Share(int(size[outside].sum()), int(size.sum()))
    if f.vantage:
        f.impossible = int(flows["geo_consistent"].eq(False).sum())
    else:
        f.missing["impossible"] = "no vantage point given (--vantage): locations not checked against RTT"


def call_peers(flows: pd.DataFrame) -> pd.DataFrame:
    """One row a call peer (remote endpoint of direct call legs): legs, duration, bytes, country."""
    cols = ["peer", "legs", "duration_s", "bytes", "country", "first_seen"]
    if flows.empty:
        return pd.DataFrame(columns=cols)
    if "remote_role" not in flows.columns:
        return pd.DataFrame(columns=cols)
    used = ("orig_ip", "resp_ip", "remote_ip", "duration_s", "bytes_orig", "bytes_resp", "remote_country", "ts_start")
    leg_rows = flows.loc[flows["remote_role"].eq("peer").fillna(False).to_numpy(dtype=bool),
                         [c for c in used if c in flows.columns]]
    sides = [c for c in ("orig_ip", "resp_ip", "remote_ip") if c in leg_rows.columns]
    peers = peer_addresses(pa.Table.from_pandas(leg_rows[sides], preserve_index=False)).to_pylist()
    legs = list(zip(peers, leg_rows.to_dict("records")))
    if not legs:
        return pd.DataFrame(columns=cols)
    table = pd.DataFrame({
        "peer": [p for p, _ in legs],
        "duration_s": [r["duration_s"] for _, r in legs],
        "bytes": [int(r["bytes_orig"]) + int(r["bytes_resp"]) for _, r in legs],
        "country": [r.get("remote_country") if isinstance(r.get("remote_country"), str) else None for _, r in legs],
        "first_seen": [r["ts_start"] for _, r in legs],
    })
    out = table.groupby("peer", sort=True).agg(
        legs=("peer", "size"), duration_s=("duration_s", "sum"), bytes=("bytes", "sum"),
        country=("country", lambda s: s.dropna().iloc[0] if s.notna().any() else None),
        first_seen=("first_seen", "min")).reset_index()
    return out.sort_values(["first_seen", "peer"], kind="stable").reset_index(drop=True)[cols]


def _events(f: Findings, flows: pd.DataFrame, events: pd.DataFrame | None) -> None:
    if events is None:
        f.missing["events"] = NO_EVENTS
        return
    f.events = len(events)
    f.events_by_kind = {k: int(v) for k, v in events["kind"].fillna("unknown").value_counts().sort_index().items()}


def _counterparts(f: Findings, flows: pd.DataFrame) -> None:
    if "counterparts" not in flows or not flows["counterparts"].notna().any():
        f.missing["counterparts"] = "not computed (counterparts are derived by the metadata stage)"
        return
    basis = flows["counterparts_basis"].fillna("").replace("", "unspecified")
    f.counterparts = {k: int(v) for k, v in flows["counterparts"].fillna(0).groupby(basis).sum().sort_index().items()}


def _people_and_infrastructure(f: Findings, flows: pd.DataFrame, events: pd.DataFrame | None, summary: dict) -> None:
    """People counted once (distinct call peers; recipient devices of outbound messages)
    and infrastructure (relays counted once per call, not once per leg; servers)."""
    if f.counterparts is None:
        return
    basis = flows["counterparts_basis"].fillna("")
    remote = flows["remote_ip"] if "remote_ip" in flows and flows["remote_ip"].notna().any() else flows["resp_ip"]
    sent = 0 if events is None else int(((events["kind"] == "message") & (events["direction"] == "up")).sum())
    f.people = {"call peers": int(remote[basis == "p2p-peer"].nunique()),
                "recipient devices (at least)": int(flows.loc[basis == "chat-outbound-messages", "counterparts"]
                                                    .fillna(0).sum()),
                "outbound messages": sent}
    md = summary.get("metadata") or {}
    calls = None if events is None else events[events["kind"] == "call"]
    if "call_relays" in md:
        relays = int(md["call_relays"])
    elif calls is not None:
        relays = sum(int(d.split("relays=")[1].split()[0]) for d in calls["detail"] if "relays=" in (d or ""))
    else:  # no call grouping: distinct relay addresses (equal to the per-call sum for one call)
        relays = int(remote[basis == "call-relays"].nunique())
    legs = basis.isin(["p2p-peer", "call-relays"])
    meta = meta_mask(flows) & ~legs
    special = flows["geo_source"].fillna("").str.startswith("special:") if "geo_source" in flows else False
    f.infrastructure = {"call relays": relays, "calls": int(md.get("calls", 0 if calls is None else len(calls))),
                        "servers": int(md.get("meta_servers", remote[meta & ~special].nunique()))}
