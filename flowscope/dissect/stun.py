"""STUN (RFC 5389/8489, classic RFC 3489) and TURN (RFC 5766) messages from payload bytes.

Pure and stdlib-only; runs on hostile input, so it returns ``None`` instead of raising and
its work is linear in the input. Only attribute types and lengths are kept, never attribute
values, except the transport addresses that locate the parties of a call: MAPPED-ADDRESS and
XOR-MAPPED-ADDRESS (``mapped``), XOR-PEER-ADDRESS (``peers``), XOR-RELAYED-ADDRESS
(``relayed``).

Acceptance rules (RFC 5389 §6, §15):

* The first two bits of the type are 0; the length field plus the 20-byte header equals
  the data length exactly (one UDP payload is one message; a TCP stream holds several
  back to back - walk it with `parse_stun_stream`).
* With the magic cookie 0x2112A442 any method is accepted, including WhatsApp's
  0x0800-0x0802 whose method bits (0x200-0x202) no RFC assigns. Without the cookie the
  message is read as classic RFC 3489 only if its type is one of RFC 3489's six and every
  comprehension-required attribute (type < 0x8000) is one RFC 3489 defines (0x0001-0x000B);
  Zoom's look-alike messages (type 0x0001/0x0002 with attributes 0x0101/0x0103) fail this.
* Attributes are TLVs padded to 4 bytes and must end within the message; bad lengths give
  ``None``. One observed deviation is accepted: **WhatsApp leaves the last attribute
  unpadded** (its Allocate 0x0003 and 0x0800 messages carry one 102-byte 0x4000 attribute
  in a 106-byte body; nDPI's corpus, 2019 and 2023). With the cookie present, a last
  attribute that ends exactly at the message end without its padding is accepted, and only
  then may the length field be other than a multiple of 4.
* An address attribute with an unknown family or a length that does not match its family
  makes the message ``None``.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv6Address

# --- wire layouts (network byte order) --------------------------------------------------
HEADER = struct.Struct("!HHI")   # type, length (bytes after the header), magic cookie
HEADER_SIZE = 20                  # + 12-byte transaction id (16 with the classic id)
ATTR = struct.Struct("!HH")      # attribute type, value length (before padding)
ADDR = struct.Struct("!xBH")     # address attribute: reserved, family, port; then address
MAGIC_COOKIE = 0x2112A442

FAMILY_LEN = {0x01: 4, 0x02: 16}  # IPv4, IPv6: address bytes

CLASSES = ("request", "indication", "success", "error")
# RFC 3489 §11.1: Binding and Shared Secret request / response / error response
CLASSIC_TYPES = frozenset({0x0001, 0x0101, 0x0111, 0x0002, 0x0102, 0x0112})
CLASSIC_ATTRS = range(0x0001, 0x000C)  # MAPPED-ADDRESS .. REFLECTED-FROM

ATTR_MAPPED = 0x0001           # MAPPED-ADDRESS (plain)
ATTR_XOR_PEER = 0x0012         # XOR-PEER-ADDRESS (TURN)
ATTR_XOR_RELAYED = 0x0016      # XOR-RELAYED-ADDRESS (TURN)
ATTR_XOR_MAPPED = 0x0020       # XOR-MAPPED-ADDRESS
ATTR_XOR_MAPPED_OLD = 0x8020   # XOR-MAPPED-ADDRESS of the pre-RFC 5389 drafts
XOR_ATTRS = frozenset({ATTR_XOR_PEER, ATTR_XOR_RELAYED, ATTR_XOR_MAPPED, ATTR_XOR_MAPPED_OLD})
ADDRESS_FIELD = {ATTR_MAPPED: "mapped", ATTR_XOR_MAPPED: "mapped", ATTR_XOR_MAPPED_OLD: "mapped",
                 ATTR_XOR_PEER: "peers", ATTR_XOR_RELAYED: "relayed"}

MAX_ATTRIBUTES = 128  # per message (real ones: under 20); beyond it reading stops, `limited`
MAX_STREAM_MESSAGES = 1024  # per parse_stun_stream call

WHATSAPP_TYPES = range(0x0800, 0x0803)
WHATSAPP_ATTRS = frozenset({*range(0x4000, 0x4008), 0x4024, 0x4025})


@dataclass(frozen=True)
class StunMessage:
    msg_type: int
    method: int                       # 12 bits, from the interleaved type bits
    msg_class: str                    # request | indication | success | error
    transaction_id: bytes             # 12 bytes (16 for classic RFC 3489 messages)
    cookie: bool                      # magic cookie present (RFC 5389 and later)
    attributes: tuple[tuple[int, int], ...]  # (type, value length), in order
    mapped: tuple[tuple[str, int], ...]      # MAPPED-ADDRESS, XOR-MAPPED-ADDRESS
    peers: tuple[tuple[str, int], ...]       # XOR-PEER-ADDRESS
    relayed: tuple[tuple[str, int], ...]     # XOR-RELAYED-ADDRESS
    whatsapp: bool                    # WhatsApp message type or attribute present
    limited: bool = False             # attributes beyond MAX_ATTRIBUTES were not read


def split_type(msg_type: int) -> tuple[int, str]:
    """(method, class) of a message type: M11-M7 C1 M6-M4 C0 M3-M0 (RFC 5389 §6)."""
    method = (msg_type & 0x000F) | ((msg_type & 0x00E0) >> 1) | ((msg_type & 0x3E00) >> 2)
    klass = ((msg_type & 0x0100) >> 7) | ((msg_type & 0x0010) >> 4)
    return method, CLASSES[klass]


def _address(value: bytes, mask: bytes | None) -> tuple[str, int] | None:
    """Decode an address attribute value; `mask` = cookie + transaction id for XOR types."""
    if len(value) < ADDR.size:
        return None
    family, port = ADDR.unpack_from(value)
    size = FAMILY_LEN.get(family)
    if size is None or len(value) != ADDR.size + size:
        return None
    raw = value[ADDR.size:]
    if mask is not None:
        port ^= (mask[0] << 8) | mask[1]
        raw = bytes(a ^ b for a, b in zip(raw, mask))
    text = "%d.%d.%d.%d" % tuple(raw) if size == 4 else IPv6Address(raw).compressed
    return text, port


def parse_stun(data: bytes) -> StunMessage | None:
    """Decode one STUN/TURN message that fills `data` exactly; None if it is not one."""
    data = bytes(data)
    n = len(data)
    if n < HEADER_SIZE:
        return None
    msg_type, length, magic = HEADER.unpack_from(data)
    cookie = magic == MAGIC_COOKIE
    if msg_type & 0xC000 or HEADER_SIZE + length != n:
        return None
    if not cookie and (length % 4 or msg_type not in CLASSIC_TYPES):
        return None
    mask = data[4:HEADER_SIZE]  # XOR key: cookie, then transaction id (for IPv6)
    attributes: list[tuple[int, int]] = []
    found: dict[str, list[tuple[str, int]]] = {"mapped": [], "peers": [], "relayed": []}
    pos = HEADER_SIZE
    while pos < n and len(attributes) < MAX_ATTRIBUTES:
        if pos + ATTR.size > n:
            return None
        atype, alen = ATTR.unpack_from(data, pos)
        start = pos + ATTR.size
        end = start + alen
        padded = end + (-alen % 4)
        if padded > n and not (cookie and end == n):  # WhatsApp: unpadded last attribute
            return None
        if not cookie and atype < 0x8000 and atype not in CLASSIC_ATTRS:
            return None
        attributes.append((atype, alen))
        field = ADDRESS_FIELD.get(atype)
        if field is not None:
            addr = _address(data[start:end], mask if atype in XOR_ATTRS else None)
            if addr is None:
                return None
            found[field].append(addr)
        pos = padded
    method, klass = split_type(msg_type)
    whatsapp = msg_type in WHATSAPP_TYPES or any(t in WHATSAPP_ATTRS for t, _ in attributes)
    return StunMessage(
        msg_type=msg_type, method=method, msg_class=klass,
        transaction_id=data[8:HEADER_SIZE] if cookie else data[4:HEADER_SIZE],
        cookie=cookie, attributes=tuple(attributes), mapped=tuple(found["mapped"]),
        peers=tuple(found["peers"]), relayed=tuple(found["relayed"]), whatsapp=whatsapp, limited=pos < n)


def parse_stun_stream(stream: bytes) -> tuple[list[StunMessage], int]:
    """Walk STUN over TCP (RFC 5389 §7.2.2, TURN RFC 5766 §11.5): messages back to back,
    self-delimited by their length field, with TURN ChannelData frames (first two bits 01,
    padded to 4 over TCP) stepped over.

    Returns the messages and the bytes consumed. Stops at an incomplete last frame (left for
    the caller to retry with more data) and at anything that is neither STUN nor ChannelData
    (consumed up to there; the caller sees consumed < len and can count it).
    """
    stream = bytes(stream)
    n = len(stream)
    messages: list[StunMessage] = []
    pos = 0
    while pos + 4 <= n and len(messages) < MAX_STREAM_MESSAGES:
        first, length = ATTR.unpack_from(stream, pos)
        if first & 0xC000 == 0x4000:  # ChannelData: channel number 0x4000-0x7FFF
            end = pos + 4 + length + (-length % 4)
            if end > n:
                break
            pos = end
            continue
        if first & 0xC000:
            break
        end = pos + HEADER_SIZE + length
        if end > n:
            break
        msg = parse_stun(stream[pos:end])
        if msg is None:
            break
        messages.append(msg)
        pos = end
    return messages, pos
