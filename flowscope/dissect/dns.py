"""DNS messages (RFC 1035, RFC 3596 AAAA, RFC 7766 DNS over TCP) from payload bytes.

Pure and stdlib-only; runs on hostile input, so every function returns instead of raising
and does work bounded by the input length:

* **Partial answers, flagged.** `parse_dns` returns ``None`` when the header or any
  question does not decode (truncated header, question counts beyond the data, a bad name).
  Records are then read in order through the answer, authority and additional sections; at
  the first record that is truncated or malformed (a label over 63 bytes, a name over 255
  bytes, an unknown label type, a bad compression pointer, an A/AAAA record of the wrong
  size, a name in CNAME/NS/PTR data that does not end where the data ends) reading stops:
  the answers decoded before it are kept and the message says ``complete=False``. Every
  returned answer is exactly what the message holds; the caller counts incomplete messages.
  Real captures need this: a first IP fragment of a large (DNSSEC) response, or a frame cut
  by the snaplen, holds the whole answer section but not the rest. Bytes after the last
  record are ignored (link padding).
* **Compression pointers must point strictly before the start of the label run that
  contains them** (RFC 1035 §4.1.4: "a prior occurrence"). Every jump therefore lands
  lower than the last, which rules out loops (a pointer to itself, two pointers pointing
  at each other) and forward references; the number of jumps per name is capped as well
  (`MAX_JUMPS`), and decoded suffixes are memoised per message so that many names pointing
  at one long name cost no more than the long name once.
* **Names are safe plain text.** Each label is lower-cased and every byte outside the
  printable ASCII range 0x21-0x7E, the backslash and a dot *inside* a label are written as
  ``\\xNN``, so a label cannot masquerade as several (``b"g.whatsapp.net"`` as one label
  reads ``g\\x2ewhatsapp\\x2enet``). Labels are joined with dots; the root name is ``""``.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv6Address

# --- wire layouts (network byte order) --------------------------------------------------
HEADER = struct.Struct("!HHHHHH")  # id, flags, qdcount, ancount, nscount, arcount
QUESTION = struct.Struct("!HH")    # after the name: qtype, qclass
RECORD = struct.Struct("!HHIH")    # after the name: type, class, ttl (s), rdlength
LENGTH_PREFIX = struct.Struct("!H")  # DNS over TCP: message length before each message

FLAG_QR = 0x8000     # set in responses
RCODE_MASK = 0x000F  # low four bits of the flags (the OPT record's extension is ignored)

TYPE_A, TYPE_NS, TYPE_CNAME, TYPE_PTR, TYPE_AAAA = 1, 2, 5, 12, 28
NAME_TYPES = frozenset({TYPE_NS, TYPE_CNAME, TYPE_PTR})  # rdata is one domain name
ADDRESS_TYPES = frozenset({TYPE_A, TYPE_AAAA})

MAX_LABEL = 63        # bytes in one label (RFC 1035 §2.3.4)
MAX_NAME_WIRE = 255   # bytes of the uncompressed wire form, length octets and root included
MAX_JUMPS = 32        # compression pointers followed per name
MIN_QUESTION = 5      # root name (1) + qtype + qclass
# Per-message work bounds (docs/security.md): real messages hold one question (mDNS a few
# dozen) and tens of records; a 64 KiB TCP message could otherwise carry 13,000 questions
# and 6,000 records, and address_names() pairs them. Beyond these, `limited` is set.
MAX_QUESTIONS = 64
MAX_RECORDS = 512


@dataclass(frozen=True)
class DnsRecord:
    name: str    # owner name, lower-case, escaped
    rtype: int   # RR type (1 A, 5 CNAME, 28 AAAA, ...)
    ttl: int     # seconds, as sent (unsigned 32-bit)
    value: str   # A/AAAA: address text; CNAME/NS/PTR: target name; other types: ""


@dataclass(frozen=True)
class DnsMessage:
    id: int
    is_response: bool
    rcode: int
    questions: tuple[tuple[str, int], ...]  # (name, qtype)
    answers: tuple[DnsRecord, ...]          # the answer section only
    complete: bool = True                   # False: records stopped early (cut or malformed)
    limited: bool = False                   # True: stopped at MAX_QUESTIONS or MAX_RECORDS


# --- safe text ------------------------------------------------------------------------

def _table(escape_dot: bool) -> tuple[str, ...]:
    out = []
    for b in range(256):
        if 0x41 <= b <= 0x5A:
            out.append(chr(b + 0x20))  # ASCII upper -> lower
        elif 0x21 <= b <= 0x7E and b != 0x5C and not (escape_dot and b == 0x2E):
            out.append(chr(b))
        else:
            out.append(f"\\x{b:02x}")
    return tuple(out)


_LABEL = _table(escape_dot=True)
_HOST = _table(escape_dot=False)


def safe_label(raw: bytes) -> str:
    """One DNS label as lower-case safe text (dots escaped too)."""
    return "".join([_LABEL[b] for b in raw])


def safe_name(raw: bytes) -> str:
    """A dotted host name (e.g. from an HTTP Host header) as lower-case safe text.

    Bytes outside 0x21-0x7E and the backslash become ``\\xNN``; one trailing dot is removed.
    """
    text = "".join([_HOST[b] for b in raw])
    return text[:-1] if text.endswith(".") else text


# --- names ----------------------------------------------------------------------------
# memo: offset -> (text, wire bytes, jumps) of the name read from that offset

def _read_name(data: bytes, off: int, memo: dict) -> tuple[str, int] | None:
    """Decode the name at `off`: (text, offset just past its inline part) or None."""
    n = len(data)
    labels: list[str] = []
    wire, jumps, end = 1, 0, -1
    seg = pos = off
    segs = [(off, 0, 1, 0)]  # (start, labels before, wire before, jumps before) of each run
    tail = ("", 1, 0)         # memoised suffix the name ends with, if any
    while True:
        if pos >= n:
            return None
        ln = data[pos]
        if ln == 0:
            if end < 0:
                end = pos + 1
            break
        if ln <= MAX_LABEL:
            nxt = pos + 1 + ln
            wire += ln + 1
            if nxt > n or wire > MAX_NAME_WIRE:
                return None
            labels.append(safe_label(data[pos + 1:nxt]))
            pos = nxt
            continue
        if ln < 0xC0 or pos + 1 >= n:  # 0x40/0x80 label types are obsolete/reserved
            return None
        target = ((ln & 0x3F) << 8) | data[pos + 1]
        if target >= seg:  # not strictly before this run: loop or forward reference
            return None
        if end < 0:
            end = pos + 2
        jumps += 1
        if jumps > MAX_JUMPS:
            return None
        hit = memo.get(target)
        if hit is not None:
            if wire + hit[1] - 1 > MAX_NAME_WIRE or jumps + hit[2] > MAX_JUMPS:
                return None
            tail = hit
            break
        seg = pos = target
        segs.append((seg, len(labels), wire, jumps))
    total_wire = wire + tail[1] - 1
    total_jumps = jumps + tail[2]
    for start, k, wire_before, jumps_before in segs:
        text = ".".join(labels[k:])
        if tail[0]:
            text = f"{text}.{tail[0]}" if text else tail[0]
        memo[start] = (text, total_wire - wire_before + 1, total_jumps - jumps_before)
    return memo[off][0], end


# --- records --------------------------------------------------------------------------

def _read_record(data: bytes, pos: int, memo: dict) -> tuple[DnsRecord, int] | None:
    got = _read_name(data, pos, memo)
    if got is None:
        return None
    name, pos = got
    if pos + RECORD.size > len(data):
        return None
    rtype, _rclass, ttl, rdlen = RECORD.unpack_from(data, pos)
    pos += RECORD.size
    end = pos + rdlen
    if end > len(data):
        return None
    value = ""
    if rtype == TYPE_A:
        if rdlen != 4:
            return None
        value = "%d.%d.%d.%d" % tuple(data[pos:end])
    elif rtype == TYPE_AAAA:
        if rdlen != 16:
            return None
        value = IPv6Address(data[pos:end]).compressed
    elif rtype in NAME_TYPES:
        got = _read_name(data, pos, memo)
        if got is None or got[1] != end:
            return None
        value = got[0]
    return DnsRecord(name, rtype, ttl, value), end


def parse_dns(data: bytes) -> DnsMessage | None:
    """Decode one DNS message (a UDP payload); None if the header or a question is bad,
    ``complete=False`` if the records stop early (see the module notes)."""
    data = bytes(data)
    n = len(data)
    if n < HEADER.size:
        return None
    ident, flags, qd, an, ns, ar = HEADER.unpack_from(data)
    if HEADER.size + qd * MIN_QUESTION > n:
        return None  # question count beyond the data
    memo: dict = {}
    pos = HEADER.size
    questions = []
    for _ in range(min(qd, MAX_QUESTIONS)):
        got = _read_name(data, pos, memo)
        if got is None or got[1] + QUESTION.size > n:
            return None
        qtype, _qclass = QUESTION.unpack_from(data, got[1])
        questions.append((got[0], qtype))
        pos = got[1] + QUESTION.size
    limited = qd > MAX_QUESTIONS or an + ns + ar > MAX_RECORDS
    answers = []
    complete = not limited
    for k in range(0 if qd > MAX_QUESTIONS else min(an + ns + ar, MAX_RECORDS)):  # records follow all questions
        got = _read_record(data, pos, memo)
        if got is None:
            complete = False
            break
        if k < an:
            answers.append(got[0])
        pos = got[1]
    return DnsMessage(ident, bool(flags & FLAG_QR), flags & RCODE_MASK,
                      tuple(questions), tuple(answers), complete, limited)


def parse_dns_tcp(stream: bytes) -> tuple[list[DnsMessage], int]:
    """Decode length-prefixed DNS messages (RFC 7766 §8) from the start of a TCP stream.

    Returns the messages and the number of bytes consumed. A last message whose length
    prefix or body is incomplete is left unconsumed, for the caller to retry with more of
    the stream. A complete frame that does not decode is consumed and skipped (the framing
    is intact, so the stream stays in step); compare the frame count with the result to
    count such frames.
    """
    stream = bytes(stream)
    n = len(stream)
    messages: list[DnsMessage] = []
    pos = 0
    while pos + LENGTH_PREFIX.size <= n:
        end = pos + LENGTH_PREFIX.size + LENGTH_PREFIX.unpack_from(stream, pos)[0]
        if end > n:
            break
        msg = parse_dns(stream[pos + LENGTH_PREFIX.size:end])
        if msg is not None:
            messages.append(msg)
        pos = end
    return messages, pos


# --- names behind addresses -------------------------------------------------------------

def _cnames(msg: DnsMessage) -> dict[str, str]:
    out: dict[str, str] = {}
    for r in msg.answers:
        if r.rtype == TYPE_CNAME and r.name not in out:
            out[r.name] = r.value
    return out


def _roots(msg: DnsMessage, cnames: dict[str, str]) -> list[str]:
    """The names the client asked for; without questions (mDNS announcements), the owner
    names that no CNAME in the message points at."""
    if msg.questions:
        names = [q for q, _ in msg.questions]
    else:
        targets = set(cnames.values())
        names = [r.name for r in msg.answers if r.name not in targets]
    return [name for name in dict.fromkeys(names) if name]


def _chain(root: str, cnames: dict[str, str]) -> list[str]:
    chain, seen = [root], {root}
    while chain[-1] in cnames and cnames[chain[-1]] not in seen:
        chain.append(cnames[chain[-1]])
        seen.add(chain[-1])
    return chain


def cname_chain(msg: DnsMessage) -> tuple[str, ...]:
    """The queried name followed by each CNAME target in turn (loops cut), e.g.
    ("g.whatsapp.net", "chat.cdn.whatsapp.net"); just (name,) without CNAMEs, () without names."""
    cnames = _cnames(msg)
    roots = _roots(msg, cnames)
    return tuple(_chain(roots[0], cnames)) if roots else ()


def address_names(msg: DnsMessage) -> dict[str, str]:
    """Map each A/AAAA answer address to the name the client queried, following CNAMEs.

    Only addresses whose owner lies on a question's CNAME chain are mapped (records
    unrelated to the question are what a resolver would ignore, and a forged one must not
    name an address); the first question reaching an address wins.
    """
    cnames = _cnames(msg)
    out: dict[str, str] = {}
    for root in _roots(msg, cnames):
        names = set(_chain(root, cnames))
        for r in msg.answers:
            if r.rtype in ADDRESS_TYPES and r.name in names and r.value not in out:
                out[r.value] = root
    return out
