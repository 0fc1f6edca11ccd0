"""flowscope.geo.special: every range that must never be geolocated has its label."""
from __future__ import annotations

import pytest

from flowscope.geo.special import address_class, is_geolocatable

CASES = [
    # IPv4
    ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("172.31.255.254", "private"),
    ("192.168.43.18", "private"),
    ("127.0.0.1", "loopback"), ("127.255.0.9", "loopback"),
    ("169.254.10.20", "link-local"),
    ("224.0.0.251", "multicast"), ("239.255.255.250", "multicast"),
    ("255.255.255.255", "broadcast"),
    ("0.0.0.0", "unspecified"), ("0.1.2.3", "reserved"),
    ("240.0.0.1", "reserved"), ("192.0.0.8", "reserved"),
    ("192.0.2.1", "documentation"), ("198.51.100.7", "documentation"),
    ("203.0.113.200", "documentation"),
    ("100.64.0.1", "cgnat"), ("100.127.255.254", "cgnat"),
    ("198.18.0.1", "benchmarking"), ("198.19.255.1", "benchmarking"),
    ("170.170.170.170", "anonymised"), ("221.221.221.221", "anonymised"),
    # IPv6
    ("::", "unspecified"), ("::1", "loopback"),
    ("::ffff:157.240.20.53", "ipv4-mapped"),
    ("64:ff9b::1f0d:5633", "nat64"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "teredo"),
    ("2002:c000:0204::1", "6to4"),
    ("2001:db8::1", "documentation"), ("3fff::1", "documentation"),
    ("2001:2::5", "benchmarking"),
    ("fc00::1", "private"), ("fd12:3456:789a::1", "private"),
    ("fe80::189c:c31b:1298:224", "link-local"), ("[fe80::1%eth0]", "link-local"),
    ("ff02::fb", "multicast"),
    ("100::1", "reserved"),
    # rewritten addresses from the nDPI corpus: prefixes IANA never handed out
    ("2a38:e156:8167:a333:face:b00c::24d9", "anonymised"),
    ("3516:bf0b:fc53:75e7:70af:f67f:8e49:f603", "anonymised"),
    # not addresses at all
    ("2600:1900:4160:5999::19::", "invalid"), ("", "invalid"), ("not-an-ip", "invalid"),
    ("256.1.1.1", "invalid"),
]


@pytest.mark.parametrize("ip,label", CASES)
def test_special_ranges(ip, label):
    assert address_class(ip) == label
    assert not is_geolocatable(ip)


@pytest.mark.parametrize("ip", [
    "157.240.20.53", "31.13.86.51", "31.13.86.36", "66.220.156.68", "8.8.8.8", "1.1.1.1",
    "9.9.9.9", "17.17.17.17", "100.63.255.255", "100.128.0.1", "172.32.0.1", "198.20.0.1",
    "2a03:2880:f12f:83:face:b00c:0:25de", "2001:b07:a3d:c112:48a1:1094:1227:281e",
    "2001:4860:4860::8888", "2606:4700:4700::1111", "2c0f:fb50::1", "2800:3f0::1",
])
def test_public_addresses_are_none(ip):
    assert address_class(ip) is None
    assert is_geolocatable(ip)
