"""Who runs an endpoint, and under which law - a separate evidence column from location.

:func:`operator_of` answers ``(operator, operator_country)``:

* AS32934 / AS63293 / AS54115 / AS34825 (Meta ASNs, brief §2.1) -> ("Meta Platforms, Inc.", "US");
  a WhatsApp service on those -> ("WhatsApp LLC", "US").
* A Meta/WhatsApp *service* on a non-Meta network: the network operator is recorded as
  the operator (e.g. AWS Global Accelerator anycast for ``e*.whatsapp.net``, brief §2.4:
  "Amazon.com, Inc.", US) and :func:`operator_record` adds ``serving`` = the service
  operator, so both facts survive into the report.  With no ASN at all, the service
  operator is returned.
* Any other ASN -> (as_org, country if listed in operators.toml else None).

Operator country is the law of incorporation of the network operator, not the location of
the server (see :mod:`flowscope.geo.physics` / :mod:`flowscope.geo.pop` for that).  For EEA
users the contracting party/controller is Meta Platforms Ireland Ltd / WhatsApp Ireland
Limited (:data:`EU_CONTROLLER_NOTE`, brief §5).
"""
from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path

OPERATORS_TOML = Path(__file__).with_name("data") / "operators.toml"
META_ASNS = frozenset({32934, 63293, 54115, 34825})


@lru_cache(maxsize=1)
def _data() -> dict:
    with OPERATORS_TOML.open("rb") as fh:
        return tomllib.load(fh)


EU_CONTROLLER_NOTE: str = _data()["meta"]["eu_controller_note"]
EU_CONTROLLER_SOURCE: str = _data()["meta"]["eu_controller_source"]


def _asn(asn) -> int | None:
    if isinstance(asn, bool):
        return None
    if isinstance(asn, str):
        s = asn.strip().upper().removeprefix("AS")
        asn = int(s) if s.isdigit() else None
    return asn if isinstance(asn, int) and 0 < asn < 2**32 else None


def _service(service) -> tuple[str, str] | None:
    if not isinstance(service, str) or not service.strip():
        return None
    s = service.strip().lower()
    table = _data()["service"]
    for key in ("whatsapp", "instagram", "messenger", "facebook", "meta"):
        if s == key or s.startswith(key):
            rec = table[key]
            return rec["operator"], rec["country"]
    return None


def operator_record(asn: int | None, service: str | None, as_org: str | None = None) -> dict:
    """Full record: operator, operator_country, serving (service operator), source, eu note."""
    n, svc = _asn(asn), _service(service)
    rec = {"operator": None, "operator_country": None, "serving": None, "serving_country": None,
           "source": None, "eu_controller_note": None}
    if svc is not None:
        rec["serving"], rec["serving_country"] = svc
        rec["eu_controller_note"] = EU_CONTROLLER_NOTE
    asn_rec = _data()["asn"].get(str(n)) if n is not None else None
    if n in META_ASNS:
        rec["operator"], rec["operator_country"] = svc if (svc and svc[0] == "WhatsApp LLC") else (
            asn_rec["org"], asn_rec["country"])
        rec["source"] = asn_rec["source"]
        rec["eu_controller_note"] = EU_CONTROLLER_NOTE
    elif asn_rec is not None:
        rec["operator"], rec["operator_country"], rec["source"] = asn_rec["org"], asn_rec["country"], asn_rec["source"]
    elif n is not None:
        org = as_org.strip() if isinstance(as_org, str) and as_org.strip() else f"AS{n}"
        rec["operator"], rec["source"] = org, "as_org of the address (registry data)"
    elif svc is not None:
        rec["operator"], rec["operator_country"] = svc
        rec["source"] = "service classification (no ASN)"
    elif isinstance(as_org, str) and as_org.strip():
        rec["operator"] = as_org.strip()
    return rec


def operator_of(asn: int | None, service: str | None, as_org: str | None = None) -> tuple[str | None, str | None]:
    """(operator, operator_country) - see module docstring for the rules."""
    rec = operator_record(asn, service, as_org)
    return rec["operator"], rec["operator_country"]
