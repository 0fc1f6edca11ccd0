"""The report's "WhatsApp Business Platform" section, from the tables (DataFrames in, plain data out).

Present when the capture holds Cloud API calls, webhooks, solution-provider flows or a
platform host's chat connection (the legacy On-Premises API). Estimates state their basis;
storage facts are Meta's documentation, marked as not observable on the wire.
"""
from __future__ import annotations

import pandas as pd

from flowscope.classify.classifier import ON_PREM_MARK
from flowscope.metadata.business import API_CALL, WEBHOOK

SERVICES = ("whatsapp.business_api", "whatsapp.webhook", "whatsapp.bsp")
STATUS_WEBHOOKS_PER_SEND = 3  # sent, delivered, read: a BSP's sizing guide [20]
DOCS_READ = "2026-11-28"
STORAGE_FACTS = (
    "Default storage of Cloud API messages is in the US (\"instead of its default storage based in the US\"); "
    "message content is stored at rest for 30 days [4][5].",
    "Local storage, chosen per number at /register with data_localization_region (Europe: DE, CH, GB), covers "
    "message content only (text, media, template parameters) plus a limited set of metadata; data in use may be "
    "processed in Meta data centres worldwide for up to 60 minutes [3][4][19].",
    "Transfers from WhatsApp Ireland to WhatsApp LLC and Meta Platforms, Inc. rest on the EU-US Data Privacy "
    "Framework, standard contractual clauses as fallback [27].",
)
STORAGE_NOTE = (f"From Meta's documentation, not observable on the wire (read {DOCS_READ}; "
                "whatsapp-business-and-frames.md §1.6, sources [3][4][5][19][27]).")
LIMIT = ("API calls and webhook deliveries are cut from TLS record sizes and timing: a request is a client record "
         "of at least 100 bytes after the server answered the previous one. graph.facebook.com speaks HTTP/2, "
         "which can multiplex several requests into one exchange, so api-call counts are a lower bound for "
         "requests; not every request is a send (media, registration). A solution provider's onward leg to Meta "
         "never crosses the company network.")


def section(flows: pd.DataFrame, events: pd.DataFrame | None) -> dict | None:
    """The section's data, or None when the capture has no Business Platform flow."""
    if "service" not in flows or flows.empty:
        return None
    biz = flows[flows["service"].isin(SERVICES)]
    rules = flows["catalog_rule"].fillna("") if "catalog_rule" in flows else pd.Series("", index=flows.index)
    on_prem = flows[rules.str.contains(ON_PREM_MARK, regex=False)]
    if biz.empty and on_prem.empty:
        return None
    ev = events[events["flow_id"].isin(biz["flow_id"])] if events is not None and len(biz) else None
    calls = int((ev["kind"] == API_CALL).sum()) if ev is not None else 0
    hooks = int((ev["kind"] == WEBHOOK).sum()) if ev is not None else 0
    return {"hours": _per_hour(ev), "estimates": _estimates(calls, hooks, ev is not None),
            "endpoints": _endpoints(biz), "providers": _providers(biz), "limit": LIMIT,
            "storage": STORAGE_FACTS, "storage_note": STORAGE_NOTE,
            "on_prem": [f"flow {int(r.flow_id)}: {r.hostname or r.resp_ip}" for r in on_prem.itertuples()]}


def _per_hour(ev: pd.DataFrame | None) -> list[dict]:
    if ev is None or ev.empty:
        return []
    ev = ev[ev["kind"].isin((API_CALL, WEBHOOK))]
    hour = pd.to_datetime(ev["ts_start"], utc=True).dt.floor("h")
    table = pd.crosstab(hour, ev["kind"])
    return [{"hour": h.strftime("%Y-%m-%d %H:00 UTC"), "api_calls": int(row.get(API_CALL, 0)),
             "webhooks": int(row.get(WEBHOOK, 0))} for h, row in table.iterrows()]


def _estimates(calls: int, hooks: int, walked: bool) -> list[dict]:
    if not walked:
        return [{"label": "Estimates", "value": "not available",
                 "basis": "no events: the Business Platform flows were not walked"}]
    expected = STATUS_WEBHOOKS_PER_SEND * calls
    return [
        {"label": "Messages sent (estimate)", "value": f"{calls:,}",
         "basis": "api-call events on Cloud API and solution-provider flows, each taken as one send: an upper "
                  "bound where calls fetch media or register, a lower bound where HTTP/2 merged requests"},
        {"label": "Status notifications received", "value": f"{hooks:,} webhook deliveries",
         "basis": f"about {STATUS_WEBHOOKS_PER_SEND} status webhooks per sent message (sent, delivered, read; a BSP's "
                  f"sizing guide [20]): {expected:,} expected for {calls:,} sends"},
        {"label": "Other deliveries (incoming messages, other events)", "value": f"{max(hooks - expected, 0):,}",
         "basis": "webhook deliveries beyond the expected status notifications; Meta may batch updates into "
                  "one delivery, so this is a rough lower bound"},
    ]


def _endpoints(biz: pd.DataFrame) -> list[dict]:
    rows = []
    if biz.empty:
        return rows
    host = biz["hostname"].fillna("").replace("", None).fillna(biz.get("remote_ip", biz["resp_ip"]))
    for (service, name), g in biz.assign(name=host).groupby(["service", "name"], sort=True):
        rows.append({"service": service, "name": name,
                     "country": ", ".join(sorted(g["remote_country"].dropna().unique())) or "not located"
                     if "remote_country" in g else "not located",
                     "operator": ", ".join(sorted({f"{o} ({c})" for o, c in zip(g["operator"].fillna("unknown"),
                                                                           g["operator_country"].fillna("?"))}))
                     if "operator" in g else "unknown",
                     "flows": len(g)})
    return rows


def _providers(biz: pd.DataFrame) -> list[dict]:
    bsp = biz[biz["service"] == "whatsapp.bsp"]
    out = []
    if bsp.empty:
        return out
    for (op, country), g in bsp.groupby([bsp["operator"].fillna("unknown"), bsp["operator_country"].fillna("?")]):
        shared = (g["confidence"] == "low").any()
        out.append({"operator": op, "country": country, "hosts": ", ".join(sorted(g["hostname"].dropna().unique())),
                    "channel": "shared with SMS and other channels (WhatsApp not proven)" if shared
                    else "WhatsApp-specific host", "flows": len(g)})
    return out
