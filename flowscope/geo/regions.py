"""GDPR territorial classification of a country code: EU, EEA, adequate, third country.

Data: ``data/regions.toml`` (EU-27, EEA = EU + IS/LI/NO, Commission adequacy decisions
with decision number, date, scope and source).  Order of the test in :func:`region_of`:
EU first, then EEA, then adequacy, else ``"third"``; empty input -> ``"unknown"``.

**United States**: ``"adequate"`` only in the limited sense of the EU-US Data Privacy
Framework (Commission Implementing Decision (EU) 2023/1795 of 10 July 2023), which covers
*DPF-certified organisations only*; the record carries ``partial = true`` and a scope
note.  A country label is a location fact; whether a given transfer is covered depends on
the recipient organisation - see :mod:`flowscope.geo.operators`.
"""
from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path

REGIONS_TOML = Path(__file__).with_name("data") / "regions.toml"

EU, EEA, ADEQUATE, THIRD, UNKNOWN = "eu", "eea", "adequate", "third", "unknown"

# ISO 3166 alpha-2 vs. the EU's own abbreviations
_ALIASES = {"UK": "GB", "EL": "GR"}


@lru_cache(maxsize=1)
def _data() -> dict:
    with REGIONS_TOML.open("rb") as fh:
        return tomllib.load(fh)


def eu_members() -> frozenset[str]:
    return frozenset(_data()["eu"]["members"])


def eea_members() -> frozenset[str]:
    return eu_members() | frozenset(_data()["eea"]["extra"])


def _norm(country) -> str | None:
    if not isinstance(country, str):
        return None
    c = country.strip().upper()
    if len(c) != 2 or not c.isalpha() or not c.isascii():
        return None
    return _ALIASES.get(c, c)


def region_of(country: str | None) -> str:
    """"eu" | "eea" | "adequate" | "third" | "unknown" for an ISO alpha-2 code."""
    c = _norm(country)
    if c is None:
        return UNKNOWN
    if c in eu_members():
        return EU
    if c in eea_members():
        return EEA
    if c in _data()["adequacy"]:
        return ADEQUATE
    return THIRD


def adequacy(country: str | None) -> dict | None:
    """The adequacy decision record (name, decision, date, partial, scope, source...) or None."""
    c = _norm(country)
    if c is None:
        return None
    rec = _data()["adequacy"].get(c)
    return None if rec is None else {"country": c, **rec}


def describe() -> dict:
    """The regions data as summary.json records it: sources, as-of date, every adequacy decision."""
    d = _data()
    return {"as_of": d["meta"]["as_of"], "eu_source": d["meta"]["eu_source"], "eea_source": d["meta"]["eea_source"],
            "adequacy": [{"country": c, "decision": r["decision"], "date": r["date"], "partial": r["partial"],
                          "scope": r.get("scope"), "verified": r.get("verified", False)}
                         for c, r in sorted(d["adequacy"].items())]}
