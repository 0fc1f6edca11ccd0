"""The host an HTTP/1.x request names, from the first bytes of a client's TCP stream.

Pure and stdlib-only; runs on hostile input: never raises, looks at the first `MAX_SCAN`
bytes only, and all matching is linear. The request line must be complete
(``method SP target SP HTTP/1.x`` then CRLF or a bare LF); header lines count only when
their line end was captured, so a Host header cut short never yields a truncated name.

Which host (RFC 7230 §5.4): the authority of an absolute-form target
(``GET http://host:port/path HTTP/1.1``, proxy style) or of a CONNECT request's
authority-form target wins over the Host header; otherwise the first Host header (header
names case-insensitive). The port and any userinfo are dropped, an IPv6 literal
``[addr]:port`` gives the address in canonical text without brackets, and the result is
lower-case safe text with one trailing dot removed (see `flowscope.dissect.dns.safe_name`).
"""
from __future__ import annotations

import re
from ipaddress import IPv6Address

from flowscope.dissect.dns import safe_name

MAX_SCAN = 8192      # bytes of the stream looked at
MAX_METHOD = 24      # longest method token accepted
MAX_HEADER_LINES = 100  # header lines read (Apache's LimitRequestFields); beyond: no host, `limited`

# method token (RFC 7230 tchar), one space, target (no space or control), HTTP/1.x, line end
REQUEST_LINE = re.compile(
    rb"([!#$%&'*+.^_`|~0-9A-Za-z-]{1," + str(MAX_METHOD).encode() + rb"}) ([^\x00-\x20\x7f]+) HTTP/1\.[0-9]\r?\n")
ABSOLUTE_FORM = re.compile(rb"[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)")


def _host_of(authority: bytes) -> str | None:
    """Host of an authority ``[userinfo@]host[:port]``, as safe text; None if empty."""
    hostport = authority.rpartition(b"@")[2]
    if hostport.startswith(b"["):
        close = hostport.find(b"]")
        if close < 0:
            return None
        inner = hostport[1:close]
        try:
            return IPv6Address(inner.decode("ascii")).compressed
        except ValueError:  # IPvFuture, zone ids, garbage: keep it, escaped
            return safe_name(inner) or None
    host, colon, port = hostport.rpartition(b":")
    if not colon or not (port.isdigit() or port == b""):
        host = hostport
    return safe_name(host) or None


class _Limit(Exception):
    """Internal: MAX_HEADER_LINES read without the Host header."""


def _host_header(data: bytes, pos: int) -> bytes | None:
    """Value of the first complete Host header line after `pos`, None if there is none."""
    for _ in range(MAX_HEADER_LINES):
        eol = data.find(b"\n", pos)
        if eol < 0:
            return None  # end of the captured bytes: an incomplete line is not trusted
        line = data[pos:eol]
        pos = eol + 1
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            return None  # blank line: end of the header section
        name, colon, value = line.partition(b":")
        if colon and name.lower() == b"host":
            return value.strip(b" \t")
    raise _Limit


def http_host(data: bytes) -> str | None:
    """The host named by the HTTP/1.x request at the start of `data`; None if there is no
    HTTP/1.x request line, or no host (no Host header, or an empty one)."""
    return request_host(data)[0]


def request_host(data: bytes) -> tuple[str | None, bool]:
    """(http_host(data), whether MAX_HEADER_LINES stopped the search)."""
    try:
        return _request_host(data), False
    except _Limit:
        return None, True


def _request_host(data: bytes) -> str | None:
    data = bytes(data[:MAX_SCAN])
    request = REQUEST_LINE.match(data)
    if request is None:
        return None
    method, target = request.group(1), request.group(2)
    absolute = ABSOLUTE_FORM.match(target)
    if absolute is not None:
        return _host_of(absolute.group(1))
    if method == b"CONNECT":
        return _host_of(target)
    value = _host_header(data, request.end())
    return None if value is None else _host_of(value)
