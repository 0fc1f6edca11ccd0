"""Matching structures behind the catalog: host patterns and longest-prefix match.

Host names: exact names in a dict, patterns by their fixed suffix, most specific wins.
Addresses: the prefixes are flattened into disjoint segments (each owned by its longest
covering prefix), so a lookup is one numpy searchsorted over all addresses at once.
"""
from __future__ import annotations

import bisect
import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np

if TYPE_CHECKING:
    from flowscope.classify.catalog import HostRule, PrefixRule


def normalize_name(name: str) -> str:
    """Lower case, no surrounding blanks, no trailing root dot."""
    return name.strip().rstrip(".").lower()


@dataclass(frozen=True)
class _Pattern:
    rule: HostRule
    pinned: int  # labels of the name the pattern fixes
    literal: int  # literal characters (no '*', no '.')
    regex: re.Pattern | None  # None for exact names and pure '*.suffix' patterns

    def better_than(self, other: "_Pattern | None") -> bool:
        if other is None:
            return True
        mine, theirs = (self.pinned, self.literal), (other.pinned, other.literal)
        return mine > theirs or (mine == theirs and self.rule.pattern < other.rule.pattern)


def _compile(rule: HostRule) -> tuple[str, _Pattern]:
    labels = rule.pattern.split(".")
    multi = labels[0] == "*"
    body = labels[1:] if multi else labels
    literal = sum(len(label.replace("*", "")) for label in body)
    if "*" not in "".join(body):
        return ("suffix" if multi else "exact"), _Pattern(rule, len(body), literal, None)
    parts = [r"[^.]+" if label == "*" else r"[^.]*".join(re.escape(p) for p in label.split("*")) for label in body]
    regex = (r"(?:[^.]+\.)+" if multi else "") + r"\.".join(parts)
    return "glob", _Pattern(rule, len(body), literal, re.compile(regex))


class _HostIndex:
    """Exact names in a dict, '*.suffix' patterns in a dict by suffix, label globs as regexes."""

    CACHE_MAX = 1 << 16

    def __init__(self, rules: Iterable[HostRule]):
        self.exact: dict[str, HostRule] = {}
        self.suffix: dict[str, _Pattern] = {}
        self.globs: list[_Pattern] = []
        for rule in rules:
            kind, pat = _compile(rule)
            if kind == "exact":
                self.exact[rule.pattern] = rule
            elif kind == "suffix":
                self.suffix[rule.pattern[2:]] = pat
            else:
                self.globs.append(pat)
        self._cache: dict[str, HostRule | None] = {}

    def match(self, name: str) -> HostRule | None:
        if not isinstance(name, str):
            return None
        name = normalize_name(name)
        if not name:
            return None
        try:
            return self._cache[name]
        except KeyError:
            pass
        found = self._match(name)
        if len(self._cache) >= self.CACHE_MAX:
            self._cache.clear()
        self._cache[name] = found
        return found

    def _match(self, name: str) -> HostRule | None:
        rule = self.exact.get(name)
        if rule is not None:
            return rule
        best: _Pattern | None = None
        labels = name.split(".")
        for i in range(1, len(labels)):  # longest suffix first: it pins the most labels
            pat = self.suffix.get(".".join(labels[i:]))
            if pat is not None:
                best = pat
                break
        for pat in self.globs:
            if pat.better_than(best) and pat.regex.fullmatch(name):
                best = pat
        return best.rule if best else None


# ----------------------------------------------------------------------------- address matching

_V4_MAX = (1 << 32) - 1
_V6_MAX = (1 << 128) - 1


def _segments(spans: list[tuple[int, int, int, int]], top: int) -> tuple[list[int], np.ndarray]:
    """Flatten nested/disjoint (start, end, prefixlen, rule) spans into sorted disjoint segments.

    Returns the segment starts and, per segment, the index of its most specific rule (-1: none).
    Segment k covers [starts[k], starts[k+1] - 1] (the last one up to `top`).
    """
    bounds = {0}
    for start, end, _plen, _idx in spans:
        bounds.add(start)
        if end < top:
            bounds.add(end + 1)
    starts = sorted(bounds)
    owner = np.full(len(starts), -1, dtype=np.int32)
    for start, end, _plen, idx in sorted(spans, key=lambda s: s[2]):  # shorter prefixes first
        lo = bisect.bisect_left(starts, start)
        hi = bisect.bisect_left(starts, end + 1) if end < top else len(starts)
        owner[lo:hi] = idx  # a longer prefix, assigned later, overwrites the part it covers
    return starts, owner


class _PrefixIndex:
    """Longest-prefix match over one set of prefix rules, vectorised with numpy.searchsorted."""

    def __init__(self, rules: Sequence[PrefixRule], ids: Sequence[int]):
        v4, v6 = [], []
        for idx in ids:
            net = ipaddress.ip_network(rules[idx].prefix)
            span = (int(net.network_address), int(net.broadcast_address), net.prefixlen, idx)
            (v4 if net.version == 4 else v6).append(span)
        starts4, self.owner4 = _segments(v4, _V4_MAX)
        self.starts4 = np.array(starts4, dtype=np.uint32)
        starts6, self.owner6 = _segments(v6, _V6_MAX)
        self.hi6 = np.array([s >> 64 for s in starts6], dtype=np.uint64)
        self.lo6 = np.array([s & ((1 << 64) - 1) for s in starts6], dtype=np.uint64)

    def lookup4(self, addr: np.ndarray) -> np.ndarray:
        seg = np.searchsorted(self.starts4, addr, side="right") - 1  # starts4[0] == 0, so seg >= 0
        return self.owner4[seg]

    def lookup6(self, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
        count = _rank_right_128(self.hi6, self.lo6, hi, lo)
        return self.owner6[count - 1]  # hi6/lo6[0] == 0, so count >= 1


def _rank_right_128(b_hi: np.ndarray, b_lo: np.ndarray, q_hi: np.ndarray, q_lo: np.ndarray) -> np.ndarray:
    """For each 128-bit query (hi, lo), the number of sorted boundaries (hi, lo) <= it.

    One searchsorted on the high words settles every query whose high word no boundary shares;
    the others are refined with one searchsorted on the low words per run of boundaries sharing
    a high word (a loop over runs, never over addresses).
    """
    left = np.searchsorted(b_hi, q_hi, side="left")
    right = np.searchsorted(b_hi, q_hi, side="right")
    count = right.astype(np.int64)
    tied = np.flatnonzero(left < right)
    if tied.size:
        order = tied[np.argsort(left[tied], kind="stable")]
        runs, first = np.unique(left[order], return_index=True)
        ends = np.append(first[1:], order.size)
        for run, a, b in zip(runs.tolist(), first.tolist(), ends.tolist()):
            members = order[a:b]
            stop = int(right[members[0]])
            count[members] = run + np.searchsorted(b_lo[run:stop], q_lo[members], side="right")
    return count


def _parse_addresses(ips: Sequence) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Distinct addresses parsed once: (inverse, family, v4, hi, lo); family 0 = not an address."""
    position: dict[str, int] = {}
    inverse = np.empty(len(ips), dtype=np.int64)
    for i, ip in enumerate(ips):
        key = ip if isinstance(ip, str) else ("" if ip is None else str(ip))
        inverse[i] = position.setdefault(key, len(position))
    n = len(position)
    family = np.zeros(n, dtype=np.int8)
    v4 = np.zeros(n, dtype=np.uint32)
    hi = np.zeros(n, dtype=np.uint64)
    lo = np.zeros(n, dtype=np.uint64)
    for text, k in position.items():
        got = _parse_one(text)
        if got is None:
            continue
        fam, value = got
        family[k] = fam
        if fam == 4:
            v4[k] = value
        else:
            hi[k], lo[k] = value >> 64, value & 0xFFFFFFFFFFFFFFFF
    return inverse, family, v4, hi, lo


def _parse_one(text: str) -> tuple[int, int] | None:
    text = text.strip()
    if not text:
        return None
    if ":" not in text:
        try:
            return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
        except OSError:
            return None
    text = text.split("%", 1)[0].strip("[]")
    try:
        value = int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big")
    except OSError:
        return None
    if value >> 32 == 0xFFFF:  # IPv4-mapped (::ffff:a.b.c.d): look it up as IPv4
        return 4, value & _V4_MAX
    return 6, value


# ----------------------------------------------------------------------------- the catalog
