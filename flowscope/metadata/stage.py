"""The metadata stage: frames, events, counterparts and volume from the labelled flow table.

Runs after geo (it needs the labels and the remote end). Fills the flows' METADATA columns
and returns the frames and events tables (schema.FRAMES, schema.EVENTS) and the compact
`metadata` section of summary.json. Works on Arrow columns and Python lists: no pandas.
"""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from flowscope import schema
from flowscope.metadata import counterparts, events as events_mod, handshake, volume
from flowscope.sides import local_is_orig_columns
from flowscope.metadata.walked import BUSINESS_SERVICES, Walked, reported

# what metadata/events.py reads of the flows (the view's rows are filtered and copied)
_FLOW_COLUMNS = ["flow_id", "ts_start", "ts_end", "orig_ip", "resp_ip", "bytes_orig", "bytes_resp",
                 "payload_bytes_orig", "payload_bytes_resp", "service", "is_meta", "confidence", "remote_ip",
                 "remote_role"]


def empty_table(columns) -> pa.Table:
    return pa.table({c.name: pa.array([], type=c.type) for c in columns})


def _with_nulls(table: pa.Table) -> pa.Table:
    for c in schema.METADATA:
        table = table.append_column(pa.field(c.name, c.type), pa.nulls(table.num_rows, c.type))
    return table


def describe(table: pa.Table, walks):
    """(flows with METADATA columns, frames, events, notes). `walks` are the stitched frame
    walks (metadata/walked.py; None without classification: then nothing is walked and the
    columns stay null)."""
    if walks is None or table.column("service").null_count == table.num_rows:
        return _with_nulls(table), empty_table(schema.FRAMES), empty_table(schema.EVENTS), {}
    local = local_is_orig_columns(table)
    walked = reported(walks, table["service"], local)
    frames = _frames_table(walked)
    per_flow, units = _frames_by_flow(frames)
    events, calls, chat = events_mod.build(_flows_view(table, local), per_flow, units)
    table = _append_metadata(table, walked, chat, calls)
    return table, frames, events, _notes(walked, events, calls, table, per_flow, units)


def _flows_view(table: pa.Table, local) -> pa.Table:
    """The columns the events need, times as int64 ns, and which end is local."""
    sub = table.select([c for c in _FLOW_COLUMNS if c in table.column_names])
    for c in ("ts_start", "ts_end"):
        sub = sub.set_column(sub.schema.get_field_index(c), c, sub[c].cast(pa.int64()))
    orig = pa.array(local, pa.bool_())
    sub = sub.append_column("local_is_orig", orig)
    return sub.append_column("local_ip", pc.if_else(orig, sub["orig_ip"], sub["resp_ip"]))


def _frames_table(w: Walked) -> pa.Table:
    """Frames ordered by flow, then time of the first header byte (up before down)."""
    order = sorted(range(len(w.flow_id)), key=lambda k: (w.flow_id[k], w.ts_first[k], w.direction[k] == "down",
                                                          w.frame_index[k]))
    arrays = {}
    for c in schema.FRAMES:
        values = getattr(w, c.name)
        values = [values[k] for k in order]
        arrays[c.name] = (pa.array(values, type=pa.int64()).cast(c.type) if c.type == schema.TS_TYPE
                          else pa.array(values, type=c.type))
    return pa.table(arrays)


def _frames_by_flow(frames: pa.Table) -> tuple[dict, dict]:
    """flow_id -> [(ts_first, ts, direction, frame_bytes, frame_index)] in table order, and
    flow_id -> unit."""
    cols = frames.select(["flow_id", "ts_first", "ts", "direction", "frame_bytes", "frame_index", "unit"])
    cols = {c: (cols[c].cast(pa.int64()) if c.startswith("ts") else cols[c]).to_pylist() for c in cols.column_names}
    per_flow: dict[int, list] = {}
    units: dict[int, str] = {}
    for fid, *row, unit in zip(*cols.values()):
        per_flow.setdefault(fid, []).append(tuple(row))
        units[fid] = unit
    return per_flow, units


def _append_metadata(table: pa.Table, walked: Walked, chat: list, calls: list) -> pa.Table:
    ids = table["flow_id"].to_pylist()
    counts = [walked.counts.get(f) for f in ids]
    services = table["service"].to_pylist()
    chat_walked = {f for f in walked.counts if services[f] not in BUSINESS_SERVICES}  # flow_id is the row number
    value, basis = counterparts.per_flow(ids, chat, calls, chat_walked)
    new = {"frames_up": [c[0] if c else None for c in counts],
           "frames_down": [c[1] if c else None for c in counts],
           "frame_gaps": [c[2] if c else None for c in counts],
           "frame_sync": [walked.sync.get(f) for f in ids],
           "counterparts": value, "counterparts_basis": basis}
    for c in schema.METADATA:
        table = table.append_column(pa.field(c.name, c.type), pa.array(new[c.name], type=c.type))
    return table


def _notes(walked: Walked, events: pa.Table, calls: list, table: pa.Table, per_flow: dict,
           units: dict) -> dict:
    counts = list(walked.counts.values())
    kinds = events.group_by("kind").aggregate([([], "count_all")]).to_pydict()
    directions = events.select(["kind", "direction", "detail"]).to_pydict()
    sent = [d for k, w, d in zip(directions["kind"], directions["direction"], directions["detail"])
            if k == "message" and w == "up"]
    return {
        "heuristics_version": events_mod.HEURISTICS_VERSION,
        "frames": {"flows_walked": len(counts), "flows_resync": sum(v == "resync" for v in walked.sync.values()),
                   "frames_up": sum(c[0] for c in counts),
                   "frames_down": sum(c[1] for c in counts), "gaps": sum(c[2] for c in counts),
                   **{k: v for k, v in sorted(walked.notes.items()) if v}},
        "events_by_kind": dict(sorted(zip(kinds["kind"], kinds["count_all"]))),
        "calls": len(calls),
        "call_seconds": round(sum((c.ts_end - c.ts_start) / 1e9 for c in calls), 3),
        "p2p_peers": len({p for c in calls for p in c.peers}),
        "call_relays": sum(len(c.relays) for c in calls),
        "outbound_messages": len(sent),
        "recipient_devices_min": sum(counterparts.devices_low(d) for d in sent),
        "meta_servers": _meta_servers(table, calls),
        "warnings": handshake.warnings(per_flow, units, walked.sync),
        **volume.summary(table),
    }


def _meta_servers(table: pa.Table, calls: list) -> int:
    """Distinct remote addresses of WhatsApp/Meta flows that are neither call relays nor
    call peers: the servers (edges, CDNs, resolvers) that saw the devices."""
    meta = table.select(["remote_ip", "resp_ip", "geo_source"]).filter(pc.fill_null(table["is_meta"], False))
    legs = {p for c in calls for p in c.relays | c.peers}
    remote = meta["remote_ip"] if meta["remote_ip"].null_count < meta.num_rows else meta["resp_ip"]
    # a resolver asked for a Meta name is a private or special address: not Meta's server
    special = pc.fill_null(pc.starts_with(meta["geo_source"], "special:"), False).to_pylist()
    return len({ip for ip, sp in zip(remote.to_pylist(), special) if ip and not sp and ip not in legs})
