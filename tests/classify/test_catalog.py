"""The service catalog: its built-in data, user files, host patterns and the vectorised prefix match."""
from __future__ import annotations

import datetime
import hashlib
import ipaddress
import json
import random
import re
from importlib import resources

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowscope.classify import index as index_module  # the matching structures behind Catalog
from flowscope.classify import SERVICES, load_catalog
from flowscope.errors import UsageError


@pytest.fixture(scope="module")
def cat():
    return load_catalog()


def all_entries(c):
    return [*c.hosts, *c.prefixes, *c.asns.values(), *c.ports.values(), *c.apps.values(), *c.webhook_sources]


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- built-in data

def test_every_entry_has_source_and_date(cat):
    entries = all_entries(cat)
    assert len(entries) > 500
    for e in entries:
        assert e.source.strip(), e
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", e.date), e
        assert datetime.date.fromisoformat(e.date) <= datetime.date(2026, 11, 28), e


def test_builtin_has_no_duplicate_keys(cat):
    assert cat.overridden == ()
    prefixes = [p.prefix for p in cat.prefixes]
    assert len(prefixes) == len(set(prefixes))
    canonical = {str(ipaddress.ip_network(p)) for p in prefixes}
    assert canonical == set(prefixes)
    patterns = [h.pattern for h in cat.hosts]
    assert len(patterns) == len(set(patterns))


def test_services_statuses_and_owners_are_in_vocabulary(cat):
    for e in all_entries(cat):
        if hasattr(e, "service"):
            assert e.service in SERVICES
    for p in cat.prefixes:
        assert p.status in ("current", "historic")
        assert p.owner


@pytest.mark.parametrize("prefix, service, owner_start, asn", [
    ("57.144.0.0/14", "meta.other", "Meta Platforms", 32934),
    ("2a03:2880::/29", "meta.other", "Meta Platforms", 32934),
    ("2a03:2880::/32", "meta.other", "Meta Platforms", 32934),
    ("157.240.0.0/17", "meta.other", "Meta Platforms", 32934),
    ("31.13.64.0/18", "meta.other", "Meta Platforms", 32934),
    ("163.114.128.0/20", "meta.other", "Meta Platforms", 54115),
    ("129.134.136.0/22", "meta.other", "Meta Platforms", 63293),
    ("157.240.20.52/31", "whatsapp.other", "Meta Platforms", 32934),
    ("3.33.221.48/32", "whatsapp.chat", "Amazon", 16509),
    ("3.33.252.61/32", "whatsapp.chat", "Amazon", 16509),
    ("15.197.206.217/32", "whatsapp.chat", "Amazon", 16509),
    ("15.197.210.208/32", "whatsapp.chat", "Amazon", 16509),
])
def test_key_prefixes_present(cat, prefix, service, owner_start, asn):
    rules = {p.prefix: p for p in cat.prefixes}
    rule = rules[prefix]
    assert (rule.service, rule.asn) == (service, asn)
    assert rule.owner.startswith(owner_start)
    assert rule.status == "current"


def test_meta_flag(cat):
    rules = {p.prefix: p for p in cat.prefixes}
    assert rules["57.144.0.0/14"].meta and rules["157.240.20.52/31"].meta
    assert not rules["3.33.221.48/32"].meta  # AWS's address, WhatsApp's service
    assert not rules["158.85.58.0/25"].meta


def test_softlayer_entries_are_historic(cat):
    softlayer = [p for p in cat.prefixes if p.asn == 36351]
    assert len(softlayer) >= 100
    assert {p.status for p in softlayer} == {"historic"}
    assert {p.service for p in softlayer} == {"whatsapp.other"}
    firsts = {p.prefix.split(".")[0] for p in softlayer if p.version == 4}
    assert {"50", "158", "169", "174", "184", "208"} <= firsts


def test_asns_and_ports(cat):
    for asn in (32934, 63293, 54115):
        info = cat.asn_info(asn)
        assert info.owner == "Meta Platforms, Inc." and info.country == "US" and info.meta
    assert not cat.is_meta_asn(16509) and not cat.is_meta_asn(None)
    tcp = cat.port_rule("tcp", 5222)
    udp = cat.port_rule("UDP", 3478)
    assert (tcp.service, tcp.confidence) == ("whatsapp.chat", "low")
    assert (udp.service, udp.confidence) == ("whatsapp.call", "low")
    assert cat.port_rule("tcp", 443) is None


def test_counts(cat):
    counts = cat.counts()
    assert counts["prefixes_v4"] >= 400 and counts["prefixes_v6"] >= 100 and counts["hosts"] >= 60


def test_version_and_sources(cat):
    assert re.fullmatch(r"builtin-\d{4}-\d{2}-\d{2}\+sha256:[0-9a-f]{12}", cat.version)
    root = resources.files("flowscope.classify").joinpath("data")
    outer = hashlib.sha256()
    for s in cat.sources:
        assert s["builtin"] and s["path"].startswith("builtin:") and s["entries"] > 0
        data = root.joinpath(s["path"].split(":", 1)[1]).read_bytes()
        assert s["sha256"] == hashlib.sha256(data).hexdigest()
        outer.update(bytes.fromhex(s["sha256"]))
    json.dumps(cat.sources)  # plain dicts: summary.json takes them as they are
    assert cat.version.endswith(outer.hexdigest()[:12])
    assert load_catalog().version == cat.version  # deterministic


def test_to_text_has_one_line_per_entry(cat):
    text = cat.to_text()
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert len(lines) == len(all_entries(cat))
    assert all("date=" in line and "source=" in line for line in lines)
    assert any(line.startswith("prefix\t57.144.0.0/14\tmeta.other") for line in lines)
    assert text.startswith(f"# flowscope service catalog {cat.version}")


# ----------------------------------------------------------------------------- user files

USER = """
[[prefix]]
prefix = "57.144.0.0/14"
service = "whatsapp.other"
owner = "Meta Platforms, Inc."
asn = 32934
source = "lab capture 2026-11-01, rDNS of 57.144.23.33"
date = "2026-11-01"

[[prefix]]
prefix = "192.0.2.0/24"
service = "whatsapp.call"
owner = "Example ISP relay"
source = "lab capture"
date = "2026-11-02"

[[host]]
pattern = "*.whatsapp.net"
service = "other"
source = "audit scope decision"
date = "2026-11-03"

[[host]]
pattern = "relay-*.example.test"
service = "whatsapp.call"
source = "lab capture"
date = 2026-11-04
"""


def test_user_file_overrides_and_extends(tmp_path, cat):
    user = load_catalog([write(tmp_path, "site.toml", USER)])
    rules = {p.prefix: p for p in user.prefixes}
    assert rules["57.144.0.0/14"].service == "whatsapp.other"
    assert rules["57.144.0.0/14"].origin.endswith("site.toml")
    assert rules["192.0.2.0/24"].service == "whatsapp.call" and not rules["192.0.2.0/24"].meta
    assert len(user.prefixes) == len(cat.prefixes) + 1
    assert user.match_host("v.whatsapp.net").service == "other"  # replaced catch-all
    assert user.match_host("g.whatsapp.net").service == "whatsapp.chat"  # more specific built-in still wins
    assert user.match_host("relay-7.example.test").service == "whatsapp.call"
    assert user.match_host("relay-7.example.test").date == "2026-11-04"  # TOML date literal accepted
    assert user.match_addresses(["57.145.1.1"])[0].service == "whatsapp.other"
    assert any(o.startswith("prefix 57.144.0.0/14: builtin:meta_prefixes.toml ->") for o in user.overridden)
    assert re.fullmatch(r"builtin-\d{4}-\d{2}-\d{2}\+user1\+sha256:[0-9a-f]{12}", user.version)
    assert user.version != cat.version
    assert user.sources[-1]["builtin"] is False and user.sources[-1]["entries"] == 4
    assert cat.match_host("v.whatsapp.net").service == "whatsapp.other"  # the built-in catalog is untouched


def test_later_user_file_wins(tmp_path):
    a = write(tmp_path, "a.toml", '[[port]]\nl4 = "tcp"\nport = 5223\nservice = "other"\n'
                                  'confidence = "low"\nsource = "a"\ndate = "2026-01-01"\n')
    b = write(tmp_path, "b.toml", '[[port]]\nl4 = "tcp"\nport = 5223\nservice = "meta.other"\n'
                                  'confidence = "low"\nsource = "b"\ndate = "2026-01-02"\n')
    c = load_catalog([a, b])
    assert c.port_rule("tcp", 5223).source == "b"
    assert c.version.split("+")[1] == "user2"


BAD = [
    ("bad_prefix", '[[prefix]]\nprefix = "10.0.0.1/8"\nowner = "x"\nsource = "s"\ndate = "2026-01-01"\n',
     "bad prefix '10.0.0.1/8'"),
    ("not_a_prefix", '[[prefix]]\nprefix = "300.1.1.0/24"\nowner = "x"\nsource = "s"\ndate = "2026-01-01"\n',
     "bad prefix"),
    ("unknown_service", '[[host]]\npattern = "x.test"\nservice = "whatsapp.status"\nsource = "s"\n'
                        'date = "2026-01-01"\n', "unknown service 'whatsapp.status'"),
    ("missing_source", '[[host]]\npattern = "x.test"\nservice = "meta.other"\ndate = "2026-01-01"\n',
     "missing source"),
    ("empty_source", '[[host]]\npattern = "x.test"\nservice = "meta.other"\nsource = " "\ndate = "2026-01-01"\n',
     "source must be a non-empty string"),
    ("missing_date", '[[host]]\npattern = "x.test"\nservice = "meta.other"\nsource = "s"\n', "missing date"),
    ("bad_date", '[[host]]\npattern = "x.test"\nservice = "meta.other"\nsource = "s"\ndate = "2026-13-01"\n',
     "not a calendar date"),
    ("bad_toml", '[[host]\npattern = "x"\n', "not valid TOML"),
    ("unknown_table", '[[hosts]]\npattern = "x.test"\n', "unknown table 'hosts'"),
    ("unknown_field", '[[host]]\npattern = "x.test"\nservice = "other"\nsource = "s"\ndate = "2026-01-01"\n'
                      'servcie = "meta.other"\n', "unknown field 'servcie'"),
    ("bad_pattern", '[[host]]\npattern = "a..test"\nservice = "other"\nsource = "s"\ndate = "2026-01-01"\n',
     "bad host pattern"),
    ("bad_chars", '[[host]]\npattern = "<x>.test"\nservice = "other"\nsource = "s"\ndate = "2026-01-01"\n',
     "bad host pattern"),
    ("duplicate", '[[prefix_group]]\nprefixes = ["192.0.2.0/24", "192.0.2.0/24"]\nowner = "x"\nsource = "s"\n'
                  'date = "2026-01-01"\n', "duplicate prefix 192.0.2.0/24"),
    ("bad_status", '[[prefix]]\nprefix = "192.0.2.0/24"\nowner = "x"\nstatus = "old"\nsource = "s"\n'
                   'date = "2026-01-01"\n', "status must be one of"),
    ("bad_port", '[[port]]\nl4 = "tcp"\nport = 70000\nservice = "other"\nconfidence = "low"\nsource = "s"\n'
                 'date = "2026-01-01"\n', "port must be an integer"),
    ("empty_group", '[[host_group]]\npatterns = []\nservice = "other"\nsource = "s"\ndate = "2026-01-01"\n',
     "patterns must be a non-empty list"),
]


@pytest.mark.parametrize("name, text, problem", BAD, ids=[b[0] for b in BAD])
def test_malformed_user_file_names_the_file(tmp_path, name, text, problem):
    path = write(tmp_path, f"{name}.toml", text)
    with pytest.raises(UsageError) as err:
        load_catalog([path])
    message = str(err.value)
    assert message.startswith(f"{path}: ")
    assert problem in message
    assert "\n" not in message


def test_missing_user_file(tmp_path):
    path = tmp_path / "nope.toml"
    with pytest.raises(UsageError, match=re.escape(f"{path}: cannot read catalog file")):
        load_catalog([path])
    with pytest.raises(UsageError, match="is a directory"):
        load_catalog([tmp_path])


# ----------------------------------------------------------------------------- host patterns

@pytest.mark.parametrize("name, pattern, service", [
    ("g.whatsapp.net", "g.whatsapp.net", "whatsapp.chat"),
    ("G.WhatsApp.NET.", "g.whatsapp.net", "whatsapp.chat"),
    ("e1.whatsapp.net", "e1.whatsapp.net", "whatsapp.chat"),
    ("e16.whatsapp.net", "e16.whatsapp.net", "whatsapp.chat"),
    ("e17.whatsapp.net", "*.whatsapp.net", "whatsapp.other"),
    ("chat.cdn.whatsapp.net", "chat.cdn.whatsapp.net", "whatsapp.chat"),
    ("mmg.whatsapp.net", "mmg*.whatsapp.net", "whatsapp.media"),
    ("mmg-fna.whatsapp.net", "mmg*.whatsapp.net", "whatsapp.media"),
    ("mmg-fallback.whatsapp.net", "mmg*.whatsapp.net", "whatsapp.media"),
    ("media-mxp1-1.cdn.whatsapp.net", "media-*.cdn.whatsapp.net", "whatsapp.media"),
    ("x.y.fna.whatsapp.net", "*.fna.whatsapp.net", "whatsapp.media"),
    ("mms.whatsapp.net", "mms.whatsapp.net", "whatsapp.media"),
    ("web.whatsapp.com", "web.whatsapp.com", "whatsapp.web"),
    ("v.whatsapp.net", "*.whatsapp.net", "whatsapp.other"),
    ("whatsapp.com", "whatsapp.com", "whatsapp.other"),
    ("wa.me", "wa.me", "whatsapp.other"),
    ("www.facebook.com", "*.facebook.com", "meta.facebook"),
    ("scontent.fmxp1-1.fna.fbcdn.net", "*.fbcdn.net", "meta.facebook"),
    ("whatsapp-chatd-edge-shv-01-fra3.facebook.com", "whatsapp-chatd-edge-*.facebook.com", "whatsapp.chat"),
    ("whatsapp-cdn-shv-01-mxp1.fbcdn.net", "whatsapp-cdn-shv-*.fbcdn.net", "whatsapp.media"),
    ("instagram.c10r.facebook.com", "instagram.*.facebook.com", "meta.instagram"),
    ("scontent-mxp1-1.cdninstagram.com", "*.cdninstagram.com", "meta.instagram"),
    ("igcdn-photos-a-a.akamaihd.net", "igcdn-photos-*.akamaihd.net", "meta.instagram"),
    ("edge-mqtt.facebook.com", "edge-mqtt.facebook.com", "meta.messenger"),
    ("m.me", "m.me", "meta.messenger"),
    ("www.threads.net", "*.threads.net", "meta.threads"),
    ("graph.facebook.com", "graph.facebook.com", "whatsapp.business_api"),
    ("graph.whatsapp.com", "*.whatsapp.com", "whatsapp.other"),
    ("www.oculus.com", "*.oculus.com", "meta.other"),
])
def test_host_patterns(cat, name, pattern, service):
    rule = cat.match_host(name)
    assert (rule.pattern, rule.service) == (pattern, service)


@pytest.mark.parametrize("name", [
    "evilwhatsapp.net", "whatsapp.net.evil.com", "notfacebook.com", "facebook.com.example", "xwa.me",
    "", "   ", ".", "signal.org", "textsecure-service.whispersystems.org", "zoom.us", "turner.facebook",
])
def test_names_that_must_not_match(cat, name):
    assert cat.match_host(name) is None


@pytest.mark.parametrize("name, service", [
    ("<script>alert(1)</script>.whatsapp.net", "whatsapp.other"),
    ("'; DROP TABLE flows; --.facebook.com", "meta.facebook"),
    ("a\x00b.whatsapp.net", "whatsapp.other"),
    ("x\\.y.whatsapp.net", "whatsapp.other"),
    ("{{7*7}}.cdn.whatsapp.net", "whatsapp.media"),
    ("ünïcödé.fbcdn.net", "meta.facebook"),
    ("a" * 5000 + ".whatsapp.net", "whatsapp.other"),
    (".".join(["x"] * 2000) + ".fbcdn.net", "meta.facebook"),
    ("mmg" + "*" * 50 + ".whatsapp.net", "whatsapp.media"),
])
def test_hostile_names_match_safely(cat, name, service):
    assert cat.match_host(name).service == service


def test_non_string_names(cat):
    for value in (None, 5, b"g.whatsapp.net"):
        assert cat.match_host(value) is None


def test_most_specific_wins_and_ties_are_deterministic(tmp_path):
    text = "".join(
        f'[[host]]\npattern = "{p}"\nservice = "{s}"\nsource = "t"\ndate = "2026-01-01"\n'
        for p, s in [("*.t.test", "meta.other"), ("*.b.t.test", "meta.facebook"), ("a*.b.t.test", "meta.instagram"),
                     ("*z.b.t.test", "meta.threads"), ("az.b.t.test", "meta.messenger"), ("*.*.t.test", "whatsapp.web")])
    c = load_catalog([write(tmp_path, "spec.toml", text)])
    assert c.match_host("q.t.test").service == "meta.other"
    assert c.match_host("q.b.t.test").service == "meta.facebook"  # pins 3 labels, beats *.*.t.test (3 labels, fewer chars)
    assert c.match_host("ab.b.t.test").service == "meta.instagram"  # label glob pins 4 labels
    assert c.match_host("az.b.t.test").service == "meta.messenger"  # exact beats everything
    # a* vs *z: same pinned labels and literal characters, so the alphabetically first pattern
    # wins, and '*' (0x2a) sorts before 'a'
    assert c.match_host("aaz.b.t.test").service == "meta.threads"
    assert c.match_host("qz.b.t.test").service == "meta.threads"
    assert c.match_host("x.y.t.test").service == "whatsapp.web"  # *.*.t.test: middle '*' is exactly one label


def test_apps(cat):
    assert cat.match_app("WhatsApp").service == "whatsapp.other"
    assert cat.match_app("com.whatsapp.w4b").service == "whatsapp.other"
    assert cat.match_app("com.instagram.barcel").service == "meta.threads"  # PCAPdroid's 20-byte truncation
    assert cat.match_app("Signal") is None and cat.match_app(None) is None and cat.match_app("") is None


# ----------------------------------------------------------------------------- address matching

def reference_lpm(cat, include_historic=True):
    """Independent reference: a dict per prefix length, probed from the longest length down."""
    tables = {}
    for rule in cat.prefixes:
        if include_historic or rule.status != "historic":
            net = ipaddress.ip_network(rule.prefix)
            tables.setdefault((net.version, net.prefixlen), {})[net] = rule

    def lookup(text):
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            return None
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        for plen in range(ip.max_prefixlen, -1, -1):
            table = tables.get((ip.version, plen))
            if table:
                rule = table.get(ipaddress.ip_network(f"{ip}/{plen}", strict=False))
                if rule is not None:
                    return rule
        return None
    return lookup


def boundary_addresses(cat, rng, n):
    """Addresses at, just inside and just outside prefix edges, plus random ones near them."""
    out = []
    rules = list(cat.prefixes)
    for _ in range(n):
        net = ipaddress.ip_network(rng.choice(rules).prefix)
        top = (1 << net.max_prefixlen) - 1
        first, last = int(net.network_address), int(net.broadcast_address)
        value = rng.choice([first, last, first - 1, last + 1, rng.randint(first, last), first + rng.randint(0, 300)])
        value = min(max(value, 0), top)
        out.append(str(ipaddress.ip_address(value) if net.version == 6 else ipaddress.IPv4Address(value)))
    return out


def test_lpm_matches_reference_on_10k_addresses(cat):
    rng = random.Random(20261128)
    ips = boundary_addresses(cat, rng, 7000)
    ips += [str(ipaddress.IPv4Address(rng.getrandbits(32))) for _ in range(2000)]
    ips += [str(ipaddress.IPv6Address(rng.getrandbits(128))) for _ in range(500)]
    ips += [str(ipaddress.IPv6Address((0x2a032880 << 96) | rng.getrandbits(96))) for _ in range(500)]
    ips += ["::ffff:157.240.20.53", "not-an-ip", "", "1.2.3", "fe80::1%eth0"]
    lookup = reference_lpm(cat)
    got = cat.match_addresses(ips)
    assert len(got) == len(ips)
    mismatches = [(ip, g, lookup(ip)) for ip, g in zip(ips, got) if g is not lookup(ip)]
    assert not mismatches[:5]
    assert sum(g is not None for g in got) > 3000


def test_lpm_without_historic_falls_back_to_covering_prefix(cat):
    ips = ["31.13.64.51", "158.85.58.15", "2a03:2880:f208:c5:face:b00c:0:167"]
    with_hist = cat.match_addresses(ips)
    without = cat.match_addresses(ips, include_historic=False)
    assert [r.status for r in with_hist] == ["historic"] * 3
    assert without[0].prefix == "31.13.64.0/18" and without[1] is None and without[2].prefix == "2a03:2880::/32"
    lookup = reference_lpm(cat, include_historic=False)
    rng = random.Random(7)
    more = boundary_addresses(cat, rng, 2000)
    assert all(a is lookup(ip) for ip, a in zip(more, cat.match_addresses(more, include_historic=False)))


_PROPERTY_STATE: dict = {}


def _property_state():
    if "cat" not in _PROPERTY_STATE:
        cat = load_catalog()
        _PROPERTY_STATE.update(cat=cat, lookup=reference_lpm(cat))
    return _PROPERTY_STATE["cat"], _PROPERTY_STATE["lookup"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6),
                          st.integers(0, (1 << 96) - 1).map(lambda x: ipaddress.IPv6Address((0x2a032880 << 96) | x)),
                          st.integers(0, (1 << 18) - 1).map(lambda x: ipaddress.IPv4Address((157 << 24 | 240 << 16) + x % 65536))),
                min_size=1, max_size=50))
def test_lpm_property(ips):
    cat, lookup = _property_state()  # built once: hypothesis runs the body many times
    texts = [str(ip) for ip in ips]
    assert cat.match_addresses(texts) == [lookup(t) for t in texts]
    assert cat.match_addresses(ips) == [lookup(t) for t in texts]  # ipaddress objects work too


def test_lookup_is_vectorised_with_searchsorted(cat, monkeypatch):
    calls = []
    real = np.searchsorted

    def spy(a, v, *args, **kwargs):
        calls.append(np.size(v))
        return real(a, v, *args, **kwargs)

    monkeypatch.setattr(index_module.np, "searchsorted", spy)
    rng = random.Random(1)
    v4 = [str(ipaddress.IPv4Address(rng.getrandbits(32))) for _ in range(10_000)]
    cat.match_address_ids(v4)
    assert calls == [10_000]  # one call for all IPv4 addresses, not one per address
    calls.clear()
    v6 = [str(ipaddress.IPv6Address((0x2a032887 << 96) | rng.getrandbits(96))) for _ in range(10_000)]
    cat.match_address_ids(v6)
    assert 2 <= len(calls) <= 2 + len(cat.prefixes)  # per run of boundaries sharing a high word, never per address
    assert calls[0] == 10_000


def test_asn_of_and_ids(cat):
    ips = ["129.134.140.1", "163.114.130.1", "31.13.86.51", "3.33.252.61", "192.168.1.1", "bogus"]
    assert cat.asn_of(ips) == [63293, 54115, 32934, 16509, None, None]
    ids = cat.match_address_ids(ips)
    assert ids.dtype == np.int32 and ids.tolist()[-2:] == [-1, -1]
    assert cat.match_addresses([]) == [] and cat.asn_of([]) == []


def test_duplicate_addresses_parsed_once(cat, monkeypatch):
    parsed = []
    real = index_module._parse_one
    monkeypatch.setattr(index_module, "_parse_one", lambda t: parsed.append(t) or real(t))
    got = cat.match_addresses(["157.240.20.53"] * 1000 + ["57.144.1.1"] * 1000)
    assert len(parsed) == 2 and got[0].service == "whatsapp.other" and got[-1].prefix == "57.144.0.0/14"
