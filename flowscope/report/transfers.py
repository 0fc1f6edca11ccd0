"""The transfer record (transfers.json): who received which metadata, under which legal basis.

One entry per recipient organisation (flows.parquet `operator`) and its country
(`operator_country`, the law it is incorporated under): the region and legal basis from
geo/data/regions.toml, the data categories the capture actually shows reaching it, first and
last seen, flows, bytes and the flow ids that show it. These are the facts an Art. 30 record
and a transfer impact assessment need; what a recipient stores is not on the wire (the
report's Business Platform section quotes Meta's documentation for that).

Built from the written (pseudonymised) tables, so it names no local address, MAC or call
peer: categories are named, never their values.
"""
from __future__ import annotations

import pandas as pd

from flowscope.geo import regions

FORMAT = 1
META_RECIPIENTS = ("Meta Platforms, Inc.", "WhatsApp LLC")
META_DPF_NOTE = ("WhatsApp Ireland states that it relies on the EU-US Data Privacy Framework for transfers to "
                 "WhatsApp LLC and Meta Platforms, Inc., with standard contractual clauses as fallback "
                 "(WhatsApp Business Data Transfer Addendum, 16 Feb 2024; whatsapp-business-and-frames.md §1.6 [27])")
MESSAGE_KINDS = ("message", "api-call")
STATUS_KINDS = ("receipt", "webhook")


# what build() reads of the tables (tables.py hands it only these: the whole flows table as
# pandas cost ~170 MiB on 100k flows)
FLOW_COLUMNS = ("flow_id", "is_meta", "service", "operator", "operator_country", "remote_country", "counterparts",
                "counterparts_basis", "ts_start", "ts_end", "bytes_orig", "bytes_resp")
EVENT_COLUMNS = ("flow_id", "kind")


def recipients_mask(flows: pd.DataFrame) -> pd.Series:
    """Flows that carry WhatsApp/Meta metadata to someone: Meta's, and solution providers'."""
    meta = flows["is_meta"].fillna(False).astype(bool) if "is_meta" in flows else pd.Series(False, index=flows.index)
    bsp = flows["service"].eq("whatsapp.bsp") if "service" in flows else False
    return meta | bsp


def legal_basis(operator: str | None, country: str | None) -> dict:
    """Region and the legal basis a transfer to `operator` in `country` can rest on."""
    region = regions.region_of(country)
    if region in (regions.EU, regions.EEA):
        return {"region": region, "basis": "none needed: EU/EEA", "decision": None}
    if region == regions.ADEQUATE:
        rec = regions.adequacy(country) or {}
        decision = f"{rec.get('decision')} of {rec.get('date')}"
        if rec.get("partial"):
            text = (f"adequacy for part only ({rec.get('scope')}): covers {operator or 'this recipient'} only if it "
                    "is within that scope (for the US: certified on the DPF List, check on the audit date); "
                    "otherwise none: an Art. 46 safeguard is needed")
            if operator in META_RECIPIENTS:
                text += ". " + META_DPF_NOTE
            return {"region": region, "basis": text, "decision": decision}
        return {"region": region, "basis": f"adequacy decision: {decision}", "decision": decision}
    if region == regions.THIRD:
        return {"region": region, "basis": "none: no adequacy decision (an Art. 46 safeguard or an Art. 49 "
                                           "derogation is needed)", "decision": None}
    return {"region": region, "basis": "unknown: the recipient's country is not known", "decision": None}


def _iso(ts) -> str | None:
    return None if pd.isna(ts) else pd.Timestamp(ts).tz_convert("UTC").isoformat().replace("+00:00", "Z")


def _categories(group: pd.DataFrame, ev: pd.DataFrame) -> dict:
    """Data categories observed reaching the recipient, with counts where they are counts."""
    out = {"ip_addresses": "the sender's address on every flow", "timestamps": "of every flow and event"}
    kinds = ev["kind"].value_counts().to_dict() if len(ev) else {}
    messages = {k: int(kinds[k]) for k in MESSAGE_KINDS if kinds.get(k)}
    statuses = {k: int(kinds[k]) for k in STATUS_KINDS if kinds.get(k)}
    if messages:
        out["message_counts"] = messages
    if statuses:
        out["status_counts"] = statuses
    basis = group["counterparts_basis"].fillna("") if "counterparts_basis" in group else pd.Series([], dtype=str)
    value = group["counterparts"].fillna(0) if "counterparts" in group else pd.Series([], dtype=float)
    sent = int(value[basis == "chat-outbound-messages"].sum())
    if sent:
        out["recipient_identifiers"] = f"{sent} outbound messages, each naming at least one recipient"
    if (basis == "call-relays").any():
        out["call_relays"] = int(value[basis == "call-relays"].max())
    if (basis == "p2p-peer").any():
        out["call_peer_addresses"] = int((basis == "p2p-peer").sum())
    for kind in sorted(kinds):
        if "contact" in kind:  # contact-sync candidates, where the metadata stage marks them
            out["contact_sync_candidates"] = int(kinds[kind])
    return out


def build(flows: pd.DataFrame, events: pd.DataFrame | None, summary: dict) -> dict:
    """The transfer record of one analysis (a plain dict for transfers.json)."""
    doc = {"transfers_format": FORMAT,
           "basis": "flows that reach WhatsApp/Meta (is_meta) or a WhatsApp solution provider (whatsapp.bsp), "
                    "grouped by the organisation that runs the remote end (operator) and the country whose law "
                    "governs it (operator_country); location of the servers is listed apart",
           "regions_as_of": ((summary.get("geo") or {}).get("regions") or {}).get("as_of"),
           "not_observable": "what a recipient stores, for how long and where it processes the data: not on the "
                             "wire (see the report's WhatsApp Business Platform section for Meta's documentation)",
           "not_available": None, "recipients": []}
    if "operator" not in flows or not flows["operator"].notna().any():
        doc["not_available"] = "no operator column: classification or geolocation was off"
        return doc
    sel = flows[recipients_mask(flows)]
    ev = events if events is not None else pd.DataFrame(columns=["flow_id", "kind"])
    for (operator, country), group in sel.groupby([sel["operator"].fillna("unknown"),
                                                    sel["operator_country"].fillna("")], sort=True):
        ids = sorted(int(x) for x in group["flow_id"])
        mine = ev[ev["flow_id"].isin(ids)]
        located = group["remote_country"].fillna("unknown").value_counts().sort_index() if "remote_country" in group \
            else pd.Series(dtype=int)
        doc["recipients"].append({
            "operator": operator, "country": country or None, **legal_basis(operator, country or None),
            "services": sorted(group["service"].dropna().unique().tolist()),
            "server_locations": {k: int(v) for k, v in located.items()},
            "categories": _categories(group, mine),
            "first_seen": _iso(group["ts_start"].min()), "last_seen": _iso(group["ts_end"].max()),
            "flows": len(ids), "bytes": int(group["bytes_orig"].fillna(0).sum() + group["bytes_resp"].fillna(0).sum()),
            "events": int(len(mine)), "flow_ids": ids,
        })
    return doc
