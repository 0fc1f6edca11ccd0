"""Options of a live capture: local networks, durations, limits; refused before anything starts."""
import ipaddress

import pytest

from flowscope.errors import UsageError
from flowscope.live import DEFAULT_LOCAL_NETS, LiveOptions, parse_local_nets
from flowscope.live.options import parse_duration_s


def test_default_local_nets_cover_private_cgnat_ula_and_link_local():
    nets = LiveOptions(interface="eth0", out="o").local_nets
    for addr in ("10.1.2.3", "172.31.255.1", "192.168.1.20", "100.64.0.1", "100.127.255.254",
                 "169.254.10.1", "fd12:3456::1", "fe80::1"):
        ip = ipaddress.ip_address(addr)
        assert any(ip.version == n.version and ip in n for n in nets), addr
    for addr in ("100.128.0.1", "157.240.20.53", "2a03:2880:f208:c5:face:b00c:0:167", "172.32.0.1"):
        ip = ipaddress.ip_address(addr)
        assert not any(ip.version == n.version and ip in n for n in nets), addr
    assert [str(n) for n in nets] == list(DEFAULT_LOCAL_NETS)


def test_local_nets_are_normalised_deduplicated_and_validated():
    nets = parse_local_nets(["192.168.1.7/24", "192.168.1.0/24", " 2001:db8::/32 ", "10.0.0.1"])
    assert [str(n) for n in nets] == ["192.168.1.0/24", "2001:db8::/32", "10.0.0.1/32"]
    for bad in ("192.168.1.0/33", "eth0", "", "10.0.0.0/8/8"):
        with pytest.raises(UsageError, match="--local-net"):
            parse_local_nets([bad])


def test_local_nets_given_replace_the_defaults_and_are_kept_as_strings():
    opts = LiveOptions(interface="eth0", out="o", local_nets=("203.0.113.0/24",))
    assert opts.local_net_strings() == ["203.0.113.0/24"]


@pytest.mark.parametrize("text, seconds", [("90", 90), ("90s", 90), ("10m", 600), ("1.5h", 5400), (".5", 0.5)])
def test_durations_take_seconds_or_a_unit(text, seconds):
    assert parse_duration_s(text) == seconds


@pytest.mark.parametrize("text", ["0", "-5", "10d", "ten", "", "5 m s"])
def test_bad_durations_are_refused(text):
    with pytest.raises(UsageError, match="--duration"):
        parse_duration_s(text)


@pytest.mark.parametrize("text", ["0", "abc", "-1m"])
def test_bad_rotation_periods_name_the_option(text):
    with pytest.raises(UsageError, match="^--rotate: expected a positive number"):
        parse_duration_s(text, "--rotate")


def test_rotation_is_validated():
    assert LiveOptions(interface="eth0", out="o", rotate_s=3600).rotating
    assert not LiveOptions(interface="eth0", out="o").rotating
    with pytest.raises(UsageError, match="at least 1 s"):
        LiveOptions(interface="eth0", out="o", rotate_s=0.5)
    with pytest.raises(UsageError, match="--rotate-packets must be >= 1"):
        LiveOptions(interface="eth0", out="o", rotate_packets=0)
    with pytest.raises(UsageError, match="not both"):
        LiveOptions(interface="eth0", out="o", rotate_s=60, rotate_packets=10)


def test_limits_are_validated():
    with pytest.raises(UsageError, match="not both"):
        LiveOptions(interface="eth0", out="o", duration_s=5, max_packets=10)
    with pytest.raises(UsageError, match="--packets"):
        LiveOptions(interface="eth0", out="o", max_packets=0)
    with pytest.raises(UsageError, match="--interface"):
        LiveOptions(interface=" ", out="o")
    assert LiveOptions(interface="eth0", out="o", bpf="  ").bpf is None
    assert LiveOptions(interface="eth0", out="o").pcap_dir.as_posix() == "o/pcap"
