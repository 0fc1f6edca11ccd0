"""Meta/WhatsApp PoP codes in hostnames -> IATA airport code -> metro location.

Meta names its edge hosts after the nearest airport (brief §2.5):

* ``media-mxp1-1.cdn.whatsapp.net``              -> MXP (``media-<pop><n>-<m>``)
* ``scontent-mxp1-1.cdninstagram.com``           -> MXP (``<svc>-<pop><n>-<m>``)
* ``scontent.fdel1-1.fna.fbcdn.net``             -> DEL (FNA caches: ``f<pop><n>-<m>``)
* ``whatsapp-chatd-edge-shv-01-fra3.facebook.com`` -> FRA (``...-shv-NN-<pop><n>``)
* ``edge-star-mini-shv-01-ams4.facebook.com``    -> AMS
* ``whatsapp-cdn-shv-01-lhr3.fbcdn.net``         -> LHR
* ``ae37.pr04.ams2.tfbnw.net``                   -> AMS (router names)

A code is only reported when it is in ``data/airports.csv`` (real coordinates from a
cited public dataset); anything else - unknown codes such as ``fml20``/``frt3``,
non-Meta names, garbage - yields ``None``.  The code names the PoP *metro*, not the
server room, and says nothing about where data is processed after the edge: confirm
with the RTT bound (:mod:`flowscope.geo.physics`).
"""
from __future__ import annotations

import csv
import re
from functools import lru_cache
from pathlib import Path

AIRPORTS_CSV = Path(__file__).with_name("data") / "airports.csv"

#: Registrable domains whose hosts follow Meta's PoP naming.
META_SUFFIXES = (
    "whatsapp.net", "whatsapp.com", "fbcdn.net", "facebook.com", "cdninstagram.com",
    "instagram.com", "tfbnw.net", "fbsbx.com", "facebook.net",
)

_MAX_HOSTNAME = 253
# One label holding a PoP: 3 letters + digits, optionally "-<digits>" (cluster).
_POP = r"([a-z]{3})\d{1,3}"
_PATTERNS = (
    # ...-shv-01-fra3 (edge proxies) - the pop is the last dash-part of the first label
    re.compile(r"^[a-z0-9-]*-shv-\d{1,3}-" + _POP + r"$"),
    # scontent.fdel1-1 (FNA): the whole label is f<pop><n>-<m>
    re.compile(r"^f" + _POP + r"-\d{1,3}$"),
    # media-mxp1-1 / scontent-mxp1-1 / video-fra3-1: <svc>-<pop><n>-<m>
    re.compile(r"^[a-z][a-z0-9]*(?:-[a-z][a-z0-9]*)*-" + _POP + r"-\d{1,3}$"),
    # router names: ae37.pr04.ams2.tfbnw.net - a bare <pop><n> label
    re.compile(r"^" + _POP + r"$"),
)


@lru_cache(maxsize=1)
def airports() -> dict[str, tuple[str, str, float, float]]:
    """IATA code -> (city, ISO country, lat, lon), loaded once from data/airports.csv."""
    table: dict[str, tuple[str, str, float, float]] = {}
    with AIRPORTS_CSV.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            table[row["iata"].upper()] = (row["city"], row["country"], float(row["lat"]), float(row["lon"]))
    return table


def _is_meta(host: str) -> bool:
    return any(host == s or host.endswith("." + s) for s in META_SUFFIXES)


@lru_cache(maxsize=1 << 14)  # one flow table repeats few names many times
def pop_code(hostname: str) -> str | None:
    """The IATA code encoded in a Meta PoP hostname, upper-case, or None.

    Never raises: non-strings, over-long names, non-ASCII and non-Meta names give None.
    """
    if not isinstance(hostname, str) or not hostname or len(hostname) > _MAX_HOSTNAME + 1:
        return None
    try:
        host = hostname.strip().rstrip(".").lower()
        host.encode("ascii")
    except (UnicodeError, AttributeError):
        return None
    if not host or not _is_meta(host):
        return None
    labels = host.split(".")
    known = airports()
    # Only look at labels left of the registrable suffix (never "whatsapp", "fbcdn" ...).
    for label in labels[:-2]:
        if not label or len(label) > 63:
            continue
        for pat in _PATTERNS:
            m = pat.match(label)
            if m:
                code = m.group(1).upper()
                if code in known:
                    return code
    return None


def pop_location(code: str | None) -> tuple[str, str, float, float] | None:
    """(city, ISO country, lat, lon) of an IATA code from airports.csv, or None."""
    if not isinstance(code, str) or len(code) != 3:
        return None
    return airports().get(code.upper())
