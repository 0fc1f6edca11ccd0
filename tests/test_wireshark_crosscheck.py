"""flowscope's dissectors versus Wireshark's, on real third-party captures.

tshark is driven through pyshark over the nDPI corpus (../shared/corpus/ndpi/pcap, read in
place, never copied) and three things are compared with what flowscope reports itself:

1. **SNI**: the server_name of every TLS and QUIC ClientHello tshark decodes, keyed by the
   flow's unordered 5-tuple, equals the ``sni`` of flowscope's flow with that 5-tuple, and
   flowscope reports no SNI on a flow where tshark saw no ClientHello.
2. **DNS answers**: for every DNS/mDNS response over UDP, the A/AAAA records tshark lists
   in the *answer section* (tshark's ``dns.a``/``dns.aaaa`` also hold authority and
   additional records, so each address is attributed to its record by byte position and
   the first ``dns.count.answers`` records are kept) equal the A/AAAA records of ``flowscope.dissect.dns.parse_dns``
   on the same UDP payload, owner names included.
3. **Flow 5-tuples**: the unordered 5-tuples of the TCP and UDP packets tshark sees (outer
   transport header only: a TCP/UDP header quoted inside an ICMP error belongs to an ICMP
   packet) equal the 5-tuples of flowscope's tcp and udp flows.

flowscope runs like ndpiReader here (no duplicate suppression, timeouts longer than the
captures) so that a 5-tuple is one flow. pyshark costs a few ms per packet, so captures
are few and small and tshark is given a display filter.
"""
from __future__ import annotations

import asyncio
import bisect
import functools
import ipaddress
import os
import re
import shutil
import sys
from collections import defaultdict
from pathlib import Path

import pytest

import flowscope
from flowscope.dissect import dns

pyshark = pytest.importorskip("pyshark", reason="pyshark is not installed (pip install pyshark)")

PCAPS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "ndpi" / "pcap"
TSHARK = shutil.which("tshark")

pytestmark = [
    pytest.mark.corpus,
    pytest.mark.slow,
    pytest.mark.skipif(not PCAPS.is_dir(),
                       reason=f"third-party corpus not found at {PCAPS} (it lives beside the project)"),
    pytest.mark.skipif(TSHARK is None, reason="tshark (Wireshark's CLI) is not on PATH"),
]

FLOWSCOPE_LIKE_NDPI = dict(tcp_idle_s=1e9, tcp_closed_s=1e9, udp_idle_s=1e9, other_idle_s=1e9,
                           dedup_window_ms=0)

SNI_CAPTURES = ["facebook.pcap", "instagram.pcap", "wa_voice.pcap", "whatsappfiles.pcap",
                "signal.pcap", "quic-mvfst-27.pcapng"]
DNS_CAPTURES = ["whatsapp_login_call.pcap", "wa_voice.pcap", "whatsapp.pcap", "telegram.pcap"]
WITHOUT_DNS = {"whatsapp.pcap"}  # a WhatsApp session captured without its DNS: compares nothing
TUPLE_CAPTURES = ["whatsapp.pcap", "signal.pcap", "stun.pcap", "threema.pcap"]

IP_LAYERS = {"ip", "ipv6"}
TRANSPORT_LAYERS = {"tcp", "udp", "icmp", "icmpv6"}
TYPE_A, TYPE_AAAA = 1, 28
PLAIN_NAME = re.compile(r"^[A-Za-z0-9._-]*$")  # names both tools print the same way


# --- helpers ----------------------------------------------------------------------------

def _capture(name: str) -> Path:
    path = PCAPS / name
    if not path.is_file():
        pytest.skip(f"{name} is missing from {PCAPS}")
    return path


def _tshark_packets(path: Path, display_filter: str):
    """Yield tshark's dissection of each packet matching the filter (pyshark, PDML).

    Each capture gets a fresh event loop. Before Python 3.12 asyncio's default child
    watcher (ThreadedChildWatcher) intermittently loses tshark's exit status ("Unknown
    child process pid ..., will report returncode 255"), which pyshark then reports as a
    TSharkCrashException; pyshark works around it with a SafeChildWatcher only when it
    creates the loop itself, so the same is done here for our loop, and undone after.
    """
    loop = asyncio.new_event_loop()
    watcher = previous = None
    if sys.version_info < (3, 12) and os.name == "posix":
        previous = asyncio.get_child_watcher()
        watcher = asyncio.SafeChildWatcher()
        watcher.attach_loop(loop)
        asyncio.set_child_watcher(watcher)
    cap = pyshark.FileCapture(str(path), display_filter=display_filter, keep_packets=False,
                              tshark_path=TSHARK, eventloop=loop)
    try:
        yield from cap
    finally:
        try:
            cap.close()
        finally:
            if watcher is not None:
                watcher.close()
                asyncio.set_child_watcher(previous)
            loop.close()


def _ip(text) -> str:
    return ipaddress.ip_address(str(text)).compressed


def _key(l4, a, ap, b, bp):
    return str(l4), frozenset([(_ip(a), int(ap)), (_ip(b), int(bp))])


def _show(key) -> str:
    l4, ends = key
    return f"{l4} " + " <-> ".join(f"[{ip}]:{port}" for ip, port in sorted(ends))


def _values(layer, field: str) -> list[str]:
    got = layer.get_field(field)
    return [] if got is None else [f.show for f in got.all_fields]


def _outer_5tuple(pkt):
    """(l4, ends) from the packet's first transport header and the IP header before it;
    None when that header is not TCP/UDP (e.g. ICMP errors quoting a UDP header)."""
    ip_layer = None
    for layer in pkt.layers:
        name = layer.layer_name
        if name in IP_LAYERS:
            ip_layer = layer  # the innermost IP before the transport (tunnels unwrapped)
        elif name in TRANSPORT_LAYERS:
            if name not in ("tcp", "udp") or ip_layer is None:
                return None
            v = ip_layer.layer_name
            return _key(name, ip_layer.get_field(f"{v}.src").show, layer.get_field(f"{name}.srcport").show,
                        ip_layer.get_field(f"{v}.dst").show, layer.get_field(f"{name}.dstport").show)
    return None


@functools.lru_cache(maxsize=None)
def _flowscope_flows(name: str):
    result = flowscope.analyze(_capture(name), **FLOWSCOPE_LIKE_NDPI)
    return result.flows


def _flowscope_by_key(name: str, l4s=("tcp", "udp")) -> dict:
    out = defaultdict(list)
    for f in _flowscope_flows(name).itertuples():
        if f.l4 in l4s:
            out[_key(f.l4, f.orig_ip, f.orig_port, f.resp_ip, f.resp_port)].append(f)
    return dict(out)


def _report(title: str, lines: list[str], limit: int = 40) -> str:
    more = f"\n  ... and {len(lines) - limit} more" if len(lines) > limit else ""
    return f"{title} ({len(lines)}):\n  " + "\n  ".join(lines[:limit]) + more


# --- 1. TLS/QUIC SNI ----------------------------------------------------------------------

@pytest.mark.parametrize("name", SNI_CAPTURES)
def test_sni_matches_tshark(name):
    path = _capture(name)
    theirs: dict = defaultdict(set)  # 5-tuple -> server names in its ClientHellos
    hellos = 0
    for pkt in _tshark_packets(path, "tls.handshake.type == 1"):
        key = _outer_5tuple(pkt)
        assert key is not None, f"{name} frame {pkt.number}: ClientHello outside TCP/UDP"
        hellos += 1
        names = theirs[key]
        for layer in pkt.layers:  # tls layers, or the quic layer holding the CRYPTO frames
            names.update(_values(layer, "tls.handshake.extensions_server_name"))
    assert hellos, f"tshark found no ClientHello in {name}: nothing was compared"

    ours = _flowscope_by_key(name)
    problems = []
    for key, names in sorted(theirs.items(), key=lambda kv: _show(kv[0])):
        flows = ours.get(key)
        if not flows:
            problems.append(f"{_show(key)}: tshark SNI {sorted(names)}, no such flowscope flow")
            continue
        got = {f.sni for f in flows if isinstance(f.sni, str) and f.sni}
        if got != names:
            problems.append(f"{_show(key)}: tshark SNI {sorted(names)} != flowscope sni {sorted(got)}")
    for key, flows in ours.items():
        got = {f.sni for f in flows if isinstance(f.sni, str) and f.sni}
        if got and key not in theirs:
            problems.append(f"{_show(key)}: flowscope sni {sorted(got)}, tshark saw no ClientHello")
    assert not problems, _report(f"{name}: SNI disagreements over {len(theirs)} ClientHello flows",
                                 problems)


# --- 2. DNS answer sections ---------------------------------------------------------------

def _fields(layer, field: str) -> list:
    got = layer.get_field(field)
    return [] if got is None else list(got.all_fields)


def _tshark_answer_records(layer) -> set | None:
    """The A/AAAA records tshark decoded in the answer section, as {(owner, address)}
    (owner None when tshark and flowscope would print it differently); None if tshark's
    fields cannot be attributed to records.

    tshark's dns.a/dns.aaaa hold every section's records, and dns.resp.type also holds the
    types listed in NSEC bitmaps, so records are told apart by byte position instead: each
    record starts with its one dns.resp.name, its dns.resp.type follows that name, and a
    dns.a/dns.aaaa field belongs to the record whose byte range holds it. The first
    dns.count.answers records form the answer section.
    """
    names = sorted(_fields(layer, "dns.resp.name"), key=lambda f: int(f.pos))
    starts = [int(f.pos) for f in names]
    type_at = {int(f.pos): int(f.show) for f in _fields(layer, "dns.resp.type")}
    answers = int(_fields(layer, "dns.count.answers")[0].show)
    section = set()
    for rtype, field in [(TYPE_A, "dns.a"), (TYPE_AAAA, "dns.aaaa")]:
        for f in _fields(layer, field):
            k = bisect.bisect_right(starts, int(f.pos)) - 1
            if k < 0 or type_at.get(starts[k] + int(names[k].size)) != rtype:
                return None
            if k < answers:
                owner = names[k].show
                section.add((owner.lower().rstrip(".") if PLAIN_NAME.match(owner) else None, _ip(f.show)))
    return section


@pytest.mark.parametrize("name", DNS_CAPTURES)
def test_dns_answers_match_tshark(name):
    path = _capture(name)
    responses = with_addresses = 0
    problems = []
    for pkt in _tshark_packets(path, "udp && dns.flags.response == 1"):
        layer = next((l for l in pkt.layers if l.layer_name in ("dns", "mdns")), None)
        if layer is None or pkt.udp.get_field("udp.payload") is None:
            problems.append(f"frame {pkt.number}: tshark gave no DNS layer or UDP payload")
            continue
        responses += 1
        theirs = _tshark_answer_records(layer)
        if theirs is None:
            problems.append(f"frame {pkt.number}: tshark's A/AAAA fields do not line up with its records")
            continue
        msg = dns.parse_dns(bytes.fromhex(pkt.udp.get_field("udp.payload").raw_value))
        if msg is None or not msg.is_response:
            problems.append(f"frame {pkt.number}: flowscope parse_dns -> {msg!r}")
            continue
        ours = {(r.name, _ip(r.value)) for r in msg.answers if r.rtype in (TYPE_A, TYPE_AAAA)}
        our_addresses = {ip for _, ip in ours}
        missing = sorted(f"{n or '?'} {ip}" for n, ip in theirs
                         if ((n, ip) not in ours if n is not None else ip not in our_addresses))
        extra = sorted(f"{n} {ip}" for n, ip in ours
                       if (n, ip) not in theirs and (None, ip) not in theirs)
        if missing or extra:
            parts = ([f"tshark's answer-section A/AAAA {missing} not among flowscope's"] if missing else []) + \
                    ([f"flowscope's A/AAAA answers {extra} not in tshark's answer section"] if extra else [])
            problems.append(f"frame {pkt.number}: " + "; ".join(parts))
        with_addresses += bool(theirs)
    assert not problems, _report(f"{name}: DNS disagreements over {responses} responses", problems)
    if name in WITHOUT_DNS:
        assert responses == 0, f"{name} was thought to hold no DNS response; update WITHOUT_DNS"
    else:
        assert with_addresses, f"tshark found no DNS response with A/AAAA answers in {name}"


# --- 3. TCP/UDP 5-tuples --------------------------------------------------------------------

@pytest.mark.parametrize("name", TUPLE_CAPTURES)
def test_flow_5tuples_match_tshark(name):
    path = _capture(name)
    theirs, packets = set(), 0
    for pkt in _tshark_packets(path, "tcp or udp"):
        key = _outer_5tuple(pkt)
        if key is not None:
            theirs.add(key)
            packets += 1
    assert packets, f"tshark found no TCP/UDP packet in {name}"
    ours = set(_flowscope_by_key(name))
    missing = sorted(_show(k) for k in theirs - ours)
    extra = sorted(_show(k) for k in ours - theirs)
    problems = [f"only tshark: {k}" for k in missing] + [f"only flowscope: {k}" for k in extra]
    assert not problems, _report(
        f"{name}: 5-tuple disagreements (tshark {len(theirs)} tuples from {packets} packets, "
        f"flowscope {len(ours)} tcp/udp flows)", problems)
