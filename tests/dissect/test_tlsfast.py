"""The compiled ClientHello pass (dissect/tlsfast.py) against the Python dissector (tls.py),
the reference: where the fast pass answers, the reference answers "ok" with the same hello;
where it declines (None), the reference decides. Crafted, corpus and fuzzed hellos."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from fuzzing import examples, fuzz

from flowscope.dissect import tlsfast
from flowscope.dissect.tls import parse_client_hello
from test_tls import (
    PCAPS, STREAM, TLS_PCAPS, alpn_ext, ext, handshake, hello_body, mutate, needs_corpus, records, sample_hello,
    sni_ext,
    tcp_client_streams, test_malformed, versions_ext,
)


def agrees(stream: bytes) -> bool:
    """The property; True when the fast pass answered (not declined)."""
    fast = tlsfast.client_hello(stream)
    if fast is not None:
        assert parse_client_hello(stream) == ("ok", fast)
    return fast is not None


WELL_FORMED = [
    STREAM,
    STREAM + b"\x17\x03\x03\x00\x10" + bytes(16),                       # bytes after the hello
    records(handshake(hello_body(None))),                                # no extensions
    records(handshake(hello_body(b""))),                                 # an empty extension block
    records(handshake(hello_body(sni_ext(b"a.example", name_type=7)))),   # no host_name
    records(handshake(hello_body(ext(0, b"\x00\x0c\x07\x00\x01z\x00\x00\x05WWW.A")))),  # type 7, then a host
    records(handshake(hello_body(alpn_ext(b"h2", b"\\\x00\xff") + sni_ext(b"Evil\x00.example.")))),
    records(handshake(hello_body(versions_ext(0x0304) + sni_ext(b"web.whatsapp.com")))),
    records(sample_hello(b"mmg.whatsapp.net"), version=0x0303),
]


@pytest.mark.parametrize("stream", WELL_FORMED)
def test_well_formed_single_record_hellos_take_the_fast_pass(stream):
    assert agrees(stream)


@pytest.mark.parametrize("stream", [
    records(sample_hello(), [40]),                  # two records: the reference's job
    STREAM[:60],                                    # cut short: need-more
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"",
    records(handshake(hello_body(b"".join(ext(0x1000 + i, b"") for i in range(200))))),  # past MAX_EXTENSIONS
])
def test_the_rest_is_declined(stream):
    assert not agrees(stream)


def test_malformed_hellos_are_declined():
    """Every case the reference calls malformed (test_tls.test_malformed's list)."""
    for mark in test_malformed.pytestmark:
        if mark.name == "parametrize":
            for param in mark.args[1]:
                assert not agrees(param.values[0])


@needs_corpus
@pytest.mark.parametrize("pcap", TLS_PCAPS)
def test_corpus_client_streams(pcap):
    streams = tcp_client_streams(PCAPS / pcap)
    fast = sum(agrees(s) for s in streams.values())
    hellos = sum(parse_client_hello(s)[0] == "ok" for s in streams.values())
    assert hellos == 0 or fast >= 1  # real hellos do take the fast pass


@fuzz
@settings(max_examples=examples(600), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_hellos(data):
    stream = mutate(data, data.draw(st.sampled_from(WELL_FORMED)))
    agrees(bytes(stream))


@fuzz
@settings(max_examples=examples(300), deadline=None)
@given(st.binary(max_size=600))
def test_random_bodies(body):
    agrees(records(handshake(body)))
    agrees(b"\x16\x03\x01" + body)
