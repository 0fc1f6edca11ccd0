"""geoip2fast's country and ASN ranges as sorted numpy arrays, cached on disk.

geoip2fast unpickles its 4.7 MB .dat.gz into Python lists on every start (0.18-0.25 s and
~130 MB) and allows one instance per process. The same ranges as numpy arrays load in a few
milliseconds and answer a whole column of addresses with one ``searchsorted``, so the
embedded ASN data costs the benchmark almost nothing. The cache is derived data: its file
name carries the SHA-256 of the source file, so a new geoip2fast release builds a new one.

IPv4 ranges are uint32; IPv6 ranges are 16-byte big-endian strings (``S16``), whose byte
order is their numeric order. Country codes 00-15 in geoip2fast are its labels for
private and reserved space: they become "no answer".
"""
from __future__ import annotations

import gzip
import hashlib
import ipaddress
import os
import pickle
from pathlib import Path

import numpy as np

FORMAT = 1  # bump when the cached layout changes
_PRIVATE_IDS = 16  # geoip2fast: the first 16 country names label special space
_NOT_FOUND = "99"


def _cache_dir() -> Path:
    root = os.environ.get("FLOWSCOPE_CACHE_DIR") or os.path.join(Path.home(), ".cache", "flowscope")
    return Path(root) / "geo"


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


class RangeTable:
    """Sorted ranges -> value ids, for IPv4 and IPv6 separately."""

    def __init__(self, first4, last4, id4, first6, last6, id6, names):
        self.first4, self.last4, self.id4 = first4, last4, id4
        self.first6, self.last6, self.id6 = first6, last6, id6
        self.names = names

    def lookup(self, v4: np.ndarray, v6: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Value ids (-1: not covered) for uint32 IPv4 and S16 IPv6 query arrays."""
        return _find(self.first4, self.last4, self.id4, v4), _find(self.first6, self.last6, self.id6, v6)


def _find(first: np.ndarray, last: np.ndarray, ids: np.ndarray, q: np.ndarray) -> np.ndarray:
    out = np.full(len(q), -1, dtype=np.int64)
    if not len(q) or not len(first):
        return out
    k = np.searchsorted(first, q, side="right") - 1
    ok = k >= 0
    kk = np.where(ok, k, 0)
    ok &= q <= last[kk]
    out[ok] = ids[kk[ok]]
    return out


def _ranges(first_chunks, id_chunks, len_chunks):
    """Flatten geoip2fast's chunked lists into (first, last, id) per family."""
    first = [x for c in first_chunks for x in c]
    ids = np.array([x for c in id_chunks for x in c], dtype=np.int64)
    lens = [x for c in len_chunks for x in c]
    n4 = sum(1 for x in first if x < (1 << 32))  # sorted: IPv4 first
    f4 = np.array(first[:n4], dtype=np.uint64)
    l4 = f4 + (np.uint64(1) << (32 - np.array(lens[:n4], dtype=np.uint64))) - np.uint64(1)
    f6 = [x.to_bytes(16, "big") for x in first[n4:]]
    l6 = [(x + (1 << (128 - n)) - 1).to_bytes(16, "big") for x, n in zip(first[n4:], lens[n4:])]
    return (f4.astype(np.uint32), np.minimum(l4, 0xFFFFFFFF).astype(np.uint32), ids[:n4],
            np.array(f6, dtype="S16"), np.array(l6, dtype="S16"), ids[n4:])


def _build(path: str) -> dict:
    with gzip.open(path, "rb") as f:
        version, source_info, _total, db = pickle.load(f)
    if version not in (120, 121) or not (source_info.get("country") and source_info.get("asn")):
        raise ValueError(f"unsupported geoip2fast data (version {version}, {source_info.get('info')})")
    (_idx, _idx_asn, names_country, names_asn, first, first_asn,
     id_country, id_asn, netlen, netlen_asn) = db
    codes = [n.split(":", 1)[0] for n in names_country]
    country_ids = np.array([-1 if (i < _PRIVATE_IDS or c == _NOT_FOUND) else i for i, c in enumerate(codes)])
    c = _ranges(first, id_country, netlen)
    a = _ranges(first_asn, id_asn, netlen_asn)
    return {
        "format": np.array(FORMAT), "info": np.array(source_info.get("info", "")),
        "c_f4": c[0], "c_l4": c[1], "c_i4": country_ids[c[2]], "c_f6": c[3], "c_l6": c[4], "c_i6": country_ids[c[5]],
        "c_names": np.array(codes), "a_f4": a[0], "a_l4": a[1], "a_i4": a[2], "a_f6": a[3], "a_l6": a[4],
        "a_i6": a[5], "a_names": np.array(names_asn),
    }


def load(path: str) -> tuple[RangeTable, RangeTable, str]:
    """(country table, AS-organisation table, source info) for a geoip2fast .dat.gz file."""
    cache = _cache_dir() / f"geoip2fast-{_sha256(path)[:24]}-v{FORMAT}.npz"
    data = None
    if cache.exists():
        try:
            with np.load(cache, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except (OSError, ValueError):
            data = None  # a damaged cache is rebuilt
    if data is None:
        data = _build(path)
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f"{cache.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, **data)
        os.replace(tmp, cache)
    country = RangeTable(data["c_f4"], data["c_l4"], data["c_i4"], data["c_f6"], data["c_l6"], data["c_i6"],
                         data["c_names"].tolist())
    asn = RangeTable(data["a_f4"], data["a_l4"], data["a_i4"], data["a_f6"], data["a_l6"], data["a_i6"],
                     data["a_names"].tolist())
    return country, asn, str(data["info"])


def query_arrays(ips: list[str]) -> tuple[np.ndarray, np.ndarray, list[int], list[int]]:
    """Split address strings into uint32 IPv4 and S16 IPv6 arrays with their positions."""
    v4, v6, pos4, pos6 = [], [], [], []
    for k, ip in enumerate(ips):
        try:
            a = ipaddress.ip_address(ip)
        except ValueError:
            continue
        if a.version == 4:
            v4.append(int(a))
            pos4.append(k)
        else:
            v6.append(a.packed)
            pos6.append(k)
    return np.array(v4, dtype=np.uint32), np.array(v6, dtype="S16"), pos4, pos6
