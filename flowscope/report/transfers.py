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

from collections import Counter
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.compute as pc

from flowscope.columns import pylist
from flowscope.geo import regions

FORMAT = 1
META_RECIPIENTS = ("Meta Platforms, Inc.", "WhatsApp LLC")
META_DPF_NOTE = ("WhatsApp Ireland states that it relies on the EU-US Data Privacy Framework for transfers to "
                 "WhatsApp LLC and Meta Platforms, Inc., with standard contractual clauses as fallback "
                 "(WhatsApp Business Data Transfer Addendum, 16 Feb 2024; whatsapp-business-and-frames.md §1.6 [27])")
MESSAGE_KINDS = ("message", "api-call")
STATUS_KINDS = ("receipt", "webhook")


# what build() reads of the tables, in Arrow (a pandas frame of the flows cost ~170 MiB on
# 100k flows; only the recipients' rows become Python objects)
FLOW_COLUMNS = ("flow_id", "is_meta", "service", "operator", "operator_country", "remote_country", "counterparts",
                "counterparts_basis", "ts_start", "ts_end", "bytes_orig", "bytes_resp")
EVENT_COLUMNS = ("flow_id", "kind")


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


def _iso(ns: int | None) -> str | None:
    """ISO 8601 UTC text of a time in ns, as pandas' Timestamp.isoformat writes it (digits
    for the microseconds only when there are any, and for the nanoseconds likewise), Z."""
    if ns is None:
        return None
    seconds, rest = divmod(int(ns), 10**9)
    micro, nano = divmod(rest, 1000)
    text = datetime.fromtimestamp(seconds, tz=timezone.utc).replace(microsecond=micro).isoformat()
    if nano:
        head, zone = text[:-6], text[-6:]
        text = head + (f"{nano:03d}" if micro else f".{nano:09d}") + zone
    return text.replace("+00:00", "Z")


def _categories(pairs: list[tuple[str, int]], kinds: Counter) -> dict:
    """Data categories observed reaching the recipient, with counts where they are counts;
    `pairs`: (counterparts_basis or "", counterparts or 0) of each of its flows."""
    out = {"ip_addresses": "the sender's address on every flow", "timestamps": "of every flow and event"}
    messages = {k: kinds[k] for k in MESSAGE_KINDS if kinds.get(k)}
    statuses = {k: kinds[k] for k in STATUS_KINDS if kinds.get(k)}
    if messages:
        out["message_counts"] = messages
    if statuses:
        out["status_counts"] = statuses
    sent = int(sum(v for b, v in pairs if b == "chat-outbound-messages"))
    if sent:
        out["recipient_identifiers"] = f"{sent} outbound messages, each naming at least one recipient"
    relays = [v for b, v in pairs if b == "call-relays"]
    if relays:
        out["call_relays"] = int(max(relays))
    peers = sum(1 for b, _ in pairs if b == "p2p-peer")
    if peers:
        out["call_peer_addresses"] = peers
    for kind in sorted(kinds):
        if "contact" in kind:  # contact-sync candidates, where the metadata stage marks them
            out["contact_sync_candidates"] = kinds[kind]
    return out


def _arrow(frame, names) -> pa.Table:
    """Those of `names` that `frame` (Arrow, or pandas from a report reading an old run) has."""
    if not isinstance(frame, pa.Table):
        frame = pa.Table.from_pandas(frame[[c for c in names if c in frame.columns]], preserve_index=False)
    return frame.select([c for c in names if c in frame.column_names])


def _recipients(flows: pa.Table) -> dict[str, list]:
    """Columns (FLOW_COLUMNS; None where the table lacks one) of the flows that carry
    WhatsApp/Meta metadata to someone: Meta's (is_meta), and solution providers'
    (whatsapp.bsp); times as ns. Columns, not a dict a row: 38k Meta flows made ~45 MiB of
    Python objects at the write's peak."""
    mask = pa.array([False] * flows.num_rows, pa.bool_())
    if "is_meta" in flows.column_names:
        mask = pc.fill_null(flows["is_meta"].cast(pa.bool_()), False)
    if "service" in flows.column_names:
        mask = pc.or_(mask, pc.fill_null(pc.equal(flows["service"].cast(pa.string()), "whatsapp.bsp"), False))
    sel = flows.filter(mask)
    for c in ("ts_start", "ts_end"):
        if c in sel.column_names:
            sel = sel.set_column(sel.schema.get_field_index(c), c, sel[c].cast(pa.int64()))
    return {c: pylist(sel[c]) if c in sel.column_names else [None] * sel.num_rows for c in FLOW_COLUMNS}


def document(summary: dict) -> dict:
    """transfers.json before its recipients: format, basis, what the wire cannot show."""
    return {"transfers_format": FORMAT,
            "basis": "flows that reach WhatsApp/Meta (is_meta) or a WhatsApp solution provider (whatsapp.bsp), "
                     "grouped by the organisation that runs the remote end (operator) and the country whose law "
                     "governs it (operator_country); location of the servers is listed apart",
            "regions_as_of": ((summary.get("geo") or {}).get("regions") or {}).get("as_of"),
            "not_observable": "what a recipient stores, for how long and where it processes the data: not on the "
                              "wire (see the report's WhatsApp Business Platform section for Meta's documentation)",
            "not_available": None, "recipients": []}


def build(flows, events, summary: dict) -> dict:
    """The transfer record of one analysis (a plain dict for transfers.json). `flows` and
    `events`: Arrow tables (or pandas frames) with FLOW_COLUMNS and EVENT_COLUMNS."""
    doc = document(summary)
    flows = _arrow(flows, FLOW_COLUMNS)
    if "operator" not in flows.column_names or flows["operator"].null_count == flows.num_rows:
        doc["not_available"] = "no operator column: classification or geolocation was off"
        return doc
    kinds_of: dict[int, list] = {}
    if events is not None:
        ev = _arrow(events, EVENT_COLUMNS)
        if {"flow_id", "kind"} <= set(ev.column_names):
            for fid, kind in zip(ev["flow_id"].to_pylist(), pylist(ev["kind"])):
                kinds_of.setdefault(fid, []).append(kind)
    cols = _recipients(flows)
    groups: dict[tuple, list[int]] = {}
    for i, (op, country) in enumerate(zip(cols["operator"], cols["operator_country"])):
        groups.setdefault((op if op is not None else "unknown", country or ""), []).append(i)
    for (operator, country), rows in sorted(groups.items()):
        ids = sorted(int(cols["flow_id"][i]) for i in rows)
        kinds = Counter(k for fid in ids for k in kinds_of.get(fid, ()) if k is not None)
        located = Counter(cols["remote_country"][i] or "unknown" for i in rows) \
            if "remote_country" in flows.column_names else Counter()
        starts = [t for t in (cols["ts_start"][i] for i in rows) if t is not None]
        ends = [t for t in (cols["ts_end"][i] for i in rows) if t is not None]
        pairs = [(cols["counterparts_basis"][i] or "", cols["counterparts"][i] or 0) for i in rows]
        doc["recipients"].append({
            "operator": operator, "country": country or None, **legal_basis(operator, country or None),
            "services": sorted({cols["service"][i] for i in rows if cols["service"][i] is not None}),
            "server_locations": dict(sorted(located.items())),
            "categories": _categories(pairs, kinds),
            "first_seen": _iso(min(starts) if starts else None), "last_seen": _iso(max(ends) if ends else None),
            "flows": len(ids),
            "bytes": int(sum((cols["bytes_orig"][i] or 0) + (cols["bytes_resp"][i] or 0) for i in rows)),
            "events": sum(len(kinds_of.get(fid, ())) for fid in ids), "flow_ids": ids,
        })
    return doc
