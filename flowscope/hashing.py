"""SHA-256 of input files, computed on another core while the pipeline parses them.

Kept free of heavy imports so the CLI can start hashing before numba and pandas load;
hashlib and file reads release the GIL, so the hash overlaps with imports and parsing.
"""
from __future__ import annotations

import hashlib
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
