"""SHA-256 of input files, computed on another core while the pipeline parses them.

Kept free of heavy imports so the CLI can start hashing before numba and pandas load;
hashlib and file reads release the GIL, so the hash overlaps with imports and parsing.
"""
from __future__ import annotations

import hashlib
import threading

READ_BYTES = 4 << 20


class FileHash:
    def __init__(self, path: str):
        self.path = path
        self.hexdigest: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"sha256:{path}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        h = hashlib.sha256()
        try:
            with open(self.path, "rb") as f:
                while chunk := f.read(READ_BYTES):
                    h.update(chunk)
        except OSError:
            return
        self.hexdigest = h.hexdigest()

    def result(self) -> str | None:
        self._thread.join()
        return self.hexdigest


def start(paths) -> dict[str, FileHash]:
    """One hashing thread per distinct path, started now."""
    return {p: FileHash(p) for p in dict.fromkeys(str(p) for p in paths)}
