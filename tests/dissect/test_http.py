"""flowscope.dissect.http: Host of an HTTP/1.x request, on valid, cut and hostile input."""
from __future__ import annotations

import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from fuzzing import examples, fuzz

from flowscope.dissect.http import MAX_HEADER_LINES, MAX_SCAN, http_host, request_host

SAFE = re.compile(r"(?:[!-@\[\]-~]|\\x[0-9a-f]{2})+")

REQUEST = (b"GET /v2/exist?cc=39 HTTP/1.1\r\nUser-Agent: WhatsApp/2.19\r\n"
           b"Host: v.whatsapp.net\r\nAccept: */*\r\n\r\n")


@pytest.mark.parametrize("data, host", [
    (REQUEST, "v.whatsapp.net"),
    (b"GET / HTTP/1.1\r\nhost: MMG.WhatsApp.NET:443\r\n\r\n", "mmg.whatsapp.net"),
    (b"POST /x HTTP/1.0\r\nHOST:static.whatsapp.net.\r\n\r\n", "static.whatsapp.net"),
    (b"GET / HTTP/1.1\nHost: \t bare-lf.example \t\n\n", "bare-lf.example"),
    (b"GET / HTTP/1.1\r\nHost: [2A03:2880:F208:00C5:FACE:B00C:0:167]:8080\r\n\r\n",
     "2a03:2880:f208:c5:face:b00c:0:167"),
    (b"GET / HTTP/1.1\r\nHost: [::1]\r\n\r\n", "::1"),
    (b"GET / HTTP/1.1\r\nHost: 157.240.20.53:80\r\n\r\n", "157.240.20.53"),
    (b"GET / HTTP/1.1\r\nHost: first.example\r\nHost: second.example\r\n\r\n", "first.example"),
    # absolute form (proxy requests): the target's authority wins over the Host header
    (b"GET http://user:pw@G.WhatsApp.net:5222/path?q HTTP/1.1\r\nHost: other\r\n\r\n",
     "g.whatsapp.net"),
    (b"GET https://[2001:db8::1]:443/ HTTP/1.1\r\n", "2001:db8::1"),
    (b"CONNECT web.whatsapp.com:443 HTTP/1.1\r\nHost: web.whatsapp.com:443\r\n\r\n",
     "web.whatsapp.com"),
    # hostile bytes come back escaped
    (b"GET / HTTP/1.1\r\nHost: ev\xffil\\ h\x00st.Example\r\n\r\n",
     r"ev\xffil\x5c\x20h\x00st.example"),
])
def test_host(data, host):
    assert http_host(data) == host


@pytest.mark.parametrize("data", [
    b"GET / HTTP/1.1\r\nUser-Agent: x\r\n\r\n",                  # no Host
    b"GET / HTTP/1.1\r\nUser-Agent: x\r\n\r\nHost: body.example\r\n",  # Host after the headers
    b"GET / HTTP/1.1\r\nHost:\r\n\r\n",                            # empty Host
    b"GET / HTTP/1.1\r\nHost: cut.exa",                            # Host line cut short
    b"GET / HTTP/1.1\r\nX-Host: a\r\n Host: b\r\nHost : c\r\n\r\n",  # not a Host header
    b"GET / HTTP/1.1",                                               # request line cut short
    b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",                          # not HTTP/1.x
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",                           # HTTP/2 preface
    b"HTTP/1.1 200 OK\r\nHost: a\r\n\r\n",                         # a response
    b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",                         # two spaces
    b"G\x00T / HTTP/1.1\r\nHost: a\r\n\r\n",                       # bad method token
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",               # TLS ClientHello
    b"WA\x05\x02\x00\x00\x10",                                     # WhatsApp prologue
    b"",
])
def test_no_host(data):
    assert http_host(data) is None


def test_scan_is_bounded_to_8_kib():
    padding = b"X-Pad: " + b"a" * 100 + b"\r\n"
    head = b"GET / HTTP/1.1\r\n" + padding * 70
    assert http_host(head + b"Host: near.example\r\n\r\n") == "near.example"
    far = head + padding * (MAX_SCAN // len(padding)) + b"Host: far.example\r\n\r\n"
    assert http_host(far) is None


def test_every_prefix_is_none_or_the_host():
    for cut in range(len(REQUEST) + 1):
        assert http_host(REQUEST[:cut]) in (None, "v.whatsapp.net")
    assert http_host(REQUEST[:REQUEST.index(b"\r\nAccept")]) is None
    assert http_host(REQUEST[:REQUEST.index(b"\r\nAccept") + 2]) == "v.whatsapp.net"


def timed_host(data: bytes):
    start = time.perf_counter()
    host = http_host(data)
    assert time.perf_counter() - start < 1.0
    assert host is None or SAFE.fullmatch(host)
    return host


@fuzz
@settings(max_examples=examples(300), deadline=None)
@given(st.binary(max_size=400))
def test_fuzz_random_bytes(data):
    timed_host(data)
    timed_host(b"GET / HTTP/1.1\r\nHost: " + data)
    timed_host(b"GET http://" + data)


@fuzz
@settings(max_examples=examples(200), deadline=None)
@given(st.integers(0, len(REQUEST) - 1), st.binary(min_size=1, max_size=8))
def test_fuzz_mutated_request(where, junk):
    timed_host(REQUEST[:where] + junk + REQUEST[where + len(junk):])


def test_long_hostile_input_is_fast():
    timed_host(b"GET " + b"/" * 10_000_000 + b" HTTP/1.1\r\n")
    timed_host(b"GET / HTTP/1.1\r\n" + b"\n" * 10_000_000)
    timed_host(b"GET / HTTP/1.1\r\nHost: " + b"[" * 10_000_000)


def test_header_lines_are_bounded_and_flagged():
    """Per-request work bound: the Host header after MAX_HEADER_LINES lines is not looked for."""
    late = b"GET / HTTP/1.1\r\n" + b"A: b\r\n" * MAX_HEADER_LINES + b"Host: late.example.org\r\n\r\n"
    assert request_host(late) == (None, True)
    early = b"GET / HTTP/1.1\r\n" + b"A: b\r\n" * (MAX_HEADER_LINES - 1) + b"Host: ok.example.org\r\n\r\n"
    assert request_host(early) == ("ok.example.org", False) and http_host(early) == "ok.example.org"
