"""SHA-256 of input files, computed on another core while the pipeline parses them.

Kept free of heavy imports so the CLI can start hashing before numba and pandas load;
hashlib and file reads release the GIL, so the hash overlaps with imports and parsing.
"""
from __future__ import annotations

import hashlib
import os
import threading

READ_BYTES = 8 << 20  # one reused buffer: no page faults for fresh allocations


class FileHash:
    def __init__(self, path: str):
        self.path = path
        self.hexdigest: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"sha256:{path}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        h = hashlib.sha256()
        buf = bytearray(READ_BYTES)
        view = memoryview(buf)
        try:
            with open(self.path, "rb", buffering=0) as f:
                while n := f.readinto(buf):
                    h.update(view[:n])
        except OSError:
            return
        self.hexdigest = h.hexdigest()

    def result(self) -> str | None:
        self._thread.join()
        return self.hexdigest


def start(paths) -> dict[str, FileHash]:
    """One hashing thread per distinct path, started now."""
    return {p: FileHash(p) for p in dict.fromkeys(str(p) for p in paths)}


# Files hashed ahead of need (the geolocation databases, while the captures are parsed),
# by (path, size, mtime): a file changed since is hashed again.
_AHEAD: dict[tuple, FileHash] = {}


def _stat_key(path: str) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (os.path.realpath(path), st.st_size, st.st_mtime_ns, st.st_ino)


def ahead(paths) -> None:
    """Start hashing `paths` now, on their own threads, for sha256_of to take later."""
    for p in dict.fromkeys(str(p) for p in paths):
        key = _stat_key(p)
        if key is not None and key not in _AHEAD:
            _AHEAD[key] = FileHash(p)


def sha256_of(path: str) -> str | None:
    """The file's SHA-256: the one hashed ahead if the file is unchanged, else computed now."""
    key = _stat_key(str(path))
    if key is None:
        return None
    got = _AHEAD.get(key)
    if got is None:
        got = _AHEAD[key] = FileHash(str(path))
    digest = got.result()
    return digest if _stat_key(str(path)) == key else FileHash(str(path)).result()
