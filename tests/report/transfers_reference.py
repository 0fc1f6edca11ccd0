"""The transfer record's first implementation, on pandas (before issue 14 moved it to Arrow
to keep pandas out of an analysis without the report): the reference the Arrow build is
compared with (test_business_report.py)."""
from __future__ import annotations

import pandas as pd

from flowscope.report.transfers import MESSAGE_KINDS, STATUS_KINDS, document, legal_basis


def recipients_mask(flows: pd.DataFrame) -> pd.Series:
    """Flows that carry WhatsApp/Meta metadata to someone: Meta's, and solution providers'."""
    meta = flows["is_meta"].fillna(False).astype(bool) if "is_meta" in flows else pd.Series(False, index=flows.index)
    bsp = flows["service"].eq("whatsapp.bsp") if "service" in flows else False
    return meta | bsp


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
    doc = document(summary)  # the fixed header; what is compared is what follows
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
