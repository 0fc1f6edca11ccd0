"""Alignment: which events each scripted action caused, and how good the event kinds are.

The rule (docs/metadata.md §7): an action implies event kinds (ACTIONS_IMPLY, with the
direction the event must have); an event of an implied kind whose anchor time (its start;
its end for call_ended) lies within the tolerance of the action time is a candidate. Every
candidate pair is ranked by |lag| and taken greedily, so an event goes to the nearest
action that implies it, never to two (a call's event may serve call_started by its start
and call_ended by its end). An action with at least one event is matched. `other` actions
imply nothing and take, after every other action, any event left in their window.

Events that lie within the tolerance of no action are unexplained (counted by kind):
keep-alives, background syncs, what the app did on its own.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa

from flowscope import schema
from flowscope.scenario.parse import ACTION_KINDS, Action

DEFAULT_TOLERANCE_S = 5.0
NS = 1_000_000_000
# action -> (event kind, direction the event must have or None for any) it implies
ACTIONS_IMPLY = {
    "message_sent": (("message", "up"),),
    "message_received": (("message", "down"),),
    "media_sent": (("media", "up"), ("message", "up")),
    "media_received": (("media", "down"), ("message", "down")),
    # call signalling (offer, accept, terminate) travels in the chat stream as a message
    "call_started": (("call", None), ("message", None)),
    "call_ended": (("call", None), ("message", None)),
    "contact_added": (("contact-sync", "up"),),
    "app_opened": (("handshake", None), ("presence", "up")),
    "app_closed": (("presence", "up"),),
    "other": (),
}
assert set(ACTIONS_IMPLY) == set(ACTION_KINDS)
END_ANCHORED = {"call_ended"}     # the event's end is what the action caused
OTHER_PENALTY_NS = 1 << 62        # `other` takes only what no action implying it claimed


@dataclass
class Alignment:
    table: pa.Table                               # schema.ACTIONS, one row an action
    unexplained: dict = field(default_factory=dict)   # event kind -> events near no action
    tolerance_s: float = DEFAULT_TOLERANCE_S
    session: tuple = (None, None)                 # (first, last) action time, ns
    events_in_session: dict = field(default_factory=dict)   # kind -> events within the session span
    events_matched: dict = field(default_factory=dict)      # kind -> of those, matched to an action implying it
    matched_kinds: list = field(default_factory=list)       # per action: the kinds of its events

    def scores(self) -> dict:
        """summary.json `scenario`: per action kind (actions, matched, median lag) and per
        event kind (precision and recall against the actions that imply it)."""
        rows = self.table.to_pylist()
        per_action = {}
        for kind in ACTION_KINDS:
            mine = [r for r in rows if r["action"] == kind]
            if not mine:
                continue
            lags = [r["lag_s"] for r in mine if r["lag_s"] is not None]
            per_action[kind] = {"actions": len(mine), "matched": sum(r["matched"] for r in mine),
                                "median_lag_s": round(statistics.median(lags), 3) if lags else None}
        per_event = {}
        for kind in sorted({k for a in per_action for k, _ in ACTIONS_IMPLY[a]}):
            implying = [i for i, r in enumerate(rows) if any(k == kind for k, _ in ACTIONS_IMPLY[r["action"]])]
            found = sum(kind in self.matched_kinds[i] for i in implying)
            events = self.events_in_session.get(kind, 0)
            matched = self.events_matched.get(kind, 0)
            per_event[kind] = {"actions": len(implying), "actions_found": found,
                               "recall": round(found / len(implying), 3) if implying else None,
                               "events": events, "events_matched": matched,
                               "precision": round(matched / events, 3) if events else None}
        first, last = self.session
        return {"actions": len(rows), "matched": sum(r["matched"] for r in rows),
                "tolerance_s": self.tolerance_s,
                "session": {"first_action": _iso(first), "last_action": _iso(last)},
                "by_action": per_action, "by_event_kind": per_event,
                "unexplained_events": dict(sorted(self.unexplained.items()))}


def _iso(ns) -> str | None:
    return None if ns is None else pd.Timestamp(ns, tz="UTC").isoformat().replace("+00:00", "Z")


def align(actions: list[Action], events: pd.DataFrame | None, flows: pd.DataFrame,
          tolerance_s: float = DEFAULT_TOLERANCE_S) -> Alignment:
    """Align `actions` (read_scenario) with the events and flows of one analysis (pandas, as
    AnalysisResult or the evidence directory gives them)."""
    if not tolerance_s >= 0:
        raise ValueError(f"scenario tolerance must be >= 0 s (got {tolerance_s})")
    tol = int(tolerance_s * NS)
    ev = _event_rows(events)
    taken = _assign(actions, ev, tol)
    by_flow = _flow_facts(flows)
    rows, kinds = [], []
    for k, a in enumerate(actions):
        mine = sorted(taken.get(k, []), key=lambda e: (_anchor(a, e), e["event_id"]))
        flow_ids = sorted({f for e in mine for f in e["flows"]})
        facts = [by_flow[f] for f in flow_ids if f in by_flow]
        rows.append({
            "action_id": k, "time": a.time_ns, "action": a.action, "peer": a.peer, "note": a.note,
            "matched": bool(mine), "event_ids": [e["event_id"] for e in mine],
            "lag_s": round((_anchor(a, mine[0]) - a.time_ns) / NS, 6) if mine else None,
            **{col: sorted({x[col] for x in facts if x[col]}) for col in ("services", "remote_countries",
                                                                          "regions", "operators")},
            "bytes_up": sum(e["bytes_up"] for e in mine), "bytes_down": sum(e["bytes_down"] for e in mine)})
        kinds.append({e["kind"] for e in mine})
    first, last = (min(a.time_ns for a in actions), max(a.time_ns for a in actions)) if actions else (None, None)
    result = Alignment(_table(rows), _unexplained(actions, ev, tol), tolerance_s, (first, last),
                       matched_kinds=kinds)
    in_span = [e for e in ev if first is not None and e["ts_start"] <= last + tol and e["ts_end"] >= first - tol]
    matched_ids = {(e["event_id"]) for k, es in taken.items() for e in es
                   if any(e["kind"] == kind for kind, _ in ACTIONS_IMPLY[actions[k].action])}
    for e in in_span:
        result.events_in_session[e["kind"]] = result.events_in_session.get(e["kind"], 0) + 1
        if e["event_id"] in matched_ids:
            result.events_matched[e["kind"]] = result.events_matched.get(e["kind"], 0) + 1
    return result


def _event_rows(events: pd.DataFrame | None) -> list[dict]:
    if events is None or events.empty:
        return []
    out = []
    for e in events.to_dict("records"):
        detail = dict(kv.split("=", 1) for kv in (e.get("detail") or "").split() if "=" in kv)
        flows = [int(x) for x in detail["flows"].split(",")] if detail.get("flows") else [int(e["flow_id"])]
        out.append({"event_id": int(e["event_id"]), "kind": e["kind"], "direction": e["direction"],
                    "ts_start": pd.Timestamp(e["ts_start"]).value, "ts_end": pd.Timestamp(e["ts_end"]).value,
                    "flows": flows, "bytes_up": int(detail.get("bytes_up", 0) or 0),
                    "bytes_down": int(detail.get("bytes_down", 0) or 0)})
    return out


def _anchor(action: Action, event: dict) -> int:
    return event["ts_end"] if action.action in END_ANCHORED and event["kind"] == "call" else event["ts_start"]


def _implied(action: Action, event: dict) -> bool:
    return any(event["kind"] == k and (d is None or event["direction"] == d) for k, d in ACTIONS_IMPLY[action.action])


def _assign(actions: list[Action], events: list[dict], tol: int) -> dict[int, list[dict]]:
    """action index -> its events: candidate pairs by |lag|, nearest first, each event (per
    anchor: start or end) to one action."""
    pairs = []
    for k, a in enumerate(actions):
        for e in events:
            lag = abs(_anchor(a, e) - a.time_ns)
            if a.action == "other":
                if lag <= tol:
                    pairs.append((OTHER_PENALTY_NS + lag, k, e))
            elif _implied(a, e) and lag <= _window(a, e, actions, events, tol):
                pairs.append((lag, k, e))
    pairs.sort(key=lambda p: (p[0], p[1], p[2]["event_id"]))
    used: set = set()
    out: dict[int, list[dict]] = {}
    for _lag, k, e in pairs:
        key = (e["event_id"], actions[k].action in END_ANCHORED)
        if key in used:
            continue
        used.add(key)
        out.setdefault(k, []).append(e)
    return out


def _window(action: Action, event: dict, actions, events, tol: int) -> int:
    """The tolerance, but a media_sent's chat message may follow its upload, however long
    the upload took: up to tol after the end of an upload that began within tol."""
    if action.action != "media_sent" or event["kind"] != "message":
        return tol
    ends = [m["ts_end"] for m in events if m["kind"] == "media" and m["direction"] == "up"
            and abs(m["ts_start"] - action.time_ns) <= tol]
    return max([tol] + [m_end + tol - action.time_ns for m_end in ends if event["ts_start"] >= action.time_ns])


def _unexplained(actions: list[Action], events: list[dict], tol: int) -> dict:
    times = sorted(a.time_ns for a in actions)
    out: dict[str, int] = {}
    for e in events:
        near = any(e["ts_start"] - tol <= t <= e["ts_end"] + tol for t in times)
        if not near:
            out[e["kind"]] = out.get(e["kind"], 0) + 1
    return out


def _flow_facts(flows: pd.DataFrame) -> dict[int, dict]:
    cols = {"service": "services", "remote_country": "remote_countries", "region": "regions",
            "operator": "operators"}
    have = [c for c in cols if c in flows.columns]
    out = {}
    for r in flows[["flow_id", *have]].to_dict("records"):
        out[int(r["flow_id"])] = {cols[c]: (r.get(c) if isinstance(r.get(c), str) else None) for c in cols}
    return out


def _table(rows: list[dict]) -> pa.Table:
    arrays = {}
    for c in schema.ACTIONS:
        values = [r[c.name] for r in rows]
        arrays[c.name] = (pa.array(values, pa.int64()).cast(c.type) if c.type == schema.TS_TYPE
                          else pa.array(values, c.type))
    return pa.table(arrays, schema=schema.arrow_schema(schema.ACTIONS))
