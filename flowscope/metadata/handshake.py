"""Is the chat handshake still the one the event thresholds were set for?

The first client frame of a WhatsApp chat connection (after the prologue) is the Noise
ClientHello. Its size names the handshake mode; a size never seen before means a new mode
or protocol version (post-quantum hellos are already in the protocol buffers), whose
stanza sizes the event kinds were not calibrated on. A warning says so before it silently
skews the counts. Sizes and their sources: docs/metadata.md §2.
"""
from __future__ import annotations

# (low, high, what it is and where the size comes from), frame body bytes
KNOWN_FIRST_FRAMES = (
    (36, 36, "Noise XX ClientHello: a 43-byte first message with the 4-byte WA header "
             "(computed from whatsmeow and Baileys, whatsapp-business-and-frames.md §3.1)"),
    (26, 26, "pre-2016 WA 1.x login stanza (measured: nDPI whatsapp_login_call.pcap, whatsapp_login_chat.pcap)"),
    (230, 280, "phone apps resuming with Noise IK (measured: nDPI wa_voice.pcap 238 B, iOS 2019; "
               "whatsapp.pcap 259-276 B)"),
    (1240, 1260, "phone apps, larger hello (measured: nDPI whatsapp.pcap 1246 and 1255 B)"),
)


def known(frame_bytes: int) -> bool:
    return any(lo <= frame_bytes <= hi for lo, hi, _ in KNOWN_FIRST_FRAMES)


def warnings(frames_by_flow: dict, units: dict, sync: dict) -> list[str]:
    """One warning line when first client frames of walks that saw the stream start
    (frame_sync prologue) have sizes outside KNOWN_FIRST_FRAMES. `frames_by_flow`:
    flow_id -> [(ts_first, ts, direction, frame_bytes, frame_index)]; WhatsApp Web walks
    (tls-record units) are not judged: their first record is a TLS ClientHello."""
    seen, odd = 0, {}
    for fid, rows in frames_by_flow.items():
        if sync.get(fid) != "prologue":
            continue
        first = next((r for r in rows if r[2] == "up" and r[4] == 0), None)
        if first is None or units.get(fid) != "wa-frame":
            continue
        seen += 1
        if not known(first[3]):
            odd[first[3]] = odd.get(first[3], 0) + 1
    if not odd:
        return []
    sizes = ", ".join(f"{n} B ({k}x)" for n, k in sorted(odd.items()))
    return [f"chat handshake: the first client frame of {sum(odd.values())} of {seen} connections has a size "
            f"not seen before ({sizes}; known: 36 B Noise XX, 26 B WA 1.x, 230-280 and 1240-1260 B phone "
            f"apps): a new handshake mode or protocol version, whose stanza sizes may skew the event kinds"]

