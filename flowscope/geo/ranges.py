"""geoip2fast's country and ASN ranges as sorted numpy arrays, cached on disk.

geoip2fast unpickles its 4.7 MB .dat.gz into Python lists on every start (0.18-0.25 s and
~130 MB) and allows one instance per process. The same ranges as .npy files are memory-
mapped in about a millisecond (a lookup touches a few pages) and answer a whole column of
addresses with one ``searchsorted``. Names are one UTF-8 blob with offsets, decoded only
for the ids asked. The cache is derived data: its directory name carries the SHA-256 of the
source file, so a new geoip2fast release builds a new one.

IPv4 ranges are uint32; IPv6 ranges are 16-byte big-endian strings (``S16``), whose byte
order is their numeric order. Country codes 00-15 in geoip2fast are its labels for
private and reserved space: they become "no answer".
"""
from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import shutil
import socket
from pathlib import Path

import numpy as np

FORMAT = 2  # bump when the cached layout changes
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
    """Sorted ranges -> value ids, for IPv4 and IPv6 separately; names decoded on demand."""

    def __init__(self, first4, last4, id4, first6, last6, id6, blob, offsets):
        self.first4, self.last4, self.id4 = first4, last4, id4
        self.first6, self.last6, self.id6 = first6, last6, id6
        self._blob, self._offsets = blob, offsets

    def lookup(self, v4: np.ndarray, v6: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Value ids (-1: not covered) for uint32 IPv4 and S16 IPv6 query arrays."""
        return _find(self.first4, self.last4, self.id4, v4), _find(self.first6, self.last6, self.id6, v6)

    def name(self, i: int) -> str:
        lo, hi = self._offsets[i:i + 2].tolist()
        return self._blob[lo:hi].tobytes().decode("utf-8", "replace")


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


def _blob(names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    encoded = [n.encode("utf-8") for n in names]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(e) for e in encoded])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets


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
    cb, co = _blob(codes)
    ab, ao = _blob(list(names_asn))
    info = np.frombuffer(str(source_info.get("info", "")).encode(), dtype=np.uint8)
    return {"info": info,
            "c_f4": c[0], "c_l4": c[1], "c_i4": country_ids[c[2]], "c_f6": c[3], "c_l6": c[4],
            "c_i6": country_ids[c[5]], "c_blob": cb, "c_off": co,
            "a_f4": a[0], "a_l4": a[1], "a_i4": a[2], "a_f6": a[3], "a_l6": a[4], "a_i6": a[5],
            "a_blob": ab, "a_off": ao}


_KEYS = ("info", "c_f4", "c_l4", "c_i4", "c_f6", "c_l6", "c_i6", "c_blob", "c_off",
         "a_f4", "a_l4", "a_i4", "a_f6", "a_l6", "a_i6", "a_blob", "a_off")


def _read(cache: Path) -> dict | None:
    try:
        # np.asarray: plain ndarray views of the maps (numpy.memmap indexing is slow Python)
        return {k: np.asarray(np.load(cache / f"{k}.npy", mmap_mode="r", allow_pickle=False)) for k in _KEYS}
    except (OSError, ValueError):
        return None  # absent or damaged: rebuilt


def _write(cache: Path, data: dict) -> None:
    tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    for k in _KEYS:
        np.save(tmp / f"{k}.npy", data[k], allow_pickle=False)
    if cache.exists():
        shutil.rmtree(cache, ignore_errors=True)
    try:
        os.replace(tmp, cache)
    except OSError:  # another process won the race: use its copy
        shutil.rmtree(tmp, ignore_errors=True)


def load(path: str) -> tuple[RangeTable, RangeTable, str]:
    """(country table, AS-organisation table, source info) for a geoip2fast .dat.gz file."""
    cache = _cache_dir() / f"geoip2fast-{_sha256(path)[:24]}-v{FORMAT}"
    data = _read(cache)
    if data is None:
        _write(cache, _build(path))
        data = _read(cache)
        if data is None:
            raise OSError(f"{cache}: cannot read the cache just written")
    country = RangeTable(*(data[k] for k in ("c_f4", "c_l4", "c_i4", "c_f6", "c_l6", "c_i6", "c_blob", "c_off")))
    asn = RangeTable(*(data[k] for k in ("a_f4", "a_l4", "a_i4", "a_f6", "a_l6", "a_i6", "a_blob", "a_off")))
    return country, asn, bytes(data["info"]).decode()


def query_arrays(ips: list[str]) -> tuple[np.ndarray, np.ndarray, list[int], list[int]]:
    """Split address strings into uint32 IPv4 and S16 IPv6 arrays with their positions."""
    v4, v6, pos4, pos6 = [], [], [], []
    for k, ip in enumerate(ips):
        try:  # inet_pton: strict dotted quads and IPv6 text, 10x faster than ipaddress
            v4.append(int.from_bytes(socket.inet_pton(socket.AF_INET, ip), "big"))
            pos4.append(k)
            continue
        except (OSError, TypeError):
            pass
        try:
            v6.append(socket.inet_pton(socket.AF_INET6, ip))
            pos6.append(k)
        except (OSError, TypeError):
            continue
    return np.array(v4, dtype=np.uint32), np.array(v6, dtype="S16"), pos4, pos6
