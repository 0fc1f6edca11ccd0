"""Counterparts per flow: direct call legs, relays, outbound chat messages."""
from __future__ import annotations

from flowscope.metadata.counterparts import per_flow
from flowscope.metadata.events import Call


def test_each_basis():
    call = Call("10.0.0.2", flow_ids=[3, 4, 5], relays={"r1", "r2"}, peers={"p"}, p2p_flow_ids=[5])
    chat = [{"flow_id": 1, "kind": "message", "direction": "up", "detail": "devices=1-1"},
            {"flow_id": 1, "kind": "message", "direction": "up", "detail": "max_up=615 devices=3-5"},
            {"flow_id": 1, "kind": "message", "direction": "down"}, {"flow_id": 1, "kind": "receipt", "direction": "up"}]
    value, basis = per_flow([1, 2, 3, 4, 5, 6], chat, [call], walked={1, 2})
    assert value == [4, 0, 2, 2, 1, None]   # devices: 1 + 3
    assert basis == ["chat-outbound-messages", "chat-outbound-messages", "call-relays", "call-relays", "p2p-peer", ""]
