"""QUIC Initial dissector: the ClientHello (SNI, ALPN) a client sends in its Initial packets.

Initial packets are encrypted with keys anyone can derive from the packet's Destination
Connection ID (RFC 9001 5.2, RFC 9369 3.3). This module derives them, removes header
protection, decrypts (AES-128-GCM), walks the frames, reassembles CRYPTO data by offset across
packets and datagrams, and hands the ClientHello to :mod:`flowscope.dissect.tls`.

Pure and hostile-input safe: :func:`parse_initial` never raises and bounds its work (at most
``MAX_DATAGRAMS`` datagrams, ``MAX_PACKETS_PER_DATAGRAM`` packets each, ``MAX_KEY_DERIVATIONS``
key derivations, ``MAX_CRYPTO_FRAMES`` CRYPTO frames and ``MAX_CRYPTO_BYTES`` of CRYPTO stream). Only AES needs the ``cryptography``
package; HKDF is HMAC-SHA256 from the standard library.

Supported versions and their initial salts (each checked against the source named):

==========================  ==========================================  ===========================
version                     salt                                        source
==========================  ==========================================  ===========================
0x00000001 (v1)             38762cf7f55934b34d179ae6a4c80cadccbb7f0a    RFC 9001 5.2, App. A
0x6b3343cf (v2)             0dede3def700a6db819381be6e269dcbf9bd2ed9    RFC 9369 3.3.1, App. A
0xff00001d-0xff000020       afbfec289993d24c9e9786f19c6111e04390a899    draft-ietf-quic-tls-29..32
  (draft-29..32)                                                        (Wireshark, nDPI, mvfst)
0xfaceb001 (mvfst d-22)     7fbcdb0e7c66bbe9193a96cd21519ebd7a02644a    mvfst kQuicDraft22Salt
0xfaceb002, 0xfaceb00e      c3eef712c72ebb5a11a7d2432bb46365bef9f502    mvfst getQuicVersionSalt
  (mvfst, mvfst exp.)                                                   (kQuicDraft23Salt); same in
                                                                        Wireshark and nDPI
==========================  ==========================================  ===========================

The mvfst versions are *not* on the draft-29 salt: mvfst, Wireshark and nDPI all use the
draft-23 salt for 0xfaceb002/0xfaceb00e, and a real mvfst capture decrypts only with it.
"""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from flowscope.decode.layout import QUIC_VERSIONS
from flowscope.dissect.tls import ClientHello, parse_handshake_client_hello

__all__ = [
    "DECRYPT_FAILED", "LIMIT", "MALFORMED", "MAX_CRYPTO_BYTES", "MAX_DATAGRAMS", "NEED_MORE",
    "NOT_QUIC", "OK", "UNKNOWN_VERSION", "InitialKeys", "VERSIONS", "derive_client_initial_keys",
    "hkdf_expand_label", "parse_initial",
]

OK = "ok"
NEED_MORE = "need-more"
NOT_QUIC = "not-quic"
UNKNOWN_VERSION = "unknown-version"
MALFORMED = "malformed"
DECRYPT_FAILED = "decrypt-failed"
LIMIT = "limit"  # no ClientHello within the bounds above (counted as quic-limit)

MAX_DATAGRAMS = 8
MAX_PACKETS_PER_DATAGRAM = 16
MAX_KEY_DERIVATIONS = 8
MAX_CRYPTO_BYTES = 64 * 1024
MAX_CRYPTO_FRAMES = 1024        # CRYPTO frames kept (Chrome scatters its hello over a few dozen)
MAX_CID_BYTES = 20


@dataclass(frozen=True)
class _Version:
    name: str
    salt: bytes
    label_prefix: str      # "quic" (v1 and drafts) or "quicv2" (RFC 9369)
    initial_type: int      # long-header packet type bits of an Initial packet


_SALT_V1 = bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a")
_SALT_V2 = bytes.fromhex("0dede3def700a6db819381be6e269dcbf9bd2ed9")
_SALT_DRAFT_29 = bytes.fromhex("afbfec289993d24c9e9786f19c6111e04390a899")
_SALT_DRAFT_23 = bytes.fromhex("c3eef712c72ebb5a11a7d2432bb46365bef9f502")
_SALT_DRAFT_22 = bytes.fromhex("7fbcdb0e7c66bbe9193a96cd21519ebd7a02644a")

# How each version's Initial packets are protected, by the names decode/layout.QUIC_VERSIONS
# gives them (the version numbers are listed there only).
_PROTECTION = {
    "v1": (_SALT_V1, "quic", 0b00), "v2": (_SALT_V2, "quicv2", 0b01),
    **{f"draft-{d}": (_SALT_DRAFT_29, "quic", 0b00) for d in range(29, 33)},
    "mvfst-draft-22": (_SALT_DRAFT_22, "quic", 0b00),
    "mvfst-draft-27": (_SALT_DRAFT_23, "quic", 0b00), "mvfst-experimental": (_SALT_DRAFT_23, "quic", 0b00),
}
#: Known versions -> how their Initial packets are protected.
VERSIONS: dict[int, _Version] = {v: _Version(name, *_PROTECTION[name]) for v, name in QUIC_VERSIONS.items()}

_PADDING, _PING, _ACK, _ACK_ECN, _CRYPTO = 0x00, 0x01, 0x02, 0x03, 0x06


@dataclass(frozen=True)
class InitialKeys:
    """Client Initial packet protection: AEAD key (16), IV (12), header-protection key (16)."""

    secret: bytes
    key: bytes
    iv: bytes
    hp: bytes


def hkdf_expand_label(secret: bytes, label: str, length: int, context: bytes = b"") -> bytes:
    """TLS 1.3 HKDF-Expand-Label with SHA-256 (RFC 8446 7.1; label prefix ``"tls13 "``)."""
    full = b"tls13 " + label.encode("ascii")
    info = length.to_bytes(2, "big") + bytes([len(full)]) + full + bytes([len(context)]) + context
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(secret, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def derive_client_initial_keys(dcid: bytes, version: int = 1) -> InitialKeys | None:
    """Client Initial keys for ``version`` from the client's first Destination Connection ID."""
    profile = VERSIONS.get(version)
    if profile is None:
        return None
    initial_secret = hmac.new(profile.salt, dcid, hashlib.sha256).digest()  # HKDF-Extract
    secret = hkdf_expand_label(initial_secret, "client in", 32)
    prefix = profile.label_prefix
    return InitialKeys(secret,
                       hkdf_expand_label(secret, f"{prefix} key", 16),
                       hkdf_expand_label(secret, f"{prefix} iv", 12),
                       hkdf_expand_label(secret, f"{prefix} hp", 16))


def parse_initial(datagrams: list[bytes]) -> tuple[str, ClientHello | None, int | None]:
    """Read the ClientHello from a QUIC connection's first client->server datagrams.

    Returns ``(status, hello, version)``. ``status`` is ``"ok"`` (``hello`` set),
    ``"need-more"`` (Initial data decrypted but the ClientHello is not complete: call again with
    more datagrams), ``"not-quic"`` (the first datagram is no QUIC long-header packet),
    ``"unknown-version"``, ``"malformed"`` (bad header or frame lengths, or a bad ClientHello)
    or ``"decrypt-failed"`` (Initial packets of a known version that no key opens).
    ``version`` is the first packet's version (``None`` when not QUIC).
    """
    try:
        return _Session().run(datagrams)
    except Exception:  # pragma: no cover - defensive: the code below is written not to raise
        return MALFORMED, None, None


def _varint(buf: bytes, pos: int) -> tuple[int, int] | None:
    """RFC 9000 16: a variable-length integer at ``pos`` -> (value, next position)."""
    if pos >= len(buf):
        return None
    first = buf[pos]
    size = 1 << (first >> 6)
    if pos + size > len(buf):
        return None
    value = first & 0x3F
    for i in range(1, size):
        value = (value << 8) | buf[pos + i]
    return value, pos + size


def _decode_packet_number(truncated: int, pn_len: int, largest: int) -> int:
    """RFC 9000 A.3: the full packet number closest to ``largest + 1``."""
    expected = largest + 1
    win = 1 << (pn_len * 8)
    half, mask = win // 2, win - 1
    candidate = (expected & ~mask) | truncated
    if candidate <= expected - half and candidate < (1 << 62) - win:
        return candidate + win
    if candidate > expected + half and candidate >= win:
        return candidate - win
    return candidate


class _Malformed(Exception):
    """Internal signal: a structural error; never escapes :func:`parse_initial`."""


class _Session:
    """State of one call: keys by (version, DCID), CRYPTO segments, what was seen."""

    def __init__(self) -> None:
        self.keys: dict[tuple[int, bytes], InitialKeys | None] = {}
        self.derivations = 0
        self.segments: list[tuple[int, bytes]] = []
        self.crypto_bytes = 0
        self.original_dcid: bytes | None = None
        self.largest_pn = -1
        self.seen_initial = False
        self.decrypted = False
        self.malformed = False
        self.limited = False  # a bound cut the work short (packets, derivations, CRYPTO frames)

    def run(self, datagrams: list[bytes]) -> tuple[str, ClientHello | None, int | None]:
        version: int | None = None
        for index, datagram in enumerate(list(datagrams)[:MAX_DATAGRAMS]):
            data = bytes(datagram)
            if index == 0:
                first = self._first_version(data)
                if isinstance(first, str):
                    return first, None, (None if first == NOT_QUIC else
                                         int.from_bytes(data[1:5], "big"))
                version = first
            self._datagram(data)
            status, hello = self._hello()
            if status != NEED_MORE:
                return status, hello, version
        if not datagrams:
            return NEED_MORE, None, None
        if self.malformed:
            return MALFORMED, None, version
        if self.limited:
            return LIMIT, None, version
        if self.decrypted:
            return NEED_MORE, None, version
        if self.seen_initial:
            return DECRYPT_FAILED, None, version
        return NEED_MORE, None, version

    @staticmethod
    def _first_version(data: bytes) -> int | str:
        """The first datagram decides QUIC or not, and whether its version is known."""
        if len(data) < 7 or not data[0] & 0x80:
            return NOT_QUIC
        version = int.from_bytes(data[1:5], "big")
        if version not in VERSIONS:
            # The fixed bit is only trusted for versions we cannot authenticate by decryption.
            return UNKNOWN_VERSION if data[0] & 0x40 else NOT_QUIC
        return version

    def _datagram(self, data: bytes) -> None:
        """Walk the coalesced packets of one datagram, each found by its Length field."""
        pos = 0
        for _ in range(MAX_PACKETS_PER_DATAGRAM):
            if len(data) - pos < 7 or not data[pos] & 0x80:
                return          # short header (1-RTT) or trailing bytes: nothing for us
            try:
                end = self._packet(data, pos)
            except _Malformed:
                self.malformed = True
                return
            if end is None:
                return
            pos = end
        self.limited |= len(data) - pos >= 7 and bool(data[pos] & 0x80)  # more packets than we walk

    def _packet(self, data: bytes, start: int) -> int | None:
        """Parse (and decrypt if Initial) the long-header packet at ``start``; its end or None."""
        version = int.from_bytes(data[start + 1:start + 5], "big")
        profile = VERSIONS.get(version)
        if profile is None:
            return None         # unknown version: no Length field we can trust
        pos = start + 5
        dcid_len = data[pos]
        dcid = data[pos + 1:pos + 1 + dcid_len]
        pos += 1 + dcid_len
        if dcid_len > MAX_CID_BYTES or pos >= len(data):
            raise _Malformed
        scid_len = data[pos]
        pos += 1 + scid_len
        if scid_len > MAX_CID_BYTES or pos > len(data):
            raise _Malformed
        packet_type = (data[start] >> 4) & 0x03
        is_initial = packet_type == profile.initial_type
        retry_type = 0b11 if profile.initial_type == 0 else 0b00
        if packet_type == retry_type:
            return None         # Retry has no Length; clients never send it
        if is_initial:
            token = _varint(data, pos)
            if token is None or token[1] + token[0] > len(data):
                raise _Malformed
            pos = token[1] + token[0]
        length = _varint(data, pos)
        if length is None:
            raise _Malformed
        pn_offset = length[1]
        end = pn_offset + length[0]
        if end > len(data) or length[0] < 20:   # room for the 4-byte pn sample offset + 16
            raise _Malformed
        if is_initial:
            self.seen_initial = True
            if self.original_dcid is None:
                self.original_dcid = dcid
            self._open(data, start, pn_offset, end, version, dcid)
        return end

    def _keys(self, version: int, dcid: bytes) -> InitialKeys | None:
        cache_key = (version, dcid)
        if cache_key not in self.keys:
            if self.derivations >= MAX_KEY_DERIVATIONS:
                self.limited = True
                return None
            self.derivations += 1
            self.keys[cache_key] = derive_client_initial_keys(dcid, version)
        return self.keys[cache_key]

    def _open(self, data: bytes, start: int, pn_offset: int, end: int, version: int,
              dcid: bytes) -> None:
        """Try the keys of the first DCID, then (after a Retry) the packet's own DCID."""
        candidates = [self.original_dcid] if self.original_dcid is not None else []
        if dcid not in candidates:
            candidates.append(dcid)
        for cid in candidates:
            keys = self._keys(version, cid)
            if keys is None:
                continue
            payload = _unprotect(keys, data, start, pn_offset, end, self.largest_pn)
            if payload is not None:
                self.decrypted = True
                self.largest_pn = max(self.largest_pn, payload[0])
                self._frames(payload[1])
                return

    def _frames(self, payload: bytes) -> None:
        """Frames allowed in Initial packets (RFC 9000 12.4); stop at anything else."""
        pos, n = 0, len(payload)
        while pos < n:
            frame = _varint(payload, pos)
            if frame is None:
                raise _Malformed
            ftype, pos = frame
            if ftype == _PADDING:
                pos = n - len(payload[pos:].lstrip(b"\x00"))
            elif ftype == _PING:
                continue
            elif ftype == _CRYPTO:
                pos = self._crypto(payload, pos)
            elif ftype in (_ACK, _ACK_ECN):
                pos = _skip_ack(payload, pos, ftype == _ACK_ECN)
            else:
                # CONNECTION_CLOSE ends the packet's useful content; any other type is not
                # allowed in Initial packets (RFC 9000 12.4) and its layout is unknown here.
                return

    def _crypto(self, payload: bytes, pos: int) -> int:
        offset = _varint(payload, pos)
        if offset is None:
            raise _Malformed
        length = _varint(payload, offset[1])
        if length is None or length[1] + length[0] > len(payload):
            raise _Malformed
        data_start, data_end = length[1], length[1] + length[0]
        seg_start = offset[0]
        if seg_start < MAX_CRYPTO_BYTES and self.crypto_bytes < 4 * MAX_CRYPTO_BYTES \
                and len(self.segments) < MAX_CRYPTO_FRAMES:
            keep = min(length[0], MAX_CRYPTO_BYTES - seg_start)
            if keep > 0:
                self.segments.append((seg_start, payload[data_start:data_start + keep]))
                self.crypto_bytes += keep
        elif len(self.segments) >= MAX_CRYPTO_FRAMES:
            self.limited = True
        return data_end

    def _hello(self) -> tuple[str, ClientHello | None]:
        """Status of the CRYPTO stream so far: whole ClientHello, bad, or need more."""
        stream = self._contiguous()
        if len(stream) < 4:
            return NEED_MORE, None
        if stream[0] != 0x01:
            return MALFORMED, None
        need = 4 + int.from_bytes(stream[1:4], "big")
        if need > MAX_CRYPTO_BYTES:
            return MALFORMED, None
        if len(stream) < need:
            return NEED_MORE, None
        hello = parse_handshake_client_hello(stream[:need])
        return (OK, hello) if hello is not None else (MALFORMED, None)

    def _contiguous(self) -> bytes:
        """The CRYPTO stream from offset 0 up to the first gap (earliest copy of a byte wins)."""
        out = bytearray()
        for seg_start, seg in sorted(self.segments, key=lambda s: s[0]):
            if seg_start > len(out):
                break
            tail = seg[len(out) - seg_start:]
            out += tail
        return bytes(out)


def _skip_varints(buf: bytes, pos: int, count: int) -> int:
    for _ in range(count):
        value = _varint(buf, pos)
        if value is None:
            raise _Malformed
        pos = value[1]
    return pos


def _skip_ack(buf: bytes, pos: int, ecn: bool) -> int:
    """ACK: largest, delay, range count, first range, count x (gap, length)[, 3 ECN counts]."""
    pos = _skip_varints(buf, pos, 2)
    count = _varint(buf, pos)
    if count is None or count[0] > len(buf):     # each range takes at least two bytes
        raise _Malformed
    pos = _skip_varints(buf, count[1], 1 + 2 * count[0])
    return _skip_varints(buf, pos, 3) if ecn else pos


def _unprotect(keys: InitialKeys, data: bytes, start: int, pn_offset: int, end: int,
               largest_pn: int) -> tuple[int, bytes] | None:
    """Remove header protection and decrypt one packet -> (packet number, plaintext) or None."""
    sample = data[pn_offset + 4:pn_offset + 20]
    if len(sample) != 16:
        return None
    encryptor = Cipher(algorithms.AES(keys.hp), modes.ECB()).encryptor()
    mask = encryptor.update(sample) + encryptor.finalize()
    first = data[start] ^ (mask[0] & 0x0F)
    pn_len = (first & 0x03) + 1
    if pn_offset + pn_len + 16 > end:
        return None
    pn_bytes = bytes(b ^ m for b, m in zip(data[pn_offset:pn_offset + pn_len], mask[1:1 + pn_len]))
    truncated = int.from_bytes(pn_bytes, "big")
    packet_number = _decode_packet_number(truncated, pn_len, largest_pn)
    header = bytes([first]) + data[start + 1:pn_offset] + pn_bytes
    nonce = bytes(a ^ b for a, b in zip(keys.iv, packet_number.to_bytes(12, "big")))
    try:
        plain = AESGCM(keys.key).decrypt(nonce, data[pn_offset + pn_len:end], header)
    except (InvalidTag, ValueError, OverflowError):
        return None
    return packet_number, plain
