"""Derived flow columns: Community ID, flag letters."""
from __future__ import annotations

import ipaddress

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
