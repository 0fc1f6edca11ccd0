"""Derived flow columns: Community ID, flag letters."""
from __future__ import annotations

import ipaddress

import numpy as np

from flowscope.flows.finalize import FLAG_STRINGS, community_id


def _p(text):
    return ipaddress.ip_address(text).packed


def test_community_id_matches_the_spec_example():
    # corelight/community-id-spec baseline: TCP 128.232.110.120:34855 -> 66.35.250.204:80
    assert community_id(6, _p("128.232.110.120"), 34855, _p("66.35.250.204"), 80) == "1:LQU9qZlK+B5F3KDmev6m5PMibrg="


def test_community_id_is_direction_free_and_none_without_ports():
    a = community_id(17, _p("2001:db8::1"), 5353, _p("2001:db8::2"), 53)
    b = community_id(17, _p("2001:db8::2"), 53, _p("2001:db8::1"), 5353)
    assert a == b and a.startswith("1:")
    assert community_id(1, _p("10.0.0.1"), 0, _p("10.0.0.2"), 0) is None


def test_flag_letters():
    assert FLAG_STRINGS[0x12] == "SA"
    assert FLAG_STRINGS[0x11] == "FA"
    assert FLAG_STRINGS[0] == ""


def test_community_ids_equal_the_one_flow_function():
    """The batch form (finalize.community_ids) against the reference, over both families,
    both orders of the ends, equal addresses with ports either way, and portless protocols."""
    import random
    from flowscope.flows.finalize import community_ids
    rng = random.Random(7)
    addrs = [_p(a) for a in ("10.0.0.1", "10.0.0.2", "192.168.1.9", "2001:db8::1", "2001:db8::2", "::ffff:0:1")]
    rows = []
    for _ in range(2000):
        fam = rng.choice([[a for a in addrs if len(a) == 4], [a for a in addrs if len(a) == 16]])
        rows.append((rng.choice([6, 17, 132, 1, 58]), rng.choice(fam), rng.choice([0, 53, 443, 65535, 40000]),
                     rng.choice(fam), rng.choice([0, 53, 443, 65535, 40000])))
    proto, src, sport, dst, dport = (list(c) for c in zip(*rows))
    got = community_ids(np.array(proto), src, np.array(sport), dst, np.array(dport))
    assert got == [community_id(*r) for r in rows]
    assert any(g is None for g in got) and any(g for g in got)
