"""flowscope.geo.readers: embedded databases, user .mmdb files, dedupe, merge, errors."""
from __future__ import annotations

import os
import re

import pytest

from flowscope.errors import UsageError
from flowscope.geo import readers
from flowscope.geo.readers import (
    ENV_VAR, GeoAnswer, GeoDatabase, describe, lookup_all, merge_answers, open_databases,
)

META_V4 = ["157.240.20.53", "31.13.86.51"]
PUBLIC = META_V4 + ["8.8.8.8", "2a03:2880:f12f:83:face:b00c:0:25de"]
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@pytest.fixture(scope="module")
def embedded():
    dbs = open_databases(environ={})
    yield dbs
    for db in dbs:
        db.close()


def _by_name(dbs, name):
    return next(db for db in dbs if db.name == name)


class FixedDatabase(GeoDatabase):
    """A database that answers every address the same way, counting the calls."""

    def __init__(self, name, kind, **fields):
        super().__init__(name, kind, "2024-01-01", f"/fixed/{name}", "test", "test data")
        self.fields = fields
        self.calls: list[str] = []

    def lookup(self, ip):
        self.calls.append(ip)
        base = dict(country=None, city=None, lat=None, lon=None, accuracy_km=None,
                    asn=None, as_org=None)
        return GeoAnswer(**{**base, **self.fields}, source=self.name)


# ------------------------------------------------------------------------ embedded

def test_embedded_defaults(embedded):
    assert [(db.name, db.kind) for db in embedded] == [("dbip-city-lite", "city"),
                                                       ("geoip2fast-asn", "asn")]
    for db in embedded:
        assert DATE.match(db.build_date), db
        assert os.path.isfile(db.path)
        assert db.attribution and db.licence
    assert _by_name(embedded, "dbip-city-lite").build_date == "2023-04-01"
    assert "CC BY 4.0" in _by_name(embedded, "dbip-city-lite").licence


@pytest.mark.parametrize("ip", PUBLIC)
def test_city_lookup_real_addresses(embedded, ip):
    ans = _by_name(embedded, "dbip-city-lite").lookup(ip)
    assert ans is not None and ans.source == "dbip-city-lite"
    assert re.fullmatch(r"[A-Z]{2}", ans.country)
    assert isinstance(ans.lat, float) and isinstance(ans.lon, float)
    assert -90 <= ans.lat <= 90 and -180 <= ans.lon <= 180
    assert ans.city


@pytest.mark.parametrize("ip", META_V4 + ["2a03:2880:f12f:83:face:b00c:0:25de"])
def test_asn_lookup_meta_addresses(embedded, ip):
    ans = _by_name(embedded, "geoip2fast-asn").lookup(ip)
    assert ans is not None
    assert re.search(r"facebook|meta", ans.as_org, re.I)
    assert ans.asn is None  # geoip2fast's data file keeps AS names, not numbers
    assert re.fullmatch(r"[A-Z]{2}", ans.country)


def test_embedded_databases_know_nothing_of_private_space(embedded):
    for db in embedded:
        assert db.lookup("10.1.2.3") is None
        assert db.lookup("192.0.2.1") is None
        assert db.lookup("not-an-ip") is None


# ------------------------------------------------------------------------ lookup_all

def test_one_lookup_per_distinct_address(embedded, monkeypatch):
    calls: dict[str, list[str]] = {db.name: [] for db in embedded}
    for db in embedded:
        orig = db.lookup_many

        def counted(ips, _orig=orig, _name=db.name):
            calls[_name].extend(ips)
            return _orig(ips)
        monkeypatch.setattr(db, "lookup_many", counted)
    ips = (["157.240.20.53"] * 50 + ["8.8.8.8"] * 7 + ["10.0.0.1"] * 9 + ["ff02::fb"]
           + ["2a03:2880:f12f:83:face:b00c:0:25de", "2A03:2880:F12F:83:FACE:B00C:0:25DE",
              "2a03:2880:f12f:0083:face:b00c:0000:25de"]
           + ["192.0.2.9", "170.170.170.170", "garbage"])
    result = lookup_all(embedded, ips)
    for name, seen in calls.items():
        assert sorted(seen) == sorted(["157.240.20.53", "8.8.8.8",
                                       "2a03:2880:f12f:83:face:b00c:0:25de"]), name
    # every public spelling is a key, special addresses are not
    assert set(result) == {"157.240.20.53", "8.8.8.8", "2a03:2880:f12f:83:face:b00c:0:25de",
                           "2A03:2880:F12F:83:FACE:B00C:0:25DE",
                           "2a03:2880:f12f:0083:face:b00c:0000:25de"}
    assert [a.source for a in result["157.240.20.53"]] == ["dbip-city-lite", "geoip2fast-asn"]


def test_lookup_all_counts_with_fixed_databases():
    a = FixedDatabase("a", "city", country="IE", city="Dublin", lat=53.3, lon=-6.3)
    b = FixedDatabase("b", "asn", asn=32934, as_org="Facebook, Inc.")
    out = lookup_all([a, b], ["31.13.86.51"] * 100 + ["127.0.0.1"] * 100)
    assert a.calls == ["31.13.86.51"] and b.calls == ["31.13.86.51"]
    assert list(out) == ["31.13.86.51"]


# ------------------------------------------------------------------------ merge

def test_merge_reports_country_disagreement():
    dbip = FixedDatabase("dbip-city-lite", "city", country="IE", city="Dublin", lat=53.35, lon=-6.26)
    other = FixedDatabase("GeoLite2-City", "city", country="US", city="Menlo Park",
                          lat=37.45, lon=-122.18, accuracy_km=1000.0)
    asn = FixedDatabase("GeoLite2-ASN", "asn", asn=32934, as_org="FACEBOOK")
    dbs = [dbip, other, asn]
    answers = lookup_all(dbs, ["157.240.20.53"])["157.240.20.53"]
    merged, diffs = merge_answers(answers)
    assert (merged.country, merged.city, merged.lat, merged.lon) == ("IE", "Dublin", 53.35, -6.26)
    assert (merged.asn, merged.as_org) == (32934, "FACEBOOK")
    assert merged.source == "dbip-city-lite+GeoLite2-ASN"
    assert "country: dbip-city-lite=IE, GeoLite2-City=US" in diffs
    assert any(d.startswith("city: ") for d in diffs)
    assert not any(d.startswith(("asn", "as_org")) for d in diffs)


def test_merge_agreement_and_empty():
    a = GeoAnswer("DE", "Frankfurt", 50.1, 8.7, None, None, None, "x")
    b = GeoAnswer("DE", None, None, None, None, 32934, "Facebook", "y")
    merged, diffs = merge_answers([a, b])
    assert diffs == []
    assert (merged.country, merged.asn, merged.source) == ("DE", 32934, "x+y")
    empty, diffs = merge_answers([])
    assert empty.source == "none" and empty.country is None and diffs == []


def test_merge_embedded_real_answers(embedded):
    """157.240.20.53: DB-IP (2023) and GeoLite2 via geoip2fast (2024) place it apart."""
    answers = lookup_all(embedded, ["157.240.20.53"])["157.240.20.53"]
    merged, diffs = merge_answers(answers, embedded)
    assert merged.source == "dbip-city-lite+geoip2fast-asn"
    assert re.search(r"facebook|meta", merged.as_org, re.I)
    assert isinstance(merged.lat, float)
    countries = {a.source: a.country for a in answers}
    if len(set(countries.values())) > 1:
        assert diffs == [f"country: dbip-city-lite={countries['dbip-city-lite']}, "
                         f"geoip2fast-asn={countries['geoip2fast-asn']}"]


# ------------------------------------------------------------------------ user .mmdb

@pytest.fixture(scope="module")
def user_mmdbs(tmp_path_factory):
    mmdb_writer = pytest.importorskip("mmdb_writer")
    from netaddr import IPSet

    d = tmp_path_factory.mktemp("mmdb")
    city = mmdb_writer.MMDBWriter(ip_version=6, ipv4_compatible=True,
                                  database_type="GeoLite2-City", languages=["en"],
                                  description="test city")
    city.insert_network(IPSet(["157.240.0.0/17"]), {
        "country": {"iso_code": "US", "names": {"en": "United States"}},
        "city": {"names": {"en": "Menlo Park"}},
        "location": {"latitude": 37.4529, "longitude": -122.1817, "accuracy_radius": 1000},
    })
    city.insert_network(IPSet(["2a03:2880::/32"]), {
        "country": {"iso_code": "IE", "names": {"en": "Ireland"}},
        "location": {"latitude": 53.3, "longitude": -6.3, "accuracy_radius": 50},
    })
    asn = mmdb_writer.MMDBWriter(ip_version=6, ipv4_compatible=True,
                                 database_type="GeoLite2-ASN", languages=["en"],
                                 description="test asn")
    asn.insert_network(IPSet(["157.240.0.0/16", "31.13.64.0/18", "2a03:2880::/32"]), {
        "autonomous_system_number": 32934,
        "autonomous_system_organization": "FACEBOOK",
    })
    country = mmdb_writer.MMDBWriter(ip_version=4, database_type="GeoIP2-Country",
                                     languages=["en"], description="test country")
    country.insert_network(IPSet(["8.8.8.0/24"]), {"country": {"iso_code": "US"}})
    paths = {"city": d / "GeoLite2-City.mmdb", "asn": d / "GeoLite2-ASN.mmdb",
             "country": d / "GeoIP2-Country.mmdb"}
    city.to_db_file(str(paths["city"]))
    asn.to_db_file(str(paths["asn"]))
    country.to_db_file(str(paths["country"]))
    return {k: str(v) for k, v in paths.items()}


def test_user_mmdb_kinds_and_asn_number(user_mmdbs):
    dbs = open_databases([user_mmdbs["city"], user_mmdbs["asn"]],
                         environ={ENV_VAR: user_mmdbs["country"]})
    try:
        kinds = {db.name: db.kind for db in dbs}
        assert kinds == {"dbip-city-lite": "city", "geoip2fast-asn": "asn",
                         "GeoLite2-City": "city", "GeoLite2-ASN": "asn",
                         "GeoIP2-Country": "country"}
        result = lookup_all(dbs, ["157.240.20.53", "8.8.8.8", "2a03:2880:f12f:83:face:b00c:0:25de"])
        by_src = {a.source: a for a in result["157.240.20.53"]}
        assert by_src["GeoLite2-ASN"].asn == 32934
        assert re.search(r"facebook|meta", by_src["GeoLite2-ASN"].as_org, re.I)
        assert by_src["GeoLite2-City"] == GeoAnswer("US", "Menlo Park", 37.4529, -122.1817,
                                                     1000.0, None, None, "GeoLite2-City")
        merged, diffs = merge_answers(result["157.240.20.53"], dbs)
        assert merged.asn == 32934 and merged.as_org == "FACEBOOK"
        assert merged.source.startswith("dbip-city-lite+")
        dbip_cc = by_src["dbip-city-lite"].country
        if dbip_cc != "US":
            assert f"country: dbip-city-lite={dbip_cc}, geoip2fast-asn=US, GeoLite2-City=US" in diffs
        # the IPv4-only Country file is silent (not an error) for an IPv6 address
        assert "GeoIP2-Country" not in {a.source for a in result["2a03:2880:f12f:83:face:b00c:0:25de"]}
        assert {a.source: a.country for a in result["8.8.8.8"]}["GeoIP2-Country"] == "US"
        for entry in describe(dbs):
            assert DATE.match(entry["build_date"])
    finally:
        for db in dbs:
            db.close()


def test_same_file_twice_is_opened_once_and_same_type_is_renamed(user_mmdbs, tmp_path):
    copy = tmp_path / "other-city.mmdb"
    copy.write_bytes(open(user_mmdbs["city"], "rb").read())
    dbs = open_databases([user_mmdbs["city"], user_mmdbs["city"], str(copy)], environ={},
                         defaults=False)
    assert [db.name for db in dbs] == ["GeoLite2-City", "GeoLite2-City:other-city.mmdb"]


# ------------------------------------------------------------------------ errors

def test_missing_file_is_usage_error(tmp_path):
    path = str(tmp_path / "nope" / "GeoLite2-City.mmdb")
    with pytest.raises(UsageError) as err:
        open_databases([path], environ={})
    msg = str(err.value)
    assert msg.startswith(f"{path}: ") and "\n" not in msg


def test_missing_file_from_env_is_usage_error(tmp_path):
    path = str(tmp_path / "missing.mmdb")
    with pytest.raises(UsageError, match=re.escape(path)):
        open_databases(environ={ENV_VAR: os.pathsep + path + os.pathsep}, defaults=False)


def test_corrupt_file_is_usage_error(tmp_path):
    path = tmp_path / "corrupt.mmdb"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(UsageError) as err:
        open_databases([str(path)], environ={})
    msg = str(err.value)
    assert msg.startswith(f"{path}: ") and "\n" not in msg


def test_directory_and_unsupported_type_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match=re.escape(str(tmp_path))):
        open_databases([str(tmp_path)], environ={}, defaults=False)
    mmdb_writer = pytest.importorskip("mmdb_writer")
    from netaddr import IPSet
    w = mmdb_writer.MMDBWriter(ip_version=4, database_type="GeoIP2-Anonymous-IP")
    w.insert_network(IPSet(["1.2.3.0/24"]), {"is_anonymous": True})
    path = str(tmp_path / "anon.mmdb")
    w.to_db_file(path)
    with pytest.raises(UsageError, match=re.escape(path) + ".*unsupported"):
        open_databases([path], environ={}, defaults=False)


# ------------------------------------------------------------------------ describe

def test_describe_names_every_database(embedded):
    extra = FixedDatabase("GeoLite2-City", "city", country="US")
    entries = describe(list(embedded) + [extra])
    assert [e["name"] for e in entries] == ["dbip-city-lite", "geoip2fast-asn", "GeoLite2-City"]
    for e in entries:
        assert set(e) >= {"name", "kind", "build_date", "path", "attribution"}
        assert e["kind"] in ("city", "country", "asn")
        assert DATE.match(e["build_date"])
        assert e["path"] and e["attribution"]
    assert entries[0]["build_date"] == "2023-04-01"
    assert readers.DBIP_ATTRIBUTION in entries[0]["attribution"]
