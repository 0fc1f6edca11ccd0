"""DHCP host names (options 12 and 81): what a device calls itself, bounded and escaped."""
from __future__ import annotations

from hypothesis import given, settings, strategies as st
from fuzzing import examples, fuzz

from flowscope.dissect.dhcp import MAX_OPTIONS, parse_dhcp

HEAD = bytes([1, 1, 6, 0]) + b"\x12\x34\x56\x78" + bytes(228)
MAGIC = b"\x63\x82\x53\x63"


def message(options: bytes, op: int = 1) -> bytes:
    return bytes([op]) + HEAD[1:] + MAGIC + options


def test_host_name_and_client_fqdn_in_both_forms():
    ascii_fqdn = bytes([0, 0, 0]) + b"Julias-iPhone.fritz.box"
    msg = parse_dhcp(message(b"\x35\x01\x03\x0c\x0dJulias-iPhone" + bytes([81, len(ascii_fqdn)]) + ascii_fqdn + b"\xff"))
    assert (msg.op, msg.xid, msg.host_name, msg.client_fqdn, msg.limited) == \
        (1, 0x12345678, "julias-iphone", "julias-iphone.fritz.box", False)
    wire = bytes([0x04, 0, 0]) + b"\x06laptop\x04home\x04arpa\x00"
    assert parse_dhcp(message(bytes([81, len(wire)]) + wire + b"\xff")).client_fqdn == "laptop.home.arpa"


def test_hostile_names_are_escaped_and_cut_options_ignored():
    msg = parse_dhcp(message(b"\x0c\x08a\x1b[31m\\x\xff"))
    assert msg.host_name == "a\\x1b[31m\\x5cx"
    assert parse_dhcp(message(b"\x0c\x40short")).host_name is None  # the option runs past the data


def test_not_dhcp():
    assert parse_dhcp(b"") is None and parse_dhcp(message(b"", op=3)) is None
    assert parse_dhcp(HEAD + b"\x00\x00\x00\x00") is None  # no magic cookie


def test_option_walk_is_bounded_and_flagged():
    msg = parse_dhcp(message(b"\x00" * 5000 + b"\x0c\x01x\xff"))
    assert msg.limited and msg.host_name is None
    assert not parse_dhcp(message(b"\x00" * (MAX_OPTIONS - 1) + b"\xff")).limited


@fuzz
@settings(max_examples=examples(300), deadline=None)
@given(st.binary(max_size=400))
def test_random_options_never_raise(body):
    msg = parse_dhcp(message(body))
    assert msg is not None
    for name in (msg.host_name, msg.client_fqdn):
        assert name is None or all(0x21 <= ord(c) <= 0x7E for c in name)
