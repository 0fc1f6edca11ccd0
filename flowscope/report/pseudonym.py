"""Keyed pseudonyms for the addresses of the people in a capture, in everything we write.

Our own processing must not spread what it does not need: the device's local addresses,
MAC addresses and the addresses of call peers (the other party of a direct call) are
replaced by ``local-3f9a2c1b``, ``mac-…`` and ``peer-…``: the first 8 hex digits of
HMAC-SHA256(key, kind + address). The same key gives the same pseudonyms, so runs stay
comparable; without the key (kept outside the output directory) they cannot be reversed
by trying all addresses, which a plain hash of an IPv4 address could.

Server addresses (Meta's edges, resolvers, CDNs) are not personal data and stay as they are.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
import secrets
import socket
from functools import lru_cache
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from flowscope.columns import one_array
from flowscope.dissect import localnames
from flowscope.dissect.localnames import is_local_name
from flowscope.errors import UsageError
from flowscope.geo.special import address_class
from flowscope.sides import is_peer, local_is_orig_columns

LOCAL_CLASSES = frozenset({"private", "cgnat", "link-local"})  # private includes IPv6 ULA
KEY_BYTES = 32
DIGEST_HEX = 8
CID_HEX = 16

_MAC = r"(?<![0-9A-Fa-f:-])(?:[0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}(?![0-9A-Fa-f:-])"
_PTR4 = r"(?<![\w.])(?P<rev4>(?:\d{1,3}\.){4})in-addr\.arpa"
_PTR6 = r"(?<![\w.])(?P<rev6>(?:[0-9A-Fa-f]\.){32})ip6\.arpa"
_V6 = r"(?<![\w:.])[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*"  # a candidate; ipaddress decides
_V4 = r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\.?\d)"
_TEXT = re.compile(f"(?P<mac>{_MAC})|(?P<ptr4>{_PTR4})|(?P<ptr6>{_PTR6})|(?P<v6>{_V6})|(?P<v4>{_V4})")
_V4_ONLY = re.compile(_V4)
_MAYBE = re.compile(r"[:-]|\d\.\d")  # every pattern above needs one of these
# Names in free text: labels are anything but space, dots and the characters that delimit a
# name in our text (quotes, brackets, separators, URL and host:port punctuation).
_LABEL = r'[^\s"(),;<>\[\]{}=.:/@]'
_BEFORE = r'(?<![^\s"(),;<>\[\]{}=:/@])'   # a name starts at the text's start or a delimiter
_AFTER = rf"(?!{_LABEL}|\.{_LABEL})"         # ... and ends before one (a sentence's dot may follow)
NAME_COLUMNS = frozenset({"hostname", "sni", "dns_name", "dns_queries", "local_names"})


def default_key_path() -> Path:
    """$XDG_CONFIG_HOME/flowscope/pseudonym.key, else ~/.config/flowscope/pseudonym.key."""
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "flowscope" / "pseudonym.key"


def load_key(path=None, out_dir=None) -> bytes:
    """Read the key file, creating it (0600, 32 random bytes as hex) if absent.

    A key inside the output directory would travel with the evidence and undo the
    pseudonyms, so it is refused."""
    path = Path(path) if path else default_key_path()
    if out_dir is not None and _inside(path, Path(out_dir)):
        raise UsageError(f"{path}: the pseudonym key must be kept outside the output directory {out_dir}")
    if not path.exists():
        _create_key(path)
    try:
        text = path.read_text().strip()
        key = bytes.fromhex(text)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not a readable pseudonym key (64 hex digits): {exc}") from None
    if len(key) < 16:
        raise UsageError(f"{path}: pseudonym key too short ({len(key)} bytes; need at least 16)")
    return key


def _create_key(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another run created it meanwhile: use that one
        return
    except OSError as exc:
        raise UsageError(f"{path}: cannot create the pseudonym key: {exc.strerror}") from None
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(KEY_BYTES) + "\n")


def _inside(path: Path, directory: Path) -> bool:
    try:
        path.resolve().relative_to(directory.resolve())
        return True
    except ValueError:
        return False


def key_id(key: bytes) -> str:
    """A fingerprint that names the key in the manifest without revealing it."""
    return hmac.new(key, b"flowscope key id", hashlib.sha256).hexdigest()[:12]


@lru_cache(maxsize=1 << 16)  # the same addresses recur in every column and row
def _canonical(ip: str) -> str | None:
    text = str(ip).strip().strip("[]").split("%", 1)[0]
    for family in (socket.AF_INET, socket.AF_INET6):  # inet_pton: ~10x faster than ipaddress
        try:
            return socket.inet_ntop(family, socket.inet_pton(family, text))
        except OSError:
            continue
    return None


class Pseudonymizer:
    """Replaces local, MAC and call-peer addresses in values, text, tables and JSON."""

    def __init__(self, key: bytes, peers=(), local_nets=(), own=(), names=()):
        """`names`: names the capture showed to be local devices' (the local_names column),
        pseudonymised wherever they appear besides those that localnames recognises by form."""
        self.key = key
        self._mac = hmac.new(key, digestmod=hashlib.sha256)
        self.names = frozenset(n.lower().rstrip(".") for n in names if n)
        self._name_re = _name_pattern(self.names)
        self.peers = frozenset(filter(None, (_canonical(p) for p in peers)))
        self.own = frozenset(filter(None, (_canonical(p) for p in own)))  # device's public address
        self.local_nets = tuple(ipaddress.ip_network(n, strict=False) for n in local_nets)
        self._seen: dict[str, str | None] = {}  # address text -> pseudonym (or None: kept)

    # --- single values --------------------------------------------------------------
    def token(self, kind: str, value: str, digits: int = DIGEST_HEX) -> str:
        mac = self._mac.copy()  # the keyed state copied: no key schedule per value (a Community ID a flow)
        mac.update(f"{kind}:{value}".encode())
        return f"{kind}-{mac.hexdigest()[:digits]}"

    def community_id(self, value: str | None) -> str | None:
        """The keyed form of a Community ID: the clear one is a SHA-1 of the 5-tuple, so with
        the remote address and ports beside it, trying the private ranges gives the local
        address back (24 s on one core). 16 hex digits: joins across runs stay unambiguous."""
        return self.community_ids([value])[0]

    def community_ids(self, values: list) -> list:
        """community_id over a column (one a flow, nearly all distinct): token("cid", value,
        CID_HEX) for each, without a call and a format per value; null and "" stay."""
        copy, out = self._mac.copy, []
        for value in values:
            if value:
                mac = copy()
                mac.update(b"cid:" + value.encode())
                value = "cid-" + mac.hexdigest()[:CID_HEX]
            out.append(value)
        return out

    def kind_of(self, canonical_ip: str) -> str | None:
        """"peer", "local" or None (an address to keep) for a canonical address."""
        if canonical_ip in self.peers:
            return "peer"
        if canonical_ip in self.own or address_class(canonical_ip) in LOCAL_CLASSES:
            return "local"
        if not self.local_nets:
            return None
        addr = ipaddress.ip_address(canonical_ip)
        if any(addr.version == n.version and addr in n for n in self.local_nets):
            return "local"
        return None

    def address(self, ip: str) -> str | None:
        """The pseudonym for an address that needs one, else None."""
        if ip in self._seen:
            return self._seen[ip]
        canonical = _canonical(ip)
        kind = canonical and self.kind_of(canonical)
        self._seen[ip] = token = self.token(kind, canonical) if kind else None
        return token

    def ip(self, value: str | None) -> str | None:
        """An address column's value: the pseudonym, the address itself, or (not an
        address at all) the value scrubbed as text."""
        if value is None:
            return None
        token = self.address(value)
        return token if token else value if _canonical(value) else self.text(value)

    def endpoint(self, ip_port: str) -> str:
        """'ip:port' (IPv6 unbracketed, as stun_mapped writes it) with the address replaced."""
        host, sep, port = ip_port.rpartition(":")
        token = sep and port.isdigit() and self.address(host)
        return f"{token}:{port}" if token else self.text(ip_port)

    def name(self, value: str | None) -> str | None:
        """A name column's value: a local device's name (by form or as the capture showed)
        becomes ``device-…``; a reverse name of a local address the address pseudonym; else
        the value scrubbed as text. Public names are the evidence and stay."""
        if not isinstance(value, str) or not value:
            return value
        scrubbed = self._addresses(value)  # addresses (an IPv6 literal is one label), reverse names
        if scrubbed != value:
            return scrubbed
        canonical = value.lower().rstrip(".")
        if canonical in self.names or is_local_name(canonical):
            return self.token("device", canonical)
        return self._names(value)

    # --- free text --------------------------------------------------------------------
    def text(self, s: str) -> str:
        """Every local/peer address, MAC address and local device name inside `s` replaced."""
        if not isinstance(s, str):
            return s
        return self._names(self._addresses(s))

    def _names(self, s: str) -> str:
        low = s.lower()
        if localnames.mentions_local_suffix(low) or (self.names and any(n in low for n in self.names)):
            return self._name_re.sub(self._device, s)
        return s

    def _addresses(self, s: str) -> str:
        return _TEXT.sub(self._replace, s) if _MAYBE.search(s) else s  # most names hold no address

    def _device(self, m: re.Match) -> str:
        return self.token("device", m.group(0).lower())

    def _replace(self, m: re.Match) -> str:
        found = m.group(0)
        if m.group("mac"):
            return self.token("mac", found.lower().replace("-", ":"))
        if m.group("ptr4"):
            ip = ".".join(reversed(m.group("rev4").rstrip(".").split(".")))
            return self._ptr(found, ip)
        if m.group("ptr6"):
            nibbles = m.group("rev6").replace(".", "")[::-1]
            return self._ptr(found, ":".join(nibbles[i:i + 4] for i in range(0, 32, 4)))
        if m.group("v6"):
            return self._v6(found)
        return self.address(found) or found

    def _ptr(self, found: str, ip: str) -> str:
        token = self.address(ip)
        return f"{token}.reverse-dns" if token else found

    def _v6(self, found: str) -> str:
        body, tail = found.rstrip(".:"), found[len(found.rstrip(".:")):]
        token = self.address(body)
        if token:
            return token + tail
        head, sep, port = body.rpartition(":")  # unbracketed "v6:port", as stun_mapped writes it
        if sep and port.isdigit() and (token := self.address(head)):
            return f"{token}:{port}{tail}"
        return _V4_ONLY.sub(lambda v4: self.address(v4.group(0)) or v4.group(0), found)

    # --- tables and JSON ----------------------------------------------------------------
    def table(self, table: pa.Table, keep=()) -> pa.Table:
        """Every string and list-of-string column with its addresses replaced, and the
        Community ID keyed (see community_id)."""
        for i, field in enumerate(table.schema):
            if field.name in keep:
                continue
            col = table.column(i)
            if field.name == "community_id" and pa.types.is_string(field.type):
                table = table.set_column(i, field, pa.array(self.community_ids(one_array(col).to_pylist()),
                                                            type=field.type))
            elif pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
                table = table.set_column(i, field, self._strings(col, self._scrub_for(field.name)))
            elif pa.types.is_list(field.type) and pa.types.is_string(field.type.value_type):
                scrub = self.endpoint if field.name == "stun_mapped" else self._scrub_for(field.name)
                table = table.set_column(i, field, self._string_lists(col, scrub))
        return table

    def _scrub_for(self, column: str):
        if column == "community_id":
            return self.community_id
        if column in NAME_COLUMNS:
            return self.name
        return self.ip if column.endswith("_ip") else self.text  # address columns: no regex

    def _strings(self, col: pa.ChunkedArray, scrub) -> pa.ChunkedArray:
        """Scrub the distinct values once; a column in which none changes is kept as it is
        (most are: service names, regions, public host names), not copied."""
        arr = one_array(col)
        unique = pc.unique(arr)
        values = unique.to_pylist()
        scrubbed = [scrub(v) for v in values]
        if scrubbed == values:
            return col
        mapped = pa.array(scrubbed, type=col.type)
        return pa.chunked_array([pc.take(mapped, pc.index_in(arr, value_set=unique))])

    def _string_lists(self, col: pa.ChunkedArray, scrub) -> pa.ChunkedArray:
        """Scrub the distinct list items once, then rebuild the lists around them (a column
        in which no item changes is kept as it is)."""
        arr = one_array(col)
        offsets = pc.subtract(arr.offsets, arr.offsets[0]) if len(arr) else pa.array([0], pa.int32())
        items = arr.flatten()
        unique = pc.unique(items)
        distinct = unique.to_pylist()
        scrubbed = [scrub(v) if v is not None else None for v in distinct]
        if scrubbed == distinct:
            return col
        mapped = pa.array(scrubbed, type=items.type)
        values = pc.take(mapped, pc.index_in(items, value_set=unique))
        rebuilt = pa.ListArray.from_arrays(offsets, values, type=col.type, mask=arr.is_null())
        return pa.chunked_array([rebuilt])

    def json(self, obj):
        """A copy of a JSON-like object with every string (keys too) scrubbed."""
        if isinstance(obj, dict):
            return {self.text(k) if isinstance(k, str) else k: self.json(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [self.json(v) for v in obj]
        return self.text(obj) if isinstance(obj, str) else obj


def _name_pattern(names: frozenset) -> re.Pattern:
    """Known local names, then any name under a local suffix, as whole names in text."""
    known = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    suffixes = "|".join(re.escape(x) for x in localnames.suffixes())
    alternatives = ([known] if known else []) + [rf"(?:{_LABEL}+\.)+(?:{suffixes})"]
    return re.compile(rf"{_BEFORE}(?:{'|'.join(alternatives)}){_AFTER}", re.IGNORECASE)


def local_names(flows: pa.Table) -> set[str]:
    """The local_names column's names (what the dissectors saw local devices called)."""
    if "local_names" not in flows.column_names or not flows.num_rows:
        return set()
    return {n for n in pc.unique(pc.list_flatten(flows["local_names"])).to_pylist() if n}


def call_peers(flows: pa.Table) -> set[str]:
    """Remote addresses of direct call legs (see peer_legs)."""
    return set(peer_addresses(flows.filter(peer_legs(flows))).to_pylist())


def peer_addresses(legs: pa.Table) -> pa.Array:
    """The remote address of each flow (flowscope/sides.py's rule)."""
    local = pa.array(local_is_orig_columns(legs)) if legs.num_rows else pa.array([], pa.bool_())
    return pc.if_else(local, legs["resp_ip"], legs["orig_ip"])


def peer_legs(flows: pa.Table) -> pa.Array:
    """Which flows are direct call legs: their remote end is the other party
    (remote_role == "peer", decided once by the classify stage, flowscope/sides.py)."""
    return is_peer(flows)


def own_addresses(flows: pa.Table, peers: set[str]) -> set[str]:
    """The device's public address(es) as STUN servers and peers reported them to it
    (stun_mapped entries that are not a peer's): personal data like a local address."""
    if "stun_mapped" not in flows.column_names:
        return set()
    items = pc.unique(pc.list_flatten(flows["stun_mapped"])).to_pylist()
    found = {_canonical(m.rpartition(":")[0]) for m in items if m}
    return {ip for ip in found if ip and ip not in peers}


def local_nets_of(summary: dict) -> list[str]:
    """Networks a live capture recorded as local (summary 'local_nets', overall or per capture),
    and the platform hosts given with --platform-host."""
    nets = list(summary.get("local_nets") or [])
    # platform hosts given with --platform-host are the company's own servers, often public
    nets += list((summary.get("settings") or {}).get("platform_hosts") or [])
    for cap in summary.get("captures", []):
        nets += cap.get("local_nets") or []
    return sorted(set(nets))

