"""A crafted scripted session, built with the sample generator's packet builders: a chat
connection with messages at known times, keep-alives every 25 s, a media upload, and a
scenario with one action that caused no traffic."""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "captures"))
import make_sample as ms  # noqa: E402

KEEPALIVE_EVERY_S = 25
KEEPALIVES = [KEEPALIVE_EVERY_S * k for k in range(1, 12)]          # 25 ... 275 s
OUTBOUND = {40.0: 214, 130.0: 301}                                  # s -> frame bytes
INBOUND = {95.0: 356}
MEDIA_AT, MEDIA_MESSAGE_AT = 160.0, 165.0
NO_TRAFFIC_AT = 212.0                                               # contact_added: nothing sent
SCENARIO = [
    (0, "app_opened", "", "app opened"),
    (40, "message_sent", "contact-A", "hi"),
    (95, "message_received", "contact-A", "reply <b>bold</b>"),
    (130, "message_sent", "contact-B", "second"),
    (160, "media_sent", "contact-A", "photo"),
    (NO_TRAFFIC_AT, "contact_added", "contact-C", "no sync"),
]


def write(out_dir: Path) -> tuple[Path, Path]:
    g = ms.Generator()
    conn = ms.TCPConn(g, ms.WA, ms.PHONE4, ms.WA_CHAT4, 5222, 57, 18.0, "whatsapp.chat")
    chat = ms.Chat(conn)
    t = conn.handshake(ms.us(0.050))
    t = chat.prologue_and_hello(t + 200)
    t += conn.rtt
    chat.send(t, "s", [347], "coalesce")
    chat.send(t + ms.us(0.003), "c", [198], "hdr")
    for sec in KEEPALIVES:      # the brief's ping and pong sizes (36 B), every 25 s
        chat.send(ms.us(sec), "c", [36])
        chat.send(ms.us(sec) + conn.rtt, "s", [36])
        conn.ack(ms.us(sec) + conn.rtt + ms.us(0.04), "c")
    for sec, size in OUTBOUND.items():
        chat.outbound(ms.us(sec), size, mode="each")
    for sec, size in INBOUND.items():
        chat.inbound(ms.us(sec), size)
    mc = ms.TCPConn(g, ms.WA, ms.PHONE4, ms.WA_MEDIA, 443, 57, 16.0, "whatsapp.media")
    t = mc.handshake(ms.us(MEDIA_AT))
    t = ms.tls_open(g, mc, t + 150, "media-fra3-1.cdn.whatsapp.net", (b"h2",), 2480, 290)
    t = mc.bulk(t + ms.us(0.002), "c", ms.tls_appdata(g.rng, 16000) * 6, gap_us=560)
    mc.send(t + ms.us(0.004), "s", ms.tls_appdata(g.rng, 431))
    mc.close(ms.us(MEDIA_AT + 3.0), "c")
    chat.outbound(ms.us(MEDIA_MESSAGE_AT), 612, mode="each")
    conn.close(ms.us(290.0), "c")
    pcap = out_dir / "crafted.pcap"
    ms.write_pcap(pcap, ms.finalize(g))
    scenario = out_dir / "crafted.scenario.csv"
    lines = ["time,action,peer,note"] + [
        f"{ms.iso(ms.BASE_US + ms.us(sec))[:19]}Z,{action},{peer},\"{note}\"" for sec, action, peer, note in SCENARIO]
    scenario.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return pcap, scenario
