"""TLS ClientHello dissector: server name (SNI), ALPN and versions from a client's first bytes.

Pure and hostile-input safe: every function returns a status or ``None`` instead of raising,
and the work is linear in the bytes looked at (at most one ClientHello of ``MAX_HELLO_BYTES``).

Two entry points share one body parser:

* :func:`parse_client_hello` reads the TLS *record layer* (a TCP stream's first bytes, possibly
  cut short, with the handshake message possibly fragmented over several records);
* :func:`parse_handshake_client_hello` reads a bare handshake message (type 1, 24-bit length,
  body), as QUIC carries it in CRYPTO frames.

Host names and ALPN ids come back as harmless ASCII text (see :func:`safe_text`).
"""
from __future__ import annotations

import struct

from dataclasses import dataclass

__all__ = [
    "LIMIT", "MALFORMED", "MAX_HELLO_BYTES", "NEED_MORE", "NOT_TLS", "OK",
    "ClientHello", "parse_client_hello", "parse_handshake_client_hello", "safe_text",
]

OK = "ok"
NEED_MORE = "need-more"
NOT_TLS = "not-tls"
MALFORMED = "malformed"
LIMIT = "limit"  # more records, extensions or list items than any real ClientHello has

#: Largest ClientHello (handshake header included) accepted; real ones are 0.2-3 KiB
#: (a few KiB more with post-quantum key shares). Anything longer is called malformed.
MAX_HELLO_BYTES = 1 << 16
#: Largest TLSPlaintext fragment (RFC 8446 5.1); handshake records must be non-empty.
MAX_RECORD_BYTES = 1 << 14
#: Per-hello work bounds (docs/security.md). Real hellos: 1-3 records, ~20 extensions, one
#: server name, a few ALPN ids. Beyond these the status is LIMIT (counted as tls-limit).
MAX_RECORDS = 64
MAX_EXTENSIONS = 128
MAX_LIST_ITEMS = 64


class _Limit(Exception):
    """Internal signal: a work bound was reached; never escapes the entry points."""

_HANDSHAKE = 22
_CLIENT_HELLO = 1
_EXT_SERVER_NAME = 0
_EXT_ALPN = 16
_EXT_SUPPORTED_VERSIONS = 43

# Printable ASCII except backslash stays; every other byte becomes a \xNN escape.
_ESCAPES = [chr(b) if 0x21 <= b <= 0x7E and b != 0x5C else f"\\x{b:02x}" for b in range(256)]


@dataclass(frozen=True)
class ClientHello:
    """What a ClientHello says in clear text.

    ``sni``: the first host_name of the server_name extension as :func:`safe_text` (lower-case,
    trailing dot stripped), ``None`` without the extension. ``alpn``: offered protocol ids in
    order, escaped but case kept. ``legacy_version``: the ClientHello's version field (0x0303
    for TLS 1.2 and 1.3). ``supported_versions``: the supported_versions extension as sent
    (GREASE values included), empty without it.
    """

    sni: str | None
    alpn: tuple[str, ...]
    legacy_version: int
    supported_versions: tuple[int, ...]


def safe_text(raw: bytes, *, host: bool = False) -> str:
    """Decode hostile bytes to inert ASCII: bytes outside 0x21-0x7E, and backslash, become ``\\xNN``.

    With ``host=True`` the result is lower-cased and one trailing dot is stripped
    (``WWW.Example.COM.`` -> ``www.example.com``).
    """
    text = "".join([_ESCAPES[b] for b in raw])
    if host:
        text = text.lower()
        if text.endswith("."):
            text = text[:-1]
    return text


def parse_client_hello(stream: bytes) -> tuple[str, ClientHello | None]:
    """Parse the ClientHello at the start of a client's TCP byte stream.

    ``stream`` is the client's first bytes in sequence order (may be cut short). Returns
    ``("ok", hello)``, or ``(status, None)`` with status ``"need-more"`` (a handshake record
    started, the ClientHello is not complete yet: call again with more bytes), ``"not-tls"``
    (does not start like a TLS handshake record) or ``"malformed"`` (TLS record framing but bad
    lengths, a non-ClientHello first message, or an inconsistent ClientHello).
    """
    try:
        return _parse_records(memoryview(bytes(stream)))
    except _Limit:
        return LIMIT, None
    except Exception:  # pragma: no cover - defensive: the walk below is written not to raise
        return MALFORMED, None


def parse_handshake_client_hello(msg: bytes) -> ClientHello | None:
    """Parse a bare handshake message (type 1 + 24-bit length + body); ``None`` unless valid.

    Bytes after the message are ignored (a QUIC CRYPTO stream may carry nothing else, but a
    caller need not cut it exactly).
    """
    try:
        view = memoryview(bytes(msg))
        if len(view) < 4 or view[0] != _CLIENT_HELLO:
            return None
        length = int.from_bytes(view[1:4], "big")
        if length + 4 > MAX_HELLO_BYTES or len(view) < 4 + length:
            return None
        return _parse_body(view[4:4 + length])
    except Exception:  # _Limit too: a QUIC hello past the bounds gives no name
        return None


def _parse_records(data: memoryview) -> tuple[str, ClientHello | None]:
    """Walk handshake records, gathering fragments until the first handshake message is whole."""
    if len(data) == 0:
        return NEED_MORE, None
    if data[0] != _HANDSHAKE:
        return NOT_TLS, None
    fragments: list[memoryview] = []
    have = 0          # handshake bytes gathered so far
    need = -1         # 4 + message length once the handshake header is known
    pos = 0
    while True:
        if len(fragments) >= MAX_RECORDS:
            raise _Limit
        header = data[pos:pos + 5]
        # Judge whatever part of the record header is present before asking for more.
        if len(header) >= 1 and header[0] != _HANDSHAKE:
            return MALFORMED, None      # another record type inside the ClientHello
        if len(header) >= 2 and header[1] != 3:
            return (NOT_TLS if pos == 0 else MALFORMED), None
        if len(header) >= 3 and header[2] > 4:
            return (NOT_TLS if pos == 0 else MALFORMED), None
        if len(header) < 5:
            return NEED_MORE, None
        rec_len = (header[3] << 8) | header[4]
        if rec_len == 0 or rec_len > MAX_RECORD_BYTES:
            return MALFORMED, None
        body = data[pos + 5:pos + 5 + rec_len]  # may be short: the stream is cut
        fragments.append(body)
        have += len(body)
        pos += 5 + len(body)
        if need < 0 and have >= 4:
            head = bytes(fragments[0][:4]) if len(fragments[0]) >= 4 else b"".join(fragments)[:4]
            if head[0] != _CLIENT_HELLO:
                return MALFORMED, None
            need = 4 + int.from_bytes(head[1:4], "big")
            if need > MAX_HELLO_BYTES:
                return MALFORMED, None
        if need >= 0 and have >= need:
            message = b"".join(fragments)[:need]
            hello = _parse_body(memoryview(message)[4:])
            return (OK, hello) if hello is not None else (MALFORMED, None)
        if len(body) < rec_len:
            return NEED_MORE, None      # the stream stops inside this record


class _Reader:
    """Bounds-checked big-endian reads over a memoryview; ``None`` marks running past the end."""

    __slots__ = ("buf", "pos")

    def __init__(self, buf: memoryview):
        self.buf = buf
        self.pos = 0

    def left(self) -> int:
        return len(self.buf) - self.pos

    def uint(self, size: int) -> int | None:
        if self.left() < size:
            return None
        value = int.from_bytes(self.buf[self.pos:self.pos + size], "big")
        self.pos += size
        return value

    def take(self, size: int) -> memoryview | None:
        if size < 0 or self.left() < size:
            return None
        chunk = self.buf[self.pos:self.pos + size]
        self.pos += size
        return chunk

    def vector(self, len_size: int) -> memoryview | None:
        """A length-prefixed vector; ``None`` if its length runs past the end."""
        size = self.uint(len_size)
        return None if size is None else self.take(size)


_U16 = struct.Struct(">H").unpack_from
_U16X2 = struct.Struct(">HH").unpack_from


def _parse_body(body: memoryview) -> ClientHello | None:
    """Parse a ClientHello body (after the 4-byte handshake header); ``None`` if inconsistent.

    Offsets over one bytes object with struct (about 10x faster than a reader object per
    field: this runs once per TLS flow on the hot path of classification).
    """
    b = bytes(body)
    n = len(b)
    if n < 35:
        return None
    legacy_version = _U16(b, 0)[0]
    sid = b[34]
    p = 35 + sid
    if sid > 32 or p + 2 > n:
        return None
    suites = _U16(b, p)[0]
    p += 2
    if suites < 2 or suites % 2 or p + suites + 1 > n:
        return None
    p += suites
    comp = b[p]
    p += 1
    if comp < 1 or p + comp > n:
        return None
    p += comp
    if p == n:                    # no extensions at all (SSL 3.0 / TLS 1.0 style)
        return ClientHello(None, (), legacy_version, ())
    if p + 2 > n or p + 2 + _U16(b, p)[0] != n:
        return None
    p += 2
    sni: str | None = None
    alpn: tuple[str, ...] = ()
    versions: tuple[int, ...] = ()
    seen: set[int] = set()
    view = memoryview(b)
    while p < n:
        if p + 4 > n:
            return None
        if len(seen) >= MAX_EXTENSIONS:
            raise _Limit
        ext_type, size = _U16X2(b, p)
        p += 4
        if p + size > n or ext_type in seen:
            return None            # truncated extension or a duplicate (RFC 8446 4.2)
        seen.add(ext_type)
        data = view[p:p + size]
        p += size
        if ext_type == _EXT_SERVER_NAME:
            good, sni = _server_name(data)
            if not good:
                return None
        elif ext_type == _EXT_ALPN:
            parsed_alpn = _alpn(data)
            if parsed_alpn is None:
                return None
            alpn = parsed_alpn
        elif ext_type == _EXT_SUPPORTED_VERSIONS:
            parsed_versions = _supported_versions(data)
            if parsed_versions is None:
                return None
            versions = parsed_versions
    return ClientHello(sni, alpn, legacy_version, versions)


def _server_name(data: memoryview) -> tuple[bool, str | None]:
    """RFC 6066 3: ServerNameList -> (well formed, first host_name (type 0) escaped or None)."""
    r = _Reader(data)
    names = r.vector(2)
    if names is None or r.left() != 0 or len(names) == 0:
        return False, None
    lst = _Reader(names)
    first: str | None = None
    for _ in _bounded(lst):
        name_type = lst.uint(1)
        name = lst.vector(2)
        if name_type is None or name is None or len(name) == 0:
            return False, None
        if name_type == 0 and first is None:
            first = safe_text(bytes(name), host=True)
    return True, first


def _bounded(lst: "_Reader"):
    """Steps while `lst` has bytes left, at most MAX_LIST_ITEMS of them."""
    for _ in range(MAX_LIST_ITEMS):
        if not lst.left():
            return
        yield
    if lst.left():
        raise _Limit


def _alpn(data: memoryview) -> tuple[str, ...] | None:
    """RFC 7301 3.1: ProtocolNameList of non-empty 8-bit-length names."""
    r = _Reader(data)
    names = r.vector(2)
    if names is None or r.left() != 0 or len(names) == 0:
        return None
    lst = _Reader(names)
    out = []
    for _ in _bounded(lst):
        name = lst.vector(1)
        if name is None or len(name) == 0:
            return None
        out.append(safe_text(bytes(name)))
    return tuple(out)


def _supported_versions(data: memoryview) -> tuple[int, ...] | None:
    """RFC 8446 4.2.1 (client form): an 8-bit-length list of 16-bit versions."""
    r = _Reader(data)
    lst = r.vector(1)
    if lst is None or r.left() != 0 or len(lst) < 2 or len(lst) % 2:
        return None
    return tuple(int.from_bytes(lst[i:i + 2], "big") for i in range(0, len(lst), 2))
