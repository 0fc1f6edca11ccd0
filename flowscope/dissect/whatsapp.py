"""WhatsApp's mobile chat transport: the cleartext prologue at the start of the client stream.

Layout (wire-and-geo brief §1.3): optional edge-routing header "ED" 00 01 + 3-byte length +
routing blob, then "WA" + two version bytes (matched as any two bytes: versions change),
then frames of a 3-byte big-endian length + body. Real clients split this across TCP
segments, so it is matched on the reassembled stream, never per packet.
"""
from __future__ import annotations

from dataclasses import dataclass

ED = b"ED\x00\x01"
MAX_ROUTING_BYTES = 1024  # observed: 4; anything large is not this protocol
MAX_FIRST_FRAME = 1 << 16  # the Noise hello is a few hundred bytes


@dataclass(frozen=True)
class Prologue:
    edge_routing: bool       # the optional "ED" header was present
    version: tuple[int, int]  # the two bytes after "WA"
    header_bytes: int        # bytes before the first frame
    first_frame_bytes: int | None  # length announced by the first frame header, if captured


def parse_prologue(stream: bytes) -> tuple[str, Prologue | None]:
    """Status "ok", "need-more" (could still become a prologue) or "no"."""
    pos, edge = 0, False
    if len(stream) < 4:
        return ("need-more", None) if ED.startswith(stream) or b"WA".startswith(stream[:2]) else ("no", None)
    if stream.startswith(ED):
        if len(stream) < 7:
            return "need-more", None
        blob = int.from_bytes(stream[4:7], "big")
        if blob > MAX_ROUTING_BYTES:
            return "no", None
        pos, edge = 7 + blob, True
    head = stream[pos:pos + 4]
    if not b"WA".startswith(head[:2]):
        return "no", None
    if len(head) < 4:
        return "need-more", None
    pos += 4
    first = None
    if len(stream) >= pos + 3:
        first = int.from_bytes(stream[pos:pos + 3], "big")
        if first == 0 or first > MAX_FIRST_FRAME:
            return "no", None
    return "ok", Prologue(edge, (head[2], head[3]), pos, first)
