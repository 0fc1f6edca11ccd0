"""The report's words: method and limits in plain language, and the captions' source lines."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from flowscope._version import __version__

# (heading, paragraph): what a capture can and cannot prove, said once, for every report.
METHOD = (
    ("What the capture shows",
     "A packet capture records which addresses the device exchanged packets with, when, in which "
     "direction and how much. Content is end-to-end encrypted and is never read; flowscope keeps "
     "packet headers and the few clear-text handshake fields that name a service (server names, DNS "
     "answers, the WhatsApp prologue, STUN), and writes no payload bytes anywhere. Inside its encrypted "
     "channel Meta's servers see more than the capture does: recipients, message types, receipts and "
     "typing states travel as routing metadata the service must read."),
    ("Which traffic is WhatsApp/Meta",
     "Each flow is labelled from protocol evidence first (WhatsApp prologue, STUN, TLS/QUIC server "
     "name), then names (DNS, HTTP host), then addresses (Meta's published prefixes and ASNs). Every "
     "flow carries the rule that decided and its source in the dated catalog, with a confidence "
     "level. A DNS query for a Meta name counts as Meta traffic: the query already tells the resolver "
     "the intent."),
    ("Edge location, processing location and jurisdiction are three different things",
     "The remote address is the first server the device talks to: an edge point of presence, a call "
     "relay or a content cache. A capture can locate that edge; it cannot see where Meta's private "
     "backbone carries the data afterwards (Meta runs data centres in the US, Ireland, Denmark, Sweden "
     "and Singapore), so an edge in the EU does not show that processing stays in the EU. Who runs the "
     "endpoint (its operator) and the law that operator is incorporated under are a separate column: "
     "an edge in Frankfurt run by Meta Platforms, Inc. is an EU location under US jurisdiction, and "
     "the report counts it under both headings. Whether a flow is a transfer under Chapter V GDPR is a "
     "legal qualification (entities, contracts, remote access) that no capture decides."),
    ("How locations are found, and why databases are not trusted blindly",
     "A Meta point-of-presence code in a host name (media-fra3-1.cdn.whatsapp.net: FRA, Frankfurt) is "
     "used first; otherwise the first geolocation database that places the address. Databases map "
     "address blocks from registry data and are often wrong for global networks: Meta's address space "
     "is registered in Ireland and the US whatever the server's real place. Every database answer and "
     "every disagreement between them is kept in the flow table."),
    ("The round-trip-time bound",
     "A reply cannot come back faster than light travels there and back. The smallest trusted "
     "round-trip time to an address (TCP SYN to SYN-ACK, or a STUN request to its response) bounds its "
     "distance from the capture point: at most 99.93 km per millisecond of RTT in optical fibre (2/3 "
     "of the speed of light) and, as a limit nothing can beat, 149.90 km per millisecond in vacuum. "
     "With a vantage point (--vantage), a database location farther away than the vacuum bound is "
     "physically impossible and is marked so. The bound is an upper bound only: a long RTT does not "
     "prove that a server is far away (queues, detours), and proving that a server is outside the EU "
     "needs measurements from several places."),
    ("Event kinds are heuristics",
     "Messages, receipts, presence updates and handshakes are inferred from the size, direction and "
     "timing of encrypted frames, and calls and media from their flows; each event carries a "
     "confidence. They have not been validated against a labelled capture of the current app version, "
     "so event counts are estimates, not a log of what the user did."),
    ("Regions",
     "EU and EEA membership and the Commission's adequacy decisions come from a dated file. The US "
     "counts as 'adequate' only under the EU-US Data Privacy Framework (10 July 2023), which covers "
     "certified organisations only; check the DPF List and the other decisions on the audit date."),
    ("Call peers",
     "In a direct (peer-to-peer) call, media flows between the two phones, so each learns the other's "
     "IP address; relayed calls hide it. Direct call legs are recognised by the UDP socket they share "
     "with a WhatsApp STUN flow, or by the device answering the peer's STUN connectivity checks."),
    ("Privacy of this report",
     "Local addresses, MAC addresses, the device's public address as STUN reports it and call peers' "
     "addresses are replaced, in every file written, by keyed pseudonyms (local-…, mac-…, peer-…: "
     "HMAC-SHA256 with a key kept outside the evidence directory). The same key gives the same "
     "pseudonyms, so runs can be compared; without the key they cannot be reversed. Names of local "
     "devices (DHCP host names, mDNS/LLMNR names, names under home-router domains or resolving to a "
     "local address) become device-…, and the Community ID is keyed the same way (cid-…), because "
     "the plain hash of the addresses could be reversed by trying every private address."),
)


def period_text(flows: pd.DataFrame) -> str:
    """'2026-03-02 09:00:00 – 09:09:55 UTC' (dates repeated only when they differ)."""
    if flows.empty:
        return "no packets"
    start = pd.to_datetime(flows["ts_start"], utc=True).min()
    end = pd.to_datetime(flows["ts_end"], utc=True).max()
    same_day = start.date() == end.date()
    return (f"{start:%Y-%m-%d %H:%M:%S} – {end:%H:%M:%S} UTC" if same_day
            else f"{start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M} UTC")


def caption(summary: dict, flows: pd.DataFrame, geo: bool = False) -> str:
    """Data source and date for a chart: the captures, their hashes, the capture period; for
    location charts also the databases (DB-IP's licence asks for attribution wherever used)."""
    caps = summary.get("captures", [])
    names = ", ".join(Path(c.get("path", "")).name for c in caps[:3]) + (f" +{len(caps) - 3} more" if len(caps) > 3 else "")
    hashes = ", ".join((c.get("sha256") or "")[:12] for c in caps[:3])
    text = f"Data: {names or 'no capture'} (SHA-256 {hashes}…), captured {period_text(flows)}; flowscope {__version__}."
    if geo:
        dbs = (summary.get("geo") or {}).get("databases", [])
        if dbs:
            text += " Locations: " + "; ".join(f"{d.get('name')} {d.get('build_date') or ''}".strip() for d in dbs) + "."
        text += " IP Geolocation by DB-IP (https://db-ip.com), CC BY 4.0."
    return text
