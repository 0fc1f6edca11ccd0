#!/usr/bin/env python3
"""Generate the SYNTHETIC company capture (issue 13) and its ground truth.

Writes, next to this file:

* ``company_session.pcap``        classic pcap, Ethernet, as a mirror port at a company sees it;
* ``company_session.truth.json``  what each flow is, who runs its far end, and how many API
                                  calls and webhook deliveries it carries.

Everything is made up: no byte comes from a real capture. Deterministic (fixed seed, fixed base
time, no wall clock), so running it twice gives byte-identical files. The TLS records are
random bytes of plausible sizes (whatsapp-business-and-frames.md §1.1: a send request ≈0.5-1 KB
up, its response ≈150-250 B; webhooks a few hundred bytes to a few KB of JSON); the
ClientHellos are real TLS ClientHellos with the server name in SNI.

The company:
* a platform host (10.20.0.5, and fd00:20::5 on IPv6) that calls the Cloud API on
  graph.facebook.com, downloads a media file from lookaside.fbsbx.com, receives webhooks from
  Meta over IPv4 and IPv6 (one connection with mTLS over TLS 1.2, the client certificate
  client.webhooks.fbclientcerts.com in clear), and also talks to two solution providers
  (360dialog, WhatsApp-specific; Twilio, shared with SMS);
* an employee phone on the guest Wi-Fi (192.168.50.23) with WhatsApp Business (a chat
  connection) whose Facebook app also calls graph.facebook.com: not the Cloud API.

    .venv/bin/python captures/make_company.py
"""
from __future__ import annotations

import calendar
import json
import random
import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from flowscope.testing import ethernet, ipv4, ipv6, tcp, tls_client_hello, write_pcap  # noqa: E402

PCAP_PATH = HERE / "company_session.pcap"
TRUTH_PATH = HERE / "company_session.truth.json"
SEED = 20260413
BASE_NS = calendar.timegm((2026, 4, 13, 9, 0, 0)) * 1_000_000_000  # 2026-04-13T09:00:00Z
MS = 1_000_000
MSS = 1400

# --- address plan (Meta addresses from the catalog's AS32934 prefixes) -------------------
PLATFORM4, PLATFORM6 = "10.20.0.5", "fd00:20::5"
PHONE = "192.168.50.23"
GRAPH = "157.240.0.17"                      # graph.facebook.com (157.240.0.0/17, AS32934)
LOOKASIDE = "31.13.72.12"                   # lookaside.fbsbx.com (31.13.64.0/18, AS32934)
WA_CHAT = "157.240.20.53"                   # g.whatsapp.net (Meta's WhatsApp list)
HOOK4, HOOK4B = "173.252.88.10", "173.252.88.11"   # webhook sources in 173.252.64.0/18 (AS32934)
HOOK6 = "2a03:2880:20ff:b::face:b00c"       # webhook source in 2a03:2880::/29 (AS32934)
DIALOG = "203.0.113.40"                     # waba-v2.360dialog.io (documentation address: synthetic)
TWILIO = "203.0.113.41"                     # api.twilio.com (documentation address: synthetic)
WEBHOOK_NAME = "wa-hooks.company.example"   # the company's webhook endpoint (its own certificate)

META, WHATSAPP = "Meta Platforms, Inc.", "WhatsApp LLC"


def record(ctype: int, body: bytes) -> bytes:
    return struct.pack("!BHH", ctype, 0x0303, len(body)) + body


class Conn:
    """One TCP connection: handshake, bursts of TLS records, FIN; packets as (ts, frame)."""

    def __init__(self, rng, client, server, sport, dport, t0_ns, rtt_ms=12.0):
        self.rng, self.c, self.s, self.sp, self.dp = rng, client, server, sport, dport
        self.t, self.rtt = t0_ns, int(rtt_ms * MS)
        self.seq = {"c": rng.randrange(1 << 31), "s": rng.randrange(1 << 31)}
        self.packets: list[tuple[int, bytes]] = []
        self._seg("c", "S", b"", syn=True)
        self.t += self.rtt
        self._seg("s", "SA", b"", syn=True)
        self.t += MS // 2
        self._seg("c", "A", b"")

    def _ip(self, who, seg):
        src, dst = (self.c, self.s) if who == "c" else (self.s, self.c)
        return ethernet(ipv6(src, dst, 6, seg) if ":" in src else ipv4(src, dst, 6, seg))

    def _seg(self, who, flags, payload, syn=False):
        other = "s" if who == "c" else "c"
        sport, dport = (self.sp, self.dp) if who == "c" else (self.dp, self.sp)
        seq = self.seq[who]
        ack = 0 if flags == "S" else self.seq[other]
        self.packets.append((self.t, self._ip(who, tcp(sport, dport, flags=flags, seq=seq, ack=ack, payload=payload))))
        self.seq[who] = (seq + len(payload) + (1 if syn or "F" in flags else 0)) & 0xFFFFFFFF

    def send(self, who, data: bytes, gap_ms=0.2):
        """Bytes from one side, cut into MSS segments a fraction of a millisecond apart."""
        for k in range(0, len(data), MSS):
            self._seg(who, "PA", data[k:k + MSS])
            self.t += int(gap_ms * MS)

    def wait(self, ms):
        self.t += int(ms * MS)

    def close(self):
        self._seg("c", "FA", b"")
        self.t += self.rtt
        self._seg("s", "FA", b"")
        self.t += MS // 2
        self._seg("c", "A", b"")

    def noise(self, n):
        return self.rng.randbytes(n)


def tls13_open(conn: Conn, sni: str, alpn=(b"h2",)):
    conn.send("c", tls_client_hello(sni, alpn))
    conn.wait(conn.rtt / MS)
    conn.send("s", record(22, conn.noise(90)) + record(20, b"\x01") + record(23, conn.noise(2600)))
    conn.wait(1)
    conn.send("c", record(20, b"\x01") + record(23, conn.noise(53)))
    conn.send("s", record(23, conn.noise(250)))  # NewSessionTicket


def exchange(conn: Conn, up: int, down: int, think_ms: float):
    """One request (client) and its response (server), then `think_ms` of quiet."""
    conn.send("c", record(23, conn.noise(up)))
    conn.wait(conn.rtt / MS + 40)
    conn.send("s", record(23, conn.noise(down)))
    conn.wait(think_ms)


def tls12_mtls_open(conn: Conn, sni: str):
    """TLS 1.2 with a client certificate: Meta's webhook mTLS, its certificate in clear."""
    conn.send("c", tls_client_hello(sni, (b"http/1.1",)))
    conn.wait(conn.rtt / MS)
    conn.send("s", record(22, conn.noise(3900)))  # ServerHello, Certificate, KeyExchange, CertificateRequest, Done
    conn.wait(1)
    cert = (b"\x0b" + (1500).to_bytes(3, "big") + conn.noise(180) + b"\x06\x03\x55\x04\x03\x0c\x21"
            + b"client.webhooks.fbclientcerts.com" + conn.noise(1500 - 180 - 7 - 33))
    conn.send("c", record(22, cert + b"\x10" + (37).to_bytes(3, "big") + conn.noise(37)
                          + b"\x0f" + (260).to_bytes(3, "big") + conn.noise(260)))
    conn.send("c", record(20, b"\x01") + record(22, conn.noise(40)))
    conn.wait(conn.rtt / MS)
    conn.send("s", record(20, b"\x01") + record(22, conn.noise(40)))


def build(rng: random.Random) -> tuple[list, list]:
    conns, truth = [], []

    def flow(conn, service, operator, country, api_calls=0, webhooks=0, note=""):
        conn.close()
        conns.append(conn)
        truth.append({"orig_ip": conn.c, "orig_port": conn.sp, "resp_ip": conn.s, "resp_port": conn.dp,
                      "service": service, "operator": operator, "operator_country": country,
                      "api_calls": api_calls, "webhooks": webhooks, "note": note})

    t = BASE_NS
    # Cloud API: sends spread over two hours on two connections (h2), one media download
    for k, (start_min, sends) in enumerate(((2, 3), (65, 3))):
        c = Conn(rng, PLATFORM4, GRAPH, 41000 + k, 443, t + start_min * 60_000 * MS)
        tls13_open(c, "graph.facebook.com")
        for _ in range(sends):
            exchange(c, rng.randrange(620, 900), rng.randrange(160, 250), rng.randrange(20_000, 90_000))
        flow(c, "whatsapp.business_api", WHATSAPP, "US", api_calls=sends, note="Cloud API sends (POST /messages)")
    c = Conn(rng, PLATFORM4, LOOKASIDE, 41010, 443, t + 20 * 60_000 * MS)
    tls13_open(c, "lookaside.fbsbx.com")
    c.send("c", record(23, c.noise(540)))
    c.wait(60)
    c.send("s", b"".join(record(23, c.noise(16401)) for _ in range(5)), gap_ms=0.05)
    flow(c, "whatsapp.business_api", WHATSAPP, "US", api_calls=1, note="media download (GET lookaside URL)")

    # Webhooks: 3 status deliveries a send (sent, delivered, read) and 2 incoming messages; the
    # first arrives before the first API call (a platform receives webhooks all day)
    plan = [(HOOK4, PLATFORM4, 52000, 1, 8), (HOOK4B, PLATFORM4, 52001, 66, 7), (HOOK6, PLATFORM6, 52002, 30, 3)]
    for src, dst, sport, start_min, deliveries in plan:
        c = Conn(rng, src, dst, sport, 443, t + start_min * 60_000 * MS, rtt_ms=9.0)
        tls13_open(c, WEBHOOK_NAME, (b"http/1.1",))
        for _ in range(deliveries):
            exchange(c, rng.randrange(900, 1800), rng.randrange(120, 180), rng.randrange(2_000, 40_000))
        flow(c, "whatsapp.webhook", WHATSAPP, "US", webhooks=deliveries,
             note=f"webhook deliveries over IPv{6 if ':' in src else 4}")
    c = Conn(rng, HOOK4, PLATFORM4, 52003, 443, t + 90 * 60_000 * MS, rtt_ms=9.0)
    tls12_mtls_open(c, WEBHOOK_NAME)
    for _ in range(2):
        exchange(c, rng.randrange(1200, 2400), rng.randrange(120, 180), rng.randrange(5_000, 20_000))
    flow(c, "whatsapp.webhook", WHATSAPP, "US", webhooks=2, note="mTLS over TLS 1.2: incoming customer messages")

    # Solution providers
    c = Conn(rng, PLATFORM4, DIALOG, 41020, 443, t + 40 * 60_000 * MS, rtt_ms=15.0)
    tls13_open(c, "waba-v2.360dialog.io")
    for _ in range(2):
        exchange(c, rng.randrange(600, 800), rng.randrange(150, 220), 15_000)
    flow(c, "whatsapp.bsp", "360dialog GmbH", "DE", api_calls=2, note="WhatsApp-specific provider host")
    c = Conn(rng, PLATFORM4, TWILIO, 41021, 443, t + 45 * 60_000 * MS, rtt_ms=95.0)
    tls13_open(c, "api.twilio.com")
    exchange(c, 700, 900, 1_000)
    flow(c, "whatsapp.bsp", "Twilio Inc.", "US", api_calls=1, note="shared provider host (SMS too): confidence low")

    # The employee's phone on the guest Wi-Fi: WhatsApp Business chat, and Facebook's Graph API
    c = Conn(rng, PHONE, WA_CHAT, 38000, 443, t + 10 * 60_000 * MS, rtt_ms=20.0)
    c.send("c", b"ED\x00\x01\x00\x00\x04\x08\x01\x10\x02" + b"WA\x06\x03" + (43).to_bytes(3, "big") + c.noise(43))
    c.wait(20)
    c.send("s", (350).to_bytes(3, "big") + c.noise(350))
    c.wait(1)
    for size in (120, 60, 300, 40):
        c.send("c", size.to_bytes(3, "big") + c.noise(size))
        c.wait(25)
        c.send("s", (40).to_bytes(3, "big") + c.noise(40))
        c.wait(3_000)
    flow(c, "whatsapp.chat", WHATSAPP, "US", note="WhatsApp Business app on the phone")
    c = Conn(rng, PHONE, GRAPH, 38001, 443, t + 12 * 60_000 * MS, rtt_ms=20.0)
    tls13_open(c, "graph.facebook.com")
    exchange(c, 1100, 4200, 2_000)
    flow(c, "meta.other", META, "US",
         note="Facebook app's Graph API call from the phone: not the Cloud API (not a platform host)")
    return conns, truth


def main() -> None:
    rng = random.Random(SEED)
    conns, truth = build(rng)
    packets = sorted((p for c in conns for p in c.packets), key=lambda p: p[0])
    write_pcap(PCAP_PATH, packets, nanosecond=False)
    doc = {"synthetic": True,
           "generator": "captures/make_company.py",
           "description": "SYNTHETIC mirror-port capture at a company using the WhatsApp Business Platform "
                          "(issue 13): made-up bytes of plausible sizes, not a recording",
           "platform_hosts": [PLATFORM4, PLATFORM6], "phone": PHONE,
           "sends": 6, "status_webhooks_expected": 18,
           "flows": truth}
    TRUTH_PATH.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {PCAP_PATH.name} ({PCAP_PATH.stat().st_size:,} bytes, {len(packets)} packets) and {TRUTH_PATH.name}")


if __name__ == "__main__":
    main()
