"""The classify stage: payload evidence + DNS + catalog -> a label and its evidence per flow.

Runs on the finished flow table (one catalog lookup per distinct address, not per packet).
The DNS name of a flow is the name whose answer, seen before the flow started, resolved
the flow's responder address (latest such answer wins).
"""
from __future__ import annotations

import bisect
from itertools import chain
from dataclasses import replace

import numpy as np
import pyarrow as pa

from flowscope.classify.catalog import load_catalog
from flowscope.columns import pydict, pylist
from flowscope.classify.classifier import ON_PREM_MARK, Label, classify_columns, webhook_source_ids
from flowscope.dissect import evidence as ev_mod
from flowscope.classify.platform import PlatformHosts
from flowscope.sides import remote_is_orig


def _dns_index(evidences) -> dict[str, tuple[list[int], list[str]]]:
    answers: dict[str, list[tuple[int, str]]] = {}
    for ev in evidences:
        for ts, addr, name in ev.dns_answers:
            answers.setdefault(addr, []).append((ts, name))
    index = {}
    for addr, items in answers.items():
        items.sort()
        index[addr] = ([t for t, _ in items], [n for _, n in items])
    return index


def _dns_name(index, addr: str, ts_start: int) -> str | None:
    got = index.get(addr)
    if not got:
        return None
    k = bisect.bisect_right(got[0], ts_start)
    return got[1][k - 1] if k else None


# the classifier's inputs that come from the payload (FlowEvidence fields of the same names)
_EVIDENCE_FIELDS = ("wa_prologue", "stun", "stun_whatsapp", "sni", "quic_sni", "http_host", "dns_queries",
                    "client_cert")
CALL_WINDOW_NS = 60 * 1_000_000_000


def _call_legs(cols, starts, ends, labels) -> tuple[list, set]:
    """UDP flows sharing a local socket with a WhatsApp STUN flow are legs of that call.

    WhatsApp sends STUN to its relays and media to the peer from one UDP socket, so a flow
    on the same ip:port (either direction, during the call +-60 s) is a peer-to-peer leg.
    """
    sockets: dict[tuple[str, int], list] = {}
    for i, lb in enumerate(labels):
        if lb.service == "whatsapp.call" and lb.evidence == "stun" and cols["l4"][i] == "udp":
            span = sockets.setdefault((cols["orig_ip"][i], cols["orig_port"][i]), [starts[i], ends[i], i])
            span[0], span[1] = min(span[0], starts[i]), max(span[1], ends[i])
    if not sockets:
        return labels, set()
    out, legs = list(labels), set()
    for i, lb in enumerate(labels):
        if cols["l4"][i] != "udp" or lb.service.startswith("whatsapp."):
            continue
        for end in ((cols["orig_ip"][i], cols["orig_port"][i]), (cols["resp_ip"][i], cols["resp_port"][i])):
            span = sockets.get(end)
            if span and span[0] - CALL_WINDOW_NS <= starts[i] <= span[1] + CALL_WINDOW_NS:
                out[i] = Label("whatsapp.call", True, lb.hostname, "stun", "medium",
                               f"same UDP socket {end[0]}:{end[1]} as the WhatsApp STUN flow {span[2]} "
                               "(peer-to-peer call leg)")
                legs.add(i)
                break
    return out, legs


RELAY_PORT = 3478  # WhatsApp's relays answer STUN/TURN on 3478; a peer's port is ephemeral


def _remote_roles(cols, labels, evidences, legs: set, catalog, platform=None) -> list[str]:
    """What the remote end is (sides.ROLES), decided once for every later stage:
    - peer: the other party of a direct call. A UDP flow on the socket of a WhatsApp STUN
      flow (legs); one whose remote end the device itself reported back in STUN (a device
      answers the connectivity checks of peers; relays tell the device its address, never
      the reverse); or a WhatsApp call flow without a relay's signs;
    - relay: a WhatsApp call flow to port 3478, with WhatsApp's STUN message types, or to a
      Meta address;
    - server: everything else."""
    roles = ["server"] * len(labels)
    # only these can be anything but a server: a call leg, a flow with STUN's mapped
    # addresses (an echo), a WhatsApp call over UDP
    l4 = cols["l4"]
    rows = sorted(legs.union((i for i, ev in enumerate(evidences) if ev.stun_mapped),
                             (i for i, lb in enumerate(labels) if lb.service == "whatsapp.call" and l4[i] == "udp")))
    if not rows:
        return roles
    orig_ip, resp_ip = [cols["orig_ip"][i] for i in rows], [cols["resp_ip"][i] for i in rows]
    inbound = remote_is_orig(orig_ip, resp_ip, platform)
    remote = [o if b else r for o, r, b in zip(orig_ip, resp_ip, inbound)]
    port = [cols["orig_port"][i] if b else cols["resp_port"][i] for i, b in zip(rows, inbound)]
    asns = catalog.asn_of(remote)
    for k, i in enumerate(rows):
        lb, ev = labels[i], evidences[i]
        echo = bool(ev.stun_mapped) and f"{remote[k]}:{port[k]}" in ev.stun_mapped
        if i in legs or echo:
            roles[i] = "peer"
        elif lb.service != "whatsapp.call" or l4[i] != "udp":
            roles[i] = "server"
        elif port[k] == RELAY_PORT or ev.stun_whatsapp or catalog.is_meta_asn(asns[k]):
            roles[i] = "relay"
        else:
            roles[i] = "peer"
    return roles


def _string_lists(seqs: list) -> pa.Array:
    """A list<string> column from per-flow tuples, built from offsets (most are empty)."""
    offsets = np.zeros(len(seqs) + 1, dtype=np.int32)
    np.cumsum(np.fromiter(map(len, seqs), dtype=np.int32, count=len(seqs)), out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(list(chain.from_iterable(seqs)), pa.string()))


def _stun_rtt(table: pa.Table, evidences) -> pa.Table:
    """UDP flows have no handshake: a STUN request -> response pair gives their RTT."""
    rtt = table["rtt_ms"].to_pylist()
    source = pylist(table["rtt_source"])
    changed = False
    for i, e in enumerate(evidences):
        if e.stun_rtt_ms is not None and rtt[i] is None:
            rtt[i], source[i], changed = e.stun_rtt_ms, "stun", True
    if not changed:
        return table
    table = table.set_column(table.schema.get_field_index("rtt_ms"), "rtt_ms", pa.array(rtt, type=pa.float64()))
    return table.set_column(table.schema.get_field_index("rtt_source"), "rtt_source", pa.array(source, type=pa.string()))


# Protocol evidence a resynchronised frame walk does not override (it never meets them: a
# flow with a prologue or a ClientHello is walked from its start).
_STRONGER = ("wa-prologue", "sni", "quic-sni", "stun", "http-host")
_WA_ENDPOINT = ("whatsapp.chat", "whatsapp.web")


def _resync_label(lb: Label, walk) -> Label:
    """A connection already open, walked by resynchronising: WhatsApp frame headers that
    chain are the evidence of whatsapp.chat; TLS records chain in any TLS stream, so they
    make whatsapp.web only towards a server whose DNS name is a WhatsApp chat or Web
    endpoint (Meta's edges serve media and other HTTPS on the same addresses: an address
    alone does not tell WhatsApp Web from a media download)."""
    if walk is None or walk.sync != "resync" or lb.evidence in _STRONGER:
        return lb
    up, down = (len(f) for f in walk.frames)
    both = all(walk.locked)
    if walk.unit == "wa-frame":
        confidence = "high" if both and up + down >= 8 else "medium" if up + down >= 3 else "low"
        return Label("whatsapp.chat", True, lb.hostname, "wa-frames", confidence,
                     f"WhatsApp frame headers chained on a connection already open ({up} frames from the "
                     f"originator, {down} back; the prologue was not captured); before: {lb.rule}")
    if walk.unit == "tls-record" and lb.service in _WA_ENDPOINT and lb.evidence == "dns":
        return Label("whatsapp.web", True, lb.hostname, "tls-records", "medium" if both else "low",
                     f"TLS records on a connection already open to a WhatsApp chat endpoint (WhatsApp Web or "
                     f"Desktop; the ClientHello was not captured); endpoint: {lb.rule}")
    return lb


def _on_prem(lb: Label) -> Label:
    """A platform host holding a WhatsApp chat connection runs the legacy On-Premises API."""
    return replace(lb, rule=f"{lb.rule}; from a platform host: the {ON_PREM_MARK}, whose last client "
                   "expired on 2025-10-23 (whatsapp-business-and-frames.md §1.4 [17])")


def _evidence_columns(evidences: list, none) -> dict[str, list]:
    """The classifier's payload inputs as columns; flows without evidence (`none`, the
    default object: 54% of the benchmark's 100k flows) keep the defaults unvisited."""
    found = [(i, e) for i, e in enumerate(evidences) if e is not none]
    columns = {}
    for name in _EVIDENCE_FIELDS:
        column = [getattr(none, name)] * len(evidences)
        for i, e in found:
            column[i] = getattr(e, name)
        columns[name] = column
    return columns


_LABEL_COLUMNS = (("service", "service", pa.string()), ("is_meta", "is_meta", pa.bool_()),
                  ("hostname", "hostname", pa.string()), ("evidence", "evidence", pa.string()),
                  ("confidence", "confidence", pa.string()), ("catalog_rule", "rule", pa.string()))


def _label_columns(labels: list[Label]) -> dict[str, pa.Array]:
    """The Label fields as Arrow columns. classify_columns hands out one Label object per
    distinct decision, so each field is read from the distinct objects and taken by code."""
    code_of: dict[int, int] = {}
    distinct: list[Label] = []
    codes = np.empty(len(labels), dtype=np.int64)
    for i, lb in enumerate(labels):
        code = code_of.get(id(lb))
        if code is None:
            code = code_of[id(lb)] = len(distinct)
            distinct.append(lb)
        codes[i] = code
    take = pa.array(codes)
    return {column: pa.array([getattr(lb, field) for lb in distinct], type=kind).take(take)
            for column, field, kind in _LABEL_COLUMNS}


def label_flows(table: pa.Table, flows, collector, settings, walks=None):
    """Labels for the flow table; `flows` the merged records (flows/merge.MergedFlows),
    `walks` the stitched frame walks (metadata/walked.Walks)."""
    cols = pydict(table, ["l4", "orig_ip", "orig_port", "resp_ip", "resp_port", "app"])
    none = ev_mod.Evidence()
    evidences = [e or none for e in ev_mod.for_flows(flows, collector, table.num_rows)]
    counts = collector.counts
    dns_index = _dns_index(evidences)
    starts = table["ts_start"].cast(pa.int64()).to_pylist()
    catalog = load_catalog(settings.catalogs)
    given = PlatformHosts(settings.platform_hosts)
    local = {ip: given.is_local(ip) for ip in set(cols["resp_ip"])}
    columns = {name: cols[name] for name in ("l4", "orig_ip", "orig_port", "resp_ip", "resp_port", "app")}
    columns.update(_evidence_columns(evidences, none))
    columns["dns_name"] = [_dns_name(dns_index, ip, t) for ip, t in zip(cols["resp_ip"], starts)] if dns_index \
        else [None] * table.num_rows
    columns["resp_local"] = [local[ip] for ip in cols["resp_ip"]]
    hooks = webhook_source_ids(columns, catalog)
    # A platform host receives webhooks from Meta (seen anywhere in the capture) or was given
    platform = {ip for ip, hook in zip(cols["resp_ip"], hooks) if hook >= 0}
    hosts = {ip: ip in platform or given.contains(ip) for ip in set(cols["orig_ip"])}
    columns["platform_host"] = [hosts[ip] for ip in cols["orig_ip"]]
    labels = classify_columns(columns, catalog, hook_ids=hooks)
    labels = [_on_prem(lb) if host and lb.service == "whatsapp.chat" else lb
              for host, lb in zip(columns["platform_host"], labels)]
    labels, legs = _call_legs(cols, starts, table["ts_end"].cast(pa.int64()).to_pylist(), labels)
    if walks is not None and walks.flows:
        labels = [_resync_label(lb, walks.flows.get(i)) for i, lb in enumerate(labels)]
    new = {
        **_label_columns(labels),
        "sni": [e.sni or e.quic_sni for e in evidences],
        "dns_name": columns["dns_name"],
        "stun_mapped": _string_lists([e.stun_mapped for e in evidences]),
        "remote_role": _remote_roles(cols, labels, evidences, legs, catalog, given),
        "dns_queries": _string_lists(columns["dns_queries"]),
        "local_names": _string_lists([e.local_names for e in evidences]),
    }
    table = _stun_rtt(table, evidences)
    from flowscope import schema
    for c in schema.LABELS:
        values = new[c.name]
        table = table.append_column(pa.field(c.name, c.type), values.cast(c.type) if isinstance(values, pa.Array)
                                    else pa.array(values, type=c.type))
    notes = {"catalog": {"version": catalog.version, "sources": catalog.sources,
                         "webhook_sources_date": catalog.webhook_snapshot_date()},
             "dissectors": dict(sorted(counts.items()))}
    return table, notes
