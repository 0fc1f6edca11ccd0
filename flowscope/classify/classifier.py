"""The classifier: one pure function from a flow's evidence and the catalog to a label.

Precedence, strongest first; the first step that decides returns (``evidence`` names it):

1. Protocol evidence
   a. ``wa_prologue`` -> whatsapp.chat ("wa-prologue", high), whatever the address: the
      prologue is WhatsApp's own framing (this is how AWS Global Accelerator and SoftLayer
      endpoints are recognised).
   b. TCP to port 443 whose SNI matches a whatsapp.web host rule -> whatsapp.web ("sni", high).
   c. ``stun_whatsapp`` (WhatsApp STUN message types/attributes) -> whatsapp.call ("stun", high).
   d. Plain ``stun`` (no WhatsApp types):
      - from the WhatsApp app (PCAPdroid) -> whatsapp.call ("app-uid", medium);
      - from another Meta app -> not decided here (names, then the app, decide below);
      - to an address on a WhatsApp list -> whatsapp.call ("stun", medium);
      - to another Meta address -> meta.other ("stun", medium). Deliberately not whatsapp.call:
        Messenger/Facebook calls use plain STUN to the same Meta relays (nDPI's stun.pcap has
        one, labelled FacebookVoip), and an audit must not count them as WhatsApp calls;
      - anywhere else -> not decided here.
2. DNS flows (``dns_queries`` non-empty, or either port 53): the query itself leaks the intent.
   If any query name matches a WhatsApp host rule -> whatsapp.other, else if any matches
   another Meta rule -> meta.other ("dns", medium). A query matching nothing falls through.
3. Names, in this order, the first that matches a host rule decides: ``sni`` ("sni", high),
   ``quic_sni`` ("quic-sni", high), ``http_host`` ("http-host", medium), ``dns_name``
   ("dns", medium). The rule's service is taken as is (a user rule may say "other").
4. The PCAPdroid app ("app-uid", medium): the WhatsApp app -> whatsapp.call for UDP with STUN
   (already step 1d) and whatsapp.other for everything else; Facebook/Messenger/Instagram/
   Threads apps -> their service.
5. Address lists, which go stale (low): the longest matching prefix gives its service
   ("ip-prefix"); a prefix whose own service is "other" but whose ASN is a Meta ASN gives
   meta.other ("asn"). A port hint only refines a current whatsapp.other/meta.other prefix
   (e.g. tcp/5222 on a Meta address -> whatsapp.chat, "port"); historic prefixes are not refined.
   Business Platform (issue 13), decided among the names and before the addresses:
   - An inbound TCP connection to a local address (or a platform host) from a network of
     the webhook-source snapshot (AS32934) -> whatsapp.webhook ("tls-client-cert", high, when
     Meta's mTLS client certificate was seen in clear; else "ip-prefix", low: Meta's
     crawlers and other products' webhooks come from the same networks).
   - A whatsapp.business_api host (graph.facebook.com, lookaside.fbsbx.com) names the Cloud
     API only from a platform host; elsewhere its fallback service, with evidence saying the
     name is shared by all Graph API products.
   - A whatsapp.bsp host names a solution provider: not Meta (is_meta false); confidence low
     where the host is shared with SMS and other channels.
6. Nothing Meta's: "other". If a port hint exists it is reported as not applied ("port", low:
   XMPP servers on 5222 and every STUN/TURN service on 3478 stay "other"); otherwise nothing
   in the catalog matched and ``evidence`` is empty ("", low, rule "no catalog match"), as
   schema.py documents for the evidence column.

``rule`` names the deciding catalog entry and cites its source and date, e.g.
``host mmg*.whatsapp.net [source: nDPI ...; date: 2026-11-28]``.

``is_meta`` is true when the service is not "other" or when the address is Meta's (a prefix
with ``meta`` set, or on a Meta ASN). ``hostname`` is the SNI, else the QUIC SNI, else the HTTP
Host, else the DNS name; for a DNS flow without any of them, the query name that matched (or
the first query). Names are only compared, never evaluated; they are returned as given.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Iterable, Mapping, Sequence

from flowscope.classify.catalog import BSP, CLOUD_API, WEBHOOK, Catalog, HostRule, PrefixRule, WebhookSourceRule

EVIDENCE_KINDS = ("app-uid", "wa-prologue", "wa-frames", "tls-records", "stun", "tls-client-cert", "sni", "quic-sni", "dns",
                  "http-host", "ip-prefix", "asn", "port")
WEBHOOK_CLIENT_CERT = "client.webhooks.fbclientcerts.com"
ON_PREM_MARK = "legacy On-Premises API"  # in catalog_rule of a platform host's chat flow (report/findings.py)
SHARED_GRAPH = "shared by all Graph API products"
NO_EVIDENCE = ""  # the evidence value when nothing in the catalog matched
DNS_PORT = 53
_UNSET = object()


@dataclass(frozen=True)
class FlowEvidence:
    """What the earlier stages learned about one flow (all optional except the transport)."""
    l4: str = "tcp"  # "tcp", "udp", ...
    resp_ip: str = ""  # responder (server) address
    resp_port: int = 0
    orig_port: int = 0
    app: str | None = None  # PCAPdroid app name or package
    wa_prologue: bool = False  # client stream began with "ED\0\1"... or "WA"+2 bytes
    stun: bool = False  # STUN-framed datagrams seen
    stun_whatsapp: bool = False  # WhatsApp STUN message types/attributes seen
    sni: str | None = None  # TLS ClientHello server name
    quic_sni: str | None = None  # QUIC Initial ClientHello server name
    http_host: str | None = None  # HTTP Host header
    dns_name: str | None = None  # the name a DNS answer before the flow resolved resp_ip to
    dns_queries: tuple[str, ...] = ()  # names this flow asked for, if it is a DNS flow
    orig_ip: str = ""  # originator (client) address
    resp_local: bool = False  # the responder is a local address or a platform host (an inbound flow)
    platform_host: bool = False  # the flow's local end is a Business Platform host (classify/stage.py)
    client_cert: str | None = None  # a client certificate name seen in clear (Meta's webhook mTLS)


@dataclass(frozen=True)
class Label:
    """The verdict for one flow, with the rule that decided it (the audit trail)."""
    service: str  # one of catalog.SERVICES
    is_meta: bool
    hostname: str
    evidence: str  # one of EVIDENCE_KINDS, or "" when nothing in the catalog matched
    confidence: str  # "high" | "medium" | "low"
    rule: str  # the catalog entry that decided, with its source and date (the audit trail)


def classify(ev: FlowEvidence, catalog: Catalog, *, include_historic: bool = True) -> Label:
    """Classify one flow. Pure: the same evidence and catalog always give the same label."""
    addr = catalog.match_addresses([ev.resp_ip], include_historic)[0]
    return _decide(ev, catalog, addr, _hooks([ev], catalog)[0])


def classify_many(evidences: Iterable[FlowEvidence], catalog: Catalog, *,
                  include_historic: bool = True) -> list[Label]:
    """Classify many flows; the address matches for all of them are computed in one vectorised call."""
    evidences = list(evidences)
    return classify_columns({f: [getattr(ev, f) for ev in evidences] for f in _FIELDS}, catalog,
                            include_historic=include_historic)


_FIELDS = tuple(f.name for f in fields(FlowEvidence))
# What _decide reads of a flow besides its prefix and webhook-source matches (passed beside
# it) and whether the originator's port is DNS's: flows alike in these get the same label.
# The addresses and the originator's port themselves are not among them.
_DECISION_FIELDS = ("l4", "resp_port", "app", "wa_prologue", "stun", "stun_whatsapp", "sni", "quic_sni", "http_host",
                    "dns_name", "dns_queries", "platform_host", "client_cert")
_DEFAULT = FlowEvidence()


def classify_columns(columns: Mapping[str, Sequence], catalog: Catalog, *, include_historic: bool = True,
                     hook_ids: Sequence[int] | None = None) -> list[Label]:
    """classify_many over columns: one sequence per FlowEvidence field (all of the same
    length; missing fields take their defaults). _decide runs once per distinct decision
    (_DECISION_FIELDS, the prefix, the webhook source), not once per flow: the 100k flows
    of the benchmark share about 5k. `hook_ids` (webhook_source_ids) if already known."""
    n = len(columns["resp_ip"])
    cols = {f: columns[f] if f in columns else [getattr(_DEFAULT, f)] * n for f in _FIELDS}
    ids = catalog.match_address_ids(cols["resp_ip"], include_historic).tolist()
    hooks = hook_ids if hook_ids is not None else webhook_source_ids(cols, catalog)
    dns_port = [p == DNS_PORT for p in cols["orig_port"]]
    rules, sources = catalog.prefixes, catalog.webhook_sources
    memo: dict[tuple, Label] = {}
    out = []
    for i, key in enumerate(zip(ids, hooks, dns_port, *(cols[f] for f in _DECISION_FIELDS))):
        label = memo.get(key)
        if label is None:
            ev = FlowEvidence(**{f: cols[f][i] for f in _FIELDS})
            label = memo[key] = _decide(ev, catalog, rules[key[0]] if key[0] >= 0 else None,
                                        sources[key[1]] if key[1] >= 0 else None)
        out.append(label)
    return out


def webhook_source_ids(columns: Mapping[str, Sequence], catalog: Catalog) -> list[int]:
    """Index into catalog.webhook_sources of each inbound TCP flow's originator (-1 elsewhere)."""
    out = [-1] * len(columns["orig_ip"])
    inbound = [k for k, (local, l4, ip) in enumerate(zip(columns["resp_local"], columns["l4"], columns["orig_ip"]))
               if local and (l4 or "").lower() == "tcp" and ip]
    if inbound and catalog.webhook_sources:
        ids = catalog.webhook_source_ids([columns["orig_ip"][k] for k in inbound]).tolist()
        for k, i in zip(inbound, ids):
            out[k] = i
    return out


def _hooks(evidences: list[FlowEvidence], catalog: Catalog) -> list[WebhookSourceRule | None]:
    """The webhook-source prefix of each inbound TCP flow's originator (None elsewhere)."""
    cols = {f: [getattr(ev, f) for ev in evidences] for f in ("resp_local", "l4", "orig_ip")}
    return [catalog.webhook_sources[i] if i >= 0 else None for i in webhook_source_ids(cols, catalog)]


def webhook_receivers(evidences: Sequence[FlowEvidence], catalog: Catalog) -> set[str]:
    """Local addresses that receive webhooks from Meta: the platform hosts the capture shows."""
    return {ev.resp_ip for ev, hook in zip(evidences, _hooks(list(evidences), catalog)) if hook is not None}


def labels_to_columns(labels: Sequence[Label]) -> dict[str, list]:
    """Column lists (service, is_meta, hostname, evidence, confidence, rule) for a flow table."""
    names = [f.name for f in fields(Label)]
    return {name: [getattr(label, name) for label in labels] for name in names}


# ----------------------------------------------------------------------------- the decision

def _http_host(value: str | None) -> str | None:
    """The host part of an HTTP Host header ("example.com:8080", "[2001:db8::1]:80")."""
    if not value:
        return value
    value = value.strip()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value


def _family(service: str) -> str | None:
    if service.startswith("whatsapp."):
        return "whatsapp"
    if service.startswith("meta."):
        return "meta"
    return None


def _effective(rule: HostRule, ev: FlowEvidence) -> str:
    """The service a host rule gives this flow: a Cloud API host only from a platform host."""
    return rule.fallback if rule.service == CLOUD_API and not ev.platform_host else rule.service


def _name_label(rule: HostRule, ev: FlowEvidence, evidence: str, confidence: str, label) -> Label:
    if rule.service == CLOUD_API:
        if ev.platform_host:
            return label(CLOUD_API, evidence, confidence, f"{rule.cite()} from a platform host (it receives "
                         "webhooks from Meta, or was given with --platform-host)")
        return label(rule.fallback, evidence, confidence, f"{rule.cite()}; the name is {SHARED_GRAPH} (Login, "
                     "Marketing, Instagram): not counted as the WhatsApp Cloud API, this host is not a platform host")
    if rule.service == BSP:
        shared = rule.channel == "shared"
        text = (f"{rule.cite()}; solution provider {rule.operator} ({rule.country}); the provider's onward leg to "
                "Meta is not visible here")
        if shared:
            text += "; the host is shared with SMS and other channels, so WhatsApp is not proven"
        return label(BSP, evidence, "low" if shared else confidence, text)
    return label(rule.service, evidence, confidence, rule.cite())


def _decide(ev: FlowEvidence, catalog: Catalog, addr: PrefixRule | None,
            hook: WebhookSourceRule | None = None) -> Label:
    hostname = ev.sni or ev.quic_sni or ev.http_host or ev.dns_name or ""
    meta_addr = addr is not None and (addr.meta or catalog.is_meta_asn(addr.asn))
    app = catalog.match_app(ev.app)
    app_family = _family(app.service) if app else None
    l4 = (ev.l4 or "").lower()

    def label(service: str, evidence: str, confidence: str, rule: str, host: str | None = None) -> Label:
        return Label(service, service not in ("other", BSP) or meta_addr, hostname if host is None else host,
                     evidence, confidence, rule)

    # 1. protocol evidence
    if ev.wa_prologue:
        return label("whatsapp.chat", "wa-prologue", "high", "WhatsApp prologue at the start of the client stream")
    if l4 == "tcp" and ev.resp_port == 443 and ev.sni:
        rule = catalog.match_host(ev.sni)
        if rule is not None and rule.service == "whatsapp.web":
            return label("whatsapp.web", "sni", "high", rule.cite())
    if ev.stun_whatsapp:
        return label("whatsapp.call", "stun", "high", "STUN with WhatsApp message types/attributes")
    if ev.stun:
        if app_family == "whatsapp":
            return label("whatsapp.call", "app-uid", "medium", f"plain STUN from {app.cite()}")
        if app_family is None and addr is not None:
            if _family(addr.service) == "whatsapp":
                return label("whatsapp.call", "stun", "medium", f"plain STUN to {addr.cite()}")
            if meta_addr:
                return label("meta.other", "stun", "medium", f"plain STUN to {addr.cite()} "
                             "(not on a WhatsApp list; Messenger/Facebook calls use Meta relays too)")

    # 2. DNS flows: the query names
    if ev.dns_queries or ev.resp_port == DNS_PORT or ev.orig_port == DNS_PORT:
        hits = []
        for query in ev.dns_queries:
            rule = catalog.match_host(query) if isinstance(query, str) else None
            service = _effective(rule, ev) if rule is not None and rule.service != BSP else ""
            if _family(service):
                hits.append((_family(service) != "whatsapp", query, rule, service))
        if hits:
            _, query, rule, service = min(hits, key=lambda h: h[0])  # a WhatsApp name first, else the first Meta one
            family = _family(service)
            return label(f"{family}.other", "dns", "medium", f"DNS query for a {family} name ({rule.cite()})")
        # hostname stays the server's (none for a resolver): the names asked are in dns_queries

    # 3. names (a webhook's SNI is the company's own name: the source network decides first)
    if hook is not None:
        if ev.client_cert == WEBHOOK_CLIENT_CERT:
            return label(WEBHOOK, "tls-client-cert", "high", f"Meta's webhook mTLS client certificate "
                         f"{WEBHOOK_CLIENT_CERT} seen in clear (TLS 1.2), from {hook.cite()}")
        return label(WEBHOOK, "ip-prefix", "low", f"inbound connection to a local server from {hook.cite()}; "
                     "Meta's crawlers and other Graph API products' webhooks use the same networks")
    for evidence, value, confidence in (("sni", ev.sni, "high"), ("quic-sni", ev.quic_sni, "high"),
                                        ("http-host", _http_host(ev.http_host), "medium"),
                                        ("dns", ev.dns_name, "medium")):
        if value:
            rule = catalog.match_host(value)
            if rule is not None:
                return _name_label(rule, ev, evidence, confidence, label)

    # 4. the app that made the flow (PCAPdroid)
    if app is not None:
        if app_family == "whatsapp":
            service = "whatsapp.call" if l4 == "udp" and ev.stun else "whatsapp.other"
        else:
            service = app.service
        return label(service, "app-uid", "medium", app.cite())

    # 5. address lists (stale-prone) and port refinement
    port = catalog.port_rule(l4, ev.resp_port) if ev.resp_port else None
    if addr is not None:
        if addr.service != "other":
            if (port is not None and addr.status == "current" and addr.service in ("whatsapp.other", "meta.other")
                    and port.service != "other"):
                return label(port.service, "port", port.confidence, f"{port.cite()} on {addr.cite()}")
            return label(addr.service, "ip-prefix", "low", addr.cite())
        if catalog.is_meta_asn(addr.asn):
            info = catalog.asn_info(addr.asn)
            if port is not None and addr.status == "current" and port.service != "other":
                return label(port.service, "port", port.confidence,
                             f"{port.cite()} on {info.cite()} via {addr.prefix}")
            return label("meta.other", "asn", "low", f"{info.cite()} via {addr.cite()}")
        if port is None:
            return label("other", "ip-prefix", "low", addr.cite())

    # 6. nothing Meta's
    if port is not None:
        return label("other", "port", "low", f"{port.cite()} hint ({port.service}) not applied: "
                     "the address is not Meta's")
    return label("other", NO_EVIDENCE, "low", "no catalog match")


def label_dict(label: Label) -> dict:
    """The label as a plain dict (for JSON)."""
    return asdict(label)
