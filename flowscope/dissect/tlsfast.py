"""A compiled first pass over a TLS ClientHello: the common case, checked as tls.py checks it.

One handshake record holding the whole ClientHello is what nearly every client sends first
(the benchmark's 20k-flow capture: all 8k hellos). For it, `client_hello` finds the server
name, ALPN list and supported_versions in one compiled scan and returns the same ClientHello
as the Python dissector (tls.parse_client_hello), about 5x sooner. Anything else (several
records, a cut-short hello, a bound reached, anything malformed) returns None, and the caller
runs the Python dissector, which stays the reference: tests/dissect/test_tlsfast.py holds the
two equal on crafted, corpus and fuzzed hellos.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from flowscope._jit import configure_cache
from flowscope.dissect.tls import (
    MAX_EXTENSIONS, MAX_HELLO_BYTES, MAX_LIST_ITEMS, MAX_RECORD_BYTES, ClientHello, safe_text,
)

configure_cache()

# out[]: found, legacy_version, then (offset, length) of the first host_name, the ALPN
# protocol list and the supported_versions list (offset -1: the extension is absent)
_FOUND, _LEGACY, _SNI, _ALPN, _VERSIONS = 0, 1, 2, 4, 6
_EXT_SERVER_NAME, _EXT_ALPN, _EXT_VERSIONS = 0, 16, 43


@njit(cache=True)
def _u16(b, p):
    return (np.int64(b[p]) << 8) | np.int64(b[p + 1])


@njit(cache=True)
def _names_ok(b, p, end, alpn):
    """A 16-bit-length list that fills [p, end) exactly, of non-empty names: host names
    (type byte, 16-bit length) or, with `alpn`, protocol ids (8-bit length). Returns the
    offset of the first host_name (type 0) or of the list, -1 for none, -2 when not well
    formed or past a bound."""
    if end - p < 2 or p + 2 + _u16(b, p) != end or _u16(b, p) == 0:
        return -2
    q, items, first = p + 2, 0, -1
    while q < end:
        if items >= MAX_LIST_ITEMS:
            return -2
        items += 1
        if alpn:
            size = np.int64(b[q])
            q += 1
        else:
            kind = b[q]
            q += 1
            if q + 2 > end:
                return -2
            size = _u16(b, q)
            q += 2
            if kind == 0 and first < 0:
                first = q
        if size == 0 or q + size > end:
            return -2
        q += size
    return p + 2 if alpn else first


@njit(cache=True)
def _scan(b, out):
    out[:] = -1
    out[_FOUND] = 0
    n = len(b)
    if n < 9 or b[0] != 22 or b[1] != 3 or b[2] > 4:
        return
    record = _u16(b, 3)
    if record == 0 or record > MAX_RECORD_BYTES or b[5] != 1:
        return
    length = (np.int64(b[6]) << 16) | (np.int64(b[7]) << 8) | np.int64(b[8])
    if 4 + length > MAX_HELLO_BYTES or 4 + length > min(record, n - 5) or length < 35:
        return
    s, e = 9, 9 + length
    legacy = _u16(b, s)
    sid = np.int64(b[s + 34])
    p = s + 35 + sid
    if sid > 32 or p + 2 > e:
        return
    suites = _u16(b, p)
    p += 2
    if suites < 2 or suites % 2 or p + suites + 1 > e:
        return
    p += suites
    comp = np.int64(b[p])
    p += 1
    if comp < 1 or p + comp > e:
        return
    p += comp
    out[_LEGACY] = legacy
    if p == e:
        out[_FOUND] = 1
        return
    if p + 2 > e or p + 2 + _u16(b, p) != e:
        return
    p += 2
    seen = np.empty(MAX_EXTENSIONS, np.int64)
    count = 0
    while p < e:
        if p + 4 > e or count >= MAX_EXTENSIONS:
            return
        kind, size = _u16(b, p), _u16(b, p + 2)
        p += 4
        if p + size > e:
            return
        for j in range(count):
            if seen[j] == kind:
                return
        seen[count] = kind
        count += 1
        start, p = p, p + size
        if kind == _EXT_SERVER_NAME:
            first = _names_ok(b, start, p, False)
            if first == -2:
                return
            if first >= 0:
                out[_SNI], out[_SNI + 1] = first, _u16(b, first - 2)
        elif kind == _EXT_ALPN:
            first = _names_ok(b, start, p, True)
            if first == -2:
                return
            out[_ALPN], out[_ALPN + 1] = first, p - first
        elif kind == _EXT_VERSIONS:
            if size < 1 or np.int64(b[start]) + 1 != size or size < 3 or (size - 1) % 2:
                return
            out[_VERSIONS], out[_VERSIONS + 1] = start + 1, size - 1
    out[_FOUND] = 1


def client_hello(stream: bytes) -> ClientHello | None:
    """The ClientHello of a stream whose first record holds all of it; None: ask tls.py."""
    stream = bytes(stream)
    found = np.empty(8, np.int64)
    _scan(np.frombuffer(stream, np.uint8), found)
    out = found.tolist()  # Python ints: cheaper to read than numpy scalars
    if not out[_FOUND]:
        return None
    at, size = out[_SNI], out[_SNI + 1]
    sni = safe_text(stream[at:at + size], host=True) if at >= 0 else None
    alpn: tuple = ()
    at, size = out[_ALPN], out[_ALPN + 1]
    if at >= 0:
        names, q = [], at
        while q < at + size:
            names.append(safe_text(stream[q + 1:q + 1 + stream[q]]))
            q += 1 + stream[q]
        alpn = tuple(names)
    at, size = out[_VERSIONS], out[_VERSIONS + 1]
    versions = tuple(int.from_bytes(stream[i:i + 2], "big") for i in range(at, at + size, 2)) if at >= 0 else ()
    return ClientHello(sni, alpn, out[_LEGACY], versions)
