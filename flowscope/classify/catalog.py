"""The service catalog: dated, sourced rules that tie names, addresses, ports and apps to services.

The catalog is data, not code: TOML files in ``flowscope/classify/data/`` (listed, in load order,
by ``data/manifest.toml``) plus any user files given to :func:`load_catalog`. Every entry carries
``source`` (a URL or a precise reference such as a repository path at a commit) and ``date``
(YYYY-MM-DD, when the data was taken), so each classification can be traced to its evidence.

File format (the same for built-in and user files)::

    [[host]]            pattern, service, source, date[, note, fallback, operator, country, channel]
    [[host_group]]      patterns = [...], service, source, date[, note, ...]
    [[prefix]]          prefix, service, owner, source, date[, asn, status, meta, note]
    [[prefix_group]]    prefixes = [...], and the same fields as [[prefix]]
    [[asn]]             asn, name, owner, country, meta, source, date[, note]
    [[port]]            l4, port, service, confidence, source, date[, note]
    [[app]]             name, service, source, date[, note]
    [[app_group]]       patterns = [...], service, source, date[, note]
    [[webhook_source]]  prefix, owner, source, date[, asn, note]
    [[webhook_source_group]] prefixes = [...], and the same fields

Business Platform hosts (issue 13): a ``whatsapp.business_api`` host (the Cloud API) names
the service only when the flow comes from a platform host; elsewhere its ``fallback``
service applies (graph.facebook.com is shared by every Graph API product). A
``whatsapp.bsp`` host names a solution provider: ``operator`` and ``country`` (its company
and jurisdiction) and ``channel`` ("whatsapp": a WhatsApp-specific API host; "shared": the
same host carries SMS and other channels) are required. ``webhook_source`` prefixes are the
dated snapshot of the networks Meta's webhooks come from (AS32934); unlike other keys, a user
file with any ``webhook_source`` entry replaces the whole built-in snapshot (a newer snapshot
drops the prefixes Meta withdrew), recorded in ``Catalog.overridden``.

``service`` is one of :data:`SERVICES`; a prefix ``status`` is "current" (default) or "historic";
a prefix is Meta's address (``meta``) when the entry says so, else when its ASN is listed with
``meta = true``, else when its owner starts with "Meta Platforms" or "Facebook".

Precedence: built-in files first, then user files in the order given. A user entry with the same
key as an earlier one (the same host pattern, the same prefix, ASN, l4/port pair or app name)
replaces it; new keys add. A key may appear only once within one file, and only once across the
built-in files. Anything malformed in a file raises :class:`flowscope.errors.UsageError` with a
one-line message naming the file.

Host patterns: ``g.whatsapp.net`` (exact), ``*.whatsapp.net`` (any name strictly below
whatsapp.net), ``mmg*.whatsapp.net`` (``*`` inside a label matches within that one label; a label
that is only ``*`` past the first matches exactly one label). Most specific wins: an exact name
beats every pattern; between patterns the one that pins more labels of the name wins (a ``*``
inside a label still pins that label, a leading ``*.`` pins none), then the one with more literal
characters, then the alphabetically first pattern.

Addresses: :meth:`Catalog.match_addresses` does longest-prefix match for many addresses at once.
The prefixes are flattened once into sorted, disjoint segments (uint32 starts for IPv4,
(hi, lo) uint64 starts for IPv6), each owned by its most specific prefix; a lookup is then a
``numpy.searchsorted`` per address family, O(log n) per address.
"""
from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Sequence, TypedDict

import numpy as np

from flowscope.classify.index import _HostIndex, _parse_addresses, _PrefixIndex, normalize_name
from flowscope.errors import UsageError
from flowscope.schema import CONFIDENCES, SERVICES

STATUSES = ("current", "historic")
L4_PROTOCOLS = ("tcp", "udp")
CHANNELS = ("whatsapp", "shared")  # a solution provider's API host: WhatsApp-specific or shared
CLOUD_API, BSP, WEBHOOK = "whatsapp.business_api", "whatsapp.bsp", "whatsapp.webhook"
META_OWNER_PREFIXES = ("meta platforms", "facebook")

_DATA = "data"
_MANIFEST = "manifest.toml"
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_LABEL_RE = re.compile(r"^[a-z0-9_*-]+$")


# ----------------------------------------------------------------------------- rule types

class _Cited:
    """Rules name themselves (`describe`) and cite where their data came from (`cite`)."""

    def cite(self) -> str:
        return f"{self.describe()} [source: {self.source}; date: {self.date}]"

@dataclass(frozen=True)
class HostRule(_Cited):
    """A host-name pattern and the service it names."""
    pattern: str
    service: str
    source: str
    date: str
    note: str = ""
    origin: str = ""  # the file it came from ("builtin:hosts.toml" or a user path)
    fallback: str = ""  # whatsapp.business_api hosts: the service from a host that is not a platform host
    operator: str = ""  # whatsapp.bsp hosts: the provider's company ...
    country: str = ""   # ... and its country (ISO alpha-2)
    channel: str = ""   # whatsapp.bsp hosts: "whatsapp" (specific) or "shared" (SMS and other channels too)

    def describe(self) -> str:
        return f"host {self.pattern}"


@dataclass(frozen=True)
class WebhookSourceRule(_Cited):
    """A prefix of the networks Meta's webhooks come from (a dated AS32934 snapshot)."""
    prefix: str
    owner: str
    asn: int | None
    source: str
    date: str
    note: str = ""
    origin: str = ""

    def describe(self) -> str:
        asn = f" AS{self.asn}" if self.asn is not None else ""
        return f"webhook source {self.prefix} ({self.owner}{asn})"


@dataclass(frozen=True)
class PrefixRule(_Cited):
    """An IPv4/IPv6 prefix, its owner and the service it hints at."""
    prefix: str  # canonical form, e.g. "57.144.0.0/14"
    service: str
    owner: str
    asn: int | None
    status: str
    meta: bool  # the address belongs to Meta's own network
    source: str
    date: str
    note: str = ""
    origin: str = ""

    @property
    def version(self) -> int:
        return 6 if ":" in self.prefix else 4

    def describe(self) -> str:
        asn = f" AS{self.asn}" if self.asn is not None else ""
        return f"prefix {self.prefix} ({self.service}; {self.owner}{asn}; {self.status})"


@dataclass(frozen=True)
class AsnRule(_Cited):
    """An autonomous system: who runs it and whether it is Meta's."""
    asn: int
    name: str
    owner: str
    country: str
    meta: bool
    source: str
    date: str
    note: str = ""
    origin: str = ""

    def describe(self) -> str:
        return f"AS{self.asn} {self.name} ({self.owner}, {self.country})"


@dataclass(frozen=True)
class PortRule(_Cited):
    """A weak hint: a transport port that a service uses by default."""
    l4: str
    port: int
    service: str
    confidence: str
    source: str
    date: str
    note: str = ""
    origin: str = ""

    def describe(self) -> str:
        return f"port {self.l4}/{self.port}"


@dataclass(frozen=True)
class AppRule(_Cited):
    """A PCAPdroid app name (label or package, lower case) and its service family."""
    name: str
    service: str
    source: str
    date: str
    note: str = ""
    origin: str = ""

    def describe(self) -> str:
        return f"app {self.name}"


class CatalogSource(TypedDict):
    """One loaded catalog file (a plain dict, so it goes into summary.json as is)."""
    path: str  # "builtin:<name>" for built-in files, else the path as given
    sha256: str  # of the file's bytes
    builtin: bool
    entries: int  # entries the file defines (group members counted one by one)


# ----------------------------------------------------------------------------- parsing

_KINDS = {  # table name -> (kind, list field or None)
    "host": ("host", None), "host_group": ("host", "patterns"),
    "prefix": ("prefix", None), "prefix_group": ("prefix", "prefixes"),
    "asn": ("asn", None),
    "port": ("port", None),
    "app": ("app", None), "app_group": ("app", "patterns"),
    "webhook_source": ("webhook_source", None), "webhook_source_group": ("webhook_source", "prefixes"),
}
_FIELDS = {  # kind -> (required fields, optional fields); source/date/note are common
    "host": (("pattern", "service"), ("fallback", "operator", "country", "channel")),
    "prefix": (("prefix", "owner"), ("service", "asn", "status", "meta")),
    "asn": (("asn", "name", "owner", "country", "meta"), ()),
    "port": (("l4", "port", "service", "confidence"), ()),
    "app": (("name", "service"), ()),
    "webhook_source": (("prefix", "owner"), ("asn",)),
}
_ITEM_FIELD = {"host": "pattern", "prefix": "prefix", "app": "name", "webhook_source": "prefix"}


class _FileError(Exception):
    """A problem in one entry; turned into a UsageError naming the file."""


def _text(entry: dict, key: str, *, required: bool = True) -> str:
    value = entry.get(key)
    if value is None:
        if required:
            raise _FileError(f"missing {key}")
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise _FileError(f"{key} must be a non-empty string")
    return value.strip()


def _date(entry: dict) -> str:
    value = _text(entry, "date") if not isinstance(entry.get("date"), datetime.date) else entry["date"].isoformat()
    if not _DATE_RE.match(value):
        raise _FileError(f"date {value!r} is not YYYY-MM-DD")
    try:
        datetime.date.fromisoformat(value)
    except ValueError:
        raise _FileError(f"date {value!r} is not a calendar date") from None
    return value


def _service(entry: dict, default: str | None = None) -> str:
    if default is not None and entry.get("service") is None:
        return default
    value = _text(entry, "service")
    if value not in SERVICES:
        raise _FileError(f"unknown service {value!r} (one of: {', '.join(SERVICES)})")
    return value


def _int(entry: dict, key: str, lo: int, hi: int, *, required: bool = True) -> int | None:
    value = entry.get(key)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise _FileError(f"{key} must be an integer in {lo}..{hi}")
    return value


def _bool(entry: dict, key: str, *, required: bool = True) -> bool | None:
    value = entry.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, bool):
        raise _FileError(f"{key} must be true or false")
    return value


def _pattern(value: str) -> str:
    pattern = normalize_name(value)
    labels = pattern.split(".")
    if not pattern or any(not label for label in labels):
        raise _FileError(f"bad host pattern {value!r}: empty label")
    for label in labels:
        if not _LABEL_RE.match(label):
            raise _FileError(f"bad host pattern {value!r}: label {label!r} has characters outside a-z 0-9 - _ *")
    if not pattern.replace("*", "").replace(".", ""):
        raise _FileError(f"bad host pattern {value!r}: no literal characters")
    return pattern


def _prefix(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value.strip(), strict=True))
    except ValueError as e:
        raise _FileError(f"bad prefix {value!r}: {e}") from None


@dataclass
class _Raw:
    """One parsed entry before the catalog is assembled (prefix meta-ness is resolved later)."""
    kind: str
    key: object
    fields: dict


def _parse_entry(kind: str, entry: dict, item: str | None) -> _Raw:
    required, optional = _FIELDS[kind]
    allowed = set(required) | set(optional) | {"source", "date", "note"}
    if item is not None:
        entry = {**entry, _ITEM_FIELD[kind]: item}
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise _FileError(f"unknown field {unknown[0]!r}")
    common = {"source": _text(entry, "source"), "date": _date(entry), "note": _text(entry, "note", required=False)}
    if kind == "host":
        pattern = _pattern(_text(entry, "pattern"))
        return _Raw(kind, pattern, {"pattern": pattern, "service": _service(entry), **_business(entry), **common})
    if kind == "webhook_source":
        prefix = _prefix(_text(entry, "prefix"))
        return _Raw(kind, prefix, {"prefix": prefix, "owner": _text(entry, "owner"),
                                   "asn": _int(entry, "asn", 0, 2**32 - 1, required=False), **common})
    if kind == "prefix":
        prefix = _prefix(_text(entry, "prefix"))
        status = entry.get("status", "current")
        if status not in STATUSES:
            raise _FileError(f"status must be one of {', '.join(STATUSES)}")
        return _Raw(kind, prefix, {"prefix": prefix, "service": _service(entry, default="other"),
                                   "owner": _text(entry, "owner"), "asn": _int(entry, "asn", 0, 2**32 - 1, required=False),
                                   "status": status, "meta": _bool(entry, "meta", required=False), **common})
    if kind == "asn":
        asn = _int(entry, "asn", 0, 2**32 - 1)
        return _Raw(kind, asn, {"asn": asn, "name": _text(entry, "name"), "owner": _text(entry, "owner"),
                                "country": _text(entry, "country"), "meta": _bool(entry, "meta"), **common})
    if kind == "port":
        l4 = _text(entry, "l4").lower()
        if l4 not in L4_PROTOCOLS:
            raise _FileError(f"l4 must be one of {', '.join(L4_PROTOCOLS)}")
        port = _int(entry, "port", 0, 65535)
        confidence = _text(entry, "confidence")
        if confidence not in CONFIDENCES:
            raise _FileError(f"confidence must be one of {', '.join(CONFIDENCES)}")
        return _Raw(kind, (l4, port), {"l4": l4, "port": port, "service": _service(entry),
                                       "confidence": confidence, **common})
    name = normalize_name(_text(entry, "name"))
    return _Raw(kind, name, {"name": name, "service": _service(entry), **common})


def _business(entry: dict) -> dict:
    """The Business Platform fields of a host entry, checked against its service."""
    service = entry.get("service")
    out = {k: _text(entry, k, required=False) for k in ("operator", "country", "channel")}
    out["fallback"] = _service({"service": entry["fallback"]}) if entry.get("fallback") is not None else ""
    if service == CLOUD_API and not out["fallback"]:
        raise _FileError(f"a {CLOUD_API} host needs fallback (the service from hosts that are not platform hosts)")
    if service == BSP:
        for key in ("operator", "country", "channel"):
            if not out[key]:
                raise _FileError(f"a {BSP} host needs {key}")
        if out["channel"] not in CHANNELS:
            raise _FileError(f"channel must be one of {', '.join(CHANNELS)}")
        if len(out["country"]) != 2 or not out["country"].isalpha():
            raise _FileError(f"country {out['country']!r} is not an ISO 3166 alpha-2 code")
        out["country"] = out["country"].upper()
    elif any(out[k] for k in ("operator", "country", "channel")):
        raise _FileError(f"operator, country and channel are for {BSP} hosts only")
    if out["fallback"] and service != CLOUD_API:
        raise _FileError(f"fallback is for {CLOUD_API} hosts only")
    return out


def _parse_file(label: str, data: bytes) -> list[_Raw]:
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise UsageError(f"{label}: catalog file is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{label}: not valid TOML: {e}") from None
    out: list[_Raw] = []
    seen: dict[tuple, str] = {}
    for table, entries in doc.items():
        if table not in _KINDS:
            raise UsageError(f"{label}: unknown table {table!r} (expected one of: {', '.join(_KINDS)})")
        kind, list_field = _KINDS[table]
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise UsageError(f"{label}: {table} must be written as [[{table}]] tables")
        for i, entry in enumerate(entries, 1):
            try:
                if list_field is None:
                    raws = [_parse_entry(kind, entry, None)]
                else:
                    items = entry.get(list_field)
                    if not isinstance(items, list) or not items or not all(isinstance(x, str) for x in items):
                        raise _FileError(f"{list_field} must be a non-empty list of strings")
                    rest = {k: v for k, v in entry.items() if k != list_field}
                    raws = [_parse_entry(kind, rest, item) for item in items]
            except _FileError as e:
                raise UsageError(f"{label}: [[{table}]] #{i}: {e}") from None
            for raw in raws:
                if (kind, raw.key) in seen:
                    raise UsageError(f"{label}: [[{table}]] #{i}: duplicate {kind} {_key_text(raw.key)} "
                                     f"(already in {seen[(kind, raw.key)]})")
                seen[(kind, raw.key)] = f"[[{table}]] #{i}"
                out.append(raw)
    return out


def _key_text(key) -> str:
    return f"{key[0]}/{key[1]}" if isinstance(key, tuple) else str(key)


# ----------------------------------------------------------------------------- host matching

class Catalog:
    """The loaded rules and their fast lookups. Build it with :func:`load_catalog`."""

    def __init__(self, hosts: Sequence[HostRule], prefixes: Sequence[PrefixRule], asns: Sequence[AsnRule],
                 ports: Sequence[PortRule], apps: Sequence[AppRule], sources: Sequence[CatalogSource],
                 version: str, overridden: Sequence[str] = (), webhook_sources: Sequence[WebhookSourceRule] = ()):
        self.hosts = tuple(hosts)
        self.webhook_sources = tuple(webhook_sources)
        self._webhook_index: _PrefixIndex | None = None
        self.prefixes = tuple(prefixes)
        self.asns = {a.asn: a for a in asns}
        self.ports = {(p.l4, p.port): p for p in ports}
        self.apps = {a.name: a for a in apps}
        self.sources = tuple(sources)
        self.version = version
        self.overridden = tuple(overridden)  # "kind key: builtin:file -> user file" for replaced entries
        self._hosts = _HostIndex(self.hosts)
        self._index: dict[bool, _PrefixIndex] = {}

    # -- names and apps

    def match_host(self, name: str) -> HostRule | None:
        """The most specific host rule for `name` (case-insensitive, trailing dot ignored), or None."""
        return self._hosts.match(name)

    def match_app(self, app: str | None) -> AppRule | None:
        """The app rule for a PCAPdroid app name; a 20-character name may be a truncated one."""
        if not app or not isinstance(app, str):
            return None
        name = normalize_name(app)
        rule = self.apps.get(name)
        if rule is None and len(name) == 20:
            hits = sorted(n for n in self.apps if n.startswith(name))
            rule = self.apps[hits[0]] if hits else None
        return rule

    def port_rule(self, l4: str, port: int) -> PortRule | None:
        """The port hint for (l4, port), or None."""
        return self.ports.get((str(l4).lower(), int(port))) if port is not None else None

    def asn_info(self, asn: int | None) -> AsnRule | None:
        return self.asns.get(asn) if asn is not None else None

    def is_meta_asn(self, asn: int | None) -> bool:
        info = self.asn_info(asn)
        return bool(info and info.meta)

    # -- addresses

    def _prefix_index(self, include_historic: bool) -> _PrefixIndex:
        index = self._index.get(include_historic)
        if index is None:
            ids = [i for i, r in enumerate(self.prefixes) if include_historic or r.status != "historic"]
            index = self._index[include_historic] = _PrefixIndex(self.prefixes, ids)
        return index

    def match_address_ids(self, ips: Sequence, include_historic: bool = True) -> np.ndarray:
        """Index into :attr:`prefixes` of the longest matching prefix per address (-1: none).

        Vectorised: each distinct address is parsed once, then one searchsorted per family.
        Strings that are not addresses give -1. IPv4-mapped IPv6 addresses are looked up as IPv4.
        """
        index = self._prefix_index(include_historic)
        inverse, family, v4, hi, lo = _parse_addresses(ips)
        out = np.full(family.size, -1, dtype=np.int32)
        is4, is6 = family == 4, family == 6
        if is4.any():
            out[is4] = index.lookup4(v4[is4])
        if is6.any():
            out[is6] = index.lookup6(hi[is6], lo[is6])
        return out[inverse] if len(ips) else np.empty(0, dtype=np.int32)

    def chat_candidates(self) -> "AddressSet":
        """The addresses a connection already open may be WhatsApp chat towards: prefixes of a
        whatsapp.* service or Meta's, historic ones included (2015 chat ran on SoftLayer)."""
        wanted = np.array([r.service.startswith("whatsapp.") or bool(r.meta) for r in self.prefixes] + [False])
        return AddressSet(self._prefix_index(True), wanted)

    def match_addresses(self, ips: Sequence, include_historic: bool = True) -> list[PrefixRule | None]:
        """The longest matching prefix rule per address (None where no prefix matches)."""
        rules = self.prefixes
        return [rules[i] if i >= 0 else None for i in self.match_address_ids(ips, include_historic).tolist()]

    def asn_of(self, ips: Sequence, include_historic: bool = True) -> list[int | None]:
        """The ASN of the longest matching prefix per address (None: no prefix, or no ASN on it)."""
        return [r.asn if r is not None else None for r in self.match_addresses(ips, include_historic)]

    # -- the Business Platform (issue 13)

    def webhook_source_ids(self, ips: Sequence) -> np.ndarray:
        """Index into :attr:`webhook_sources` per address (-1: not from a webhook source network)."""
        if self._webhook_index is None:
            self._webhook_index = _PrefixIndex(self.webhook_sources, range(len(self.webhook_sources)))
        inverse, family, v4, hi, lo = _parse_addresses(ips)
        out = np.full(family.size, -1, dtype=np.int32)
        is4, is6 = family == 4, family == 6
        if is4.any():
            out[is4] = self._webhook_index.lookup4(v4[is4])
        if is6.any():
            out[is6] = self._webhook_index.lookup6(hi[is6], lo[is6])
        return out[inverse] if len(ips) else np.empty(0, dtype=np.int32)

    def webhook_snapshot_date(self) -> str | None:
        """The date of the webhook-source snapshot in force (the latest entry date), or None."""
        return max((r.date for r in self.webhook_sources), default=None)

    def business_names(self, services=(CLOUD_API, BSP)) -> list[str]:
        """Fixed name parts of the Cloud API and provider hosts, searched in ClientHellos by the
        flow table so that these flows' TLS records are walked ("*.api.infobip.com" -> "api.infobip.com")."""
        names = set()
        for r in self.hosts:
            if r.service in services:
                tail = r.pattern[2:] if r.pattern.startswith("*.") else r.pattern
                if "*" not in tail:
                    names.add(tail)
        return sorted(names)

    # -- printing

    def counts(self) -> dict[str, int]:
        v4 = sum(1 for p in self.prefixes if p.version == 4)
        return {"hosts": len(self.hosts), "prefixes_v4": v4, "prefixes_v6": len(self.prefixes) - v4,
                "asns": len(self.asns), "ports": len(self.ports), "apps": len(self.apps),
                "webhook_sources": len(self.webhook_sources)}

    def to_text(self) -> str:
        """One line per entry with its service, source and date (for `flowscope catalog`)."""
        lines = [f"# flowscope service catalog {self.version}"]
        lines += [f"# file {s['path']} sha256={s['sha256']} entries={s['entries']}" for s in self.sources]
        lines += [f"# replaced {o}" for o in self.overridden]
        if self.webhook_sources:
            lines.append(f"# webhook sources: snapshot of {self.webhook_snapshot_date()}, "
                         f"{len(self.webhook_sources)} prefixes (replace with --catalog FILE holding [[webhook_source]])")
        tail = lambda r: f"date={r.date} source={r.source}" + (f" note={r.note}" if r.note else "")  # noqa: E731
        for r in self.hosts:
            extra = "".join(f"\t{k}={getattr(r, k)}" for k in ("fallback", "operator", "country", "channel")
                            if getattr(r, k))
            lines.append(f"host\t{r.pattern}\t{r.service}{extra}\t{tail(r)}")
        for r in self.prefixes:
            asn = f"AS{r.asn}" if r.asn is not None else "AS?"
            meta = "meta" if r.meta else "non-meta"
            lines.append(f"prefix\t{r.prefix}\t{r.service}\towner={r.owner}\t{asn}\t{r.status}\t{meta}\t{tail(r)}")
        for r in self.asns.values():
            lines.append(f"asn\tAS{r.asn}\t{r.name}\towner={r.owner}\tcountry={r.country}\t"
                         f"{'meta' if r.meta else 'non-meta'}\t{tail(r)}")
        for r in self.ports.values():
            lines.append(f"port\t{r.l4}/{r.port}\t{r.service}\tconfidence={r.confidence}\t{tail(r)}")
        for r in self.apps.values():
            lines.append(f"app\t{r.name}\t{r.service}\t{tail(r)}")
        for r in self.webhook_sources:
            asn = f"AS{r.asn}" if r.asn is not None else "AS?"
            lines.append(f"webhook_source\t{r.prefix}\towner={r.owner}\t{asn}\t{tail(r)}")
        return "\n".join(lines) + "\n"

    def __repr__(self) -> str:
        return f"Catalog({self.version}, {self.counts()})"


def _builtin_files() -> tuple[str, list[tuple[str, bytes]]]:
    root = resources.files("flowscope.classify").joinpath(_DATA)
    manifest = tomllib.loads(root.joinpath(_MANIFEST).read_text("utf-8"))
    files = [(f"builtin:{name}", root.joinpath(name).read_bytes()) for name in manifest["files"]]
    return manifest["release"], files


def _read_user(path) -> tuple[str, bytes]:
    label = str(path)
    try:
        return label, Path(path).read_bytes()
    except IsADirectoryError:
        raise UsageError(f"{label}: cannot read catalog file (is a directory)") from None
    except OSError as e:
        raise UsageError(f"{label}: cannot read catalog file ({e.strerror or e})") from None


def load_catalog(extra: Sequence = ()) -> Catalog:
    """The catalog for `extra` (see _load_catalog), parsed once per process for the same
    files unchanged on disk: the classify and geo stages both ask for it."""
    extra = [extra] if isinstance(extra, (str, Path)) else list(extra)
    return _load_cached(tuple((str(p), *_stat(p)) for p in extra))


def _stat(path) -> tuple:
    try:
        st = os.stat(path)
        return st.st_mtime_ns, st.st_size, st.st_ino
    except OSError:
        return (None, None, None)  # _read_user raises the clear error; errors are never cached


@lru_cache(maxsize=8)
def _load_cached(key: tuple) -> Catalog:
    return _load_catalog([k[0] for k in key])


def _load_catalog(extra: Sequence = ()) -> Catalog:
    """The built-in catalog, extended or overridden by the user catalog files in `extra`.

    Files load in order: built-in files (data/manifest.toml), then `extra` as given. A later entry
    with the same key as an earlier one replaces it (recorded in `Catalog.overridden`); new keys
    add. `Catalog.version` is "builtin-<release>[+user<N>]+sha256:<12 hex>", the hash taken over
    the sha256 digests of all loaded files in load order.
    """
    extra = [extra] if isinstance(extra, (str, Path)) else list(extra)
    release, builtin = _builtin_files()
    files = [(label, data, True) for label, data in builtin] + [(*_read_user(p), False) for p in extra]
    merged: dict[str, dict] = {k: {} for k in _FIELDS}
    where: dict[tuple, str] = {}
    overridden: list[str] = []
    sources: list[CatalogSource] = []
    outer = hashlib.sha256()
    for label, data, is_builtin in files:
        digest = hashlib.sha256(data).hexdigest()
        outer.update(bytes.fromhex(digest))
        raws = _parse_file(label, data)
        if not is_builtin and merged["webhook_source"] and any(r.kind == "webhook_source" for r in raws):
            # a snapshot replaces the snapshot: prefixes Meta withdrew must not stay
            before = sorted({f["origin"] for f in merged["webhook_source"].values()})
            overridden.append(f"webhook_source snapshot: {', '.join(before)} -> {label}")
            for key in [k for k in where if k[0] == "webhook_source"]:
                del where[key]
            merged["webhook_source"].clear()
        for raw in raws:
            key = (raw.kind, raw.key)
            if key in where:
                if is_builtin:
                    raise UsageError(f"{label}: {raw.kind} {_key_text(raw.key)} is already defined in {where[key]}")
                overridden.append(f"{raw.kind} {_key_text(raw.key)}: {where[key]} -> {label}")
            merged[raw.kind][raw.key] = {**raw.fields, "origin": label}
            where[key] = label
        sources.append(CatalogSource(path=label, sha256=digest, builtin=is_builtin, entries=len(raws)))
    asns = [AsnRule(**f) for f in merged["asn"].values()]
    meta_asns = {a.asn for a in asns if a.meta}
    prefixes = []
    for f in merged["prefix"].values():
        meta = f["meta"]
        if meta is None:
            meta = f["asn"] in meta_asns or f["owner"].lower().startswith(META_OWNER_PREFIXES)
        prefixes.append(PrefixRule(**{**f, "meta": meta}))
    n_user = sum(1 for _l, _d, b in files if not b)
    version = f"builtin-{release}" + (f"+user{n_user}" if n_user else "") + f"+sha256:{outer.hexdigest()[:12]}"
    return Catalog(hosts=[HostRule(**f) for f in merged["host"].values()], prefixes=prefixes, asns=asns,
                   ports=[PortRule(**f) for f in merged["port"].values()],
                   apps=[AppRule(**f) for f in merged["app"].values()],
                   sources=sources, version=version, overridden=overridden,
                   webhook_sources=[WebhookSourceRule(**f) for f in merged["webhook_source"].values()])


class AddressSet:
    """Membership of packet-batch addresses (64-bit halves, IPv4 mapped as ::ffff:a.b.c.d)
    in a set of the catalog's prefixes; picklable, for the parts an engine reads elsewhere."""

    def __init__(self, index: _PrefixIndex, wanted: np.ndarray):
        self.index, self.wanted = index, wanted  # wanted[-1] is False: "no prefix" (owner -1)

    def __call__(self, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
        hi, lo = np.asarray(hi, dtype=np.int64), np.asarray(lo, dtype=np.int64)
        out = np.zeros(len(hi), dtype=bool)
        v4 = (hi == 0) & ((lo >> 32) == 0xFFFF)
        if v4.any():
            out[v4] = self.wanted[self.index.lookup4((lo[v4] & 0xFFFFFFFF).astype(np.uint32))]
        if (~v4).any():
            out[~v4] = self.wanted[self.index.lookup6(hi[~v4].view(np.uint64), lo[~v4].view(np.uint64))]
        return out
