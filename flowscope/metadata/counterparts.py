"""Counterparts per flow: how many other parties (or identifiers of them) a flow reveals.

- p2p-peer: a direct call leg talks to the other party's own address: 1 counterpart, whose
  public IP is the flow's remote_ip.
- call-relays: a relayed leg shows only Meta's relays; the count is the distinct relay
  addresses the call contacted (the peer stays behind them).
- chat-outbound-messages: a server-relayed chat flow (mobile or Web) names a recipient in
  every message it sends; the count is the low end of the recipient devices each outbound
  message event addresses (its frame size, events.recipient_devices), a lower bound on
  recipient identifiers sent (a burst of several messages is counted once).

Per-flow values must not be added up across the legs of a call: every relayed leg carries
the call's relay count (summary.json metadata.call_relays counts each call's relays once).
Every other flow: null, basis empty. docs/metadata.md states the derivations.
"""
from __future__ import annotations

P2P, RELAYS, CHAT = "p2p-peer", "call-relays", "chat-outbound-messages"


def per_flow(flow_ids: list, chat_events: list[dict], calls: list, walked: set) -> tuple[list, list]:
    """(counterparts, counterparts_basis) aligned with flow_ids; `chat_events` are the
    event rows of the walked flows (events.chat_events)."""
    value: dict[int, int] = {}
    basis: dict[int, str] = {}
    for call in calls:
        for fid in call.flow_ids:
            if fid in call.p2p_flow_ids:
                value[fid], basis[fid] = 1, P2P
            else:
                value[fid], basis[fid] = len(call.relays), RELAYS
    sent: dict[int, int] = {}
    for e in chat_events:
        if e["kind"] == "message" and e["direction"] == "up":
            sent[e["flow_id"]] = sent.get(e["flow_id"], 0) + devices_low(e.get("detail", ""))
    for fid in walked:
        value[fid], basis[fid] = int(sent.get(fid, 0)), CHAT
    return [value.get(f) for f in flow_ids], [basis.get(f, "") for f in flow_ids]


def devices_low(detail: str) -> int:
    """The low end of `devices=LO-HI` in a message event's detail (1 where absent)."""
    for part in detail.split():
        if part.startswith("devices="):
            return int(part[len("devices="):].split("-")[0])
    return 1
