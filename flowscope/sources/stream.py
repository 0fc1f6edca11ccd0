"""A reusable read buffer over a (possibly compressed) capture file.

The walk loops parse records straight out of this numpy buffer. Reading in ~1 MiB
chunks keeps the data in cache while the walk runs (measured: 1.35x faster than 64 MiB
chunks); only the unparsed tail of a chunk is moved to the front before the next read.
"""
from __future__ import annotations

import io

import numpy as np

from flowscope.sources.decompress import ERRORS, ExpansionLimit

CHUNK_BYTES = 1 << 20


class ByteStream:
    def __init__(self, fileobj: io.BufferedIOBase | io.RawIOBase, raw: io.RawIOBase,
                 chunk: int = CHUNK_BYTES):
        self._f = fileobj
        self._raw = raw          # the file on disk, for progress in compressed bytes
        self.chunk = chunk
        self.buf = np.empty(2 * chunk, dtype=np.uint8)
        self.start = 0           # first unparsed byte in buf
        self.end = 0             # end of valid data in buf
        self.offset = 0          # file offset (decompressed) of buf[0]
        self.eof = False
        self.error: str | None = None   # set when the decompressor fails mid-stream

    def fill(self, need: int = 0) -> None:
        """Keep buf[start:end], read at least one more chunk (or to EOF); need = bytes wanted."""
        keep = self.end - self.start
        want = max(need, keep + self.chunk)
        if want > len(self.buf):
            grown = np.empty(max(want, 2 * len(self.buf)), dtype=np.uint8)
            grown[:keep] = self.buf[self.start:self.end]
            self.buf = grown
        elif keep and self.start:
            self.buf[:keep] = self.buf[self.start:self.end].copy()
        self.offset += self.start
        self.start, self.end = 0, keep
        view = memoryview(self.buf)
        limit = max(need, keep + self.chunk)
        while self.end < limit:
            try:
                got = self._f.readinto(view[self.end:limit])
            except ExpansionLimit as exc:  # a limit, not damage: say so as it is
                self.error = str(exc)
                got = 0
            except ERRORS as exc:
                # Keep what was decompressed before the damage; the reader reports it at EOF.
                self.error = f"corrupt or truncated compressed data after {self.offset + self.end} bytes: {exc}"
                got = 0
            if not got:
                self.eof = True
                break
            self.end += got

    def limit_expansion(self, max_ratio: float) -> None:
        """Set the decompression ratio limit (no effect on uncompressed input)."""
        if hasattr(self._f, "max_ratio"):
            self._f.max_ratio = max_ratio

    def position(self) -> int:
        """Bytes of the file on disk read so far (for progress bars)."""
        try:
            return self._raw.tell()
        except (OSError, ValueError):
            return 0

    def end_of_input(self, path: str, unit: str) -> None:
        """At EOF: raise if the decompressor failed or an incomplete `unit` is left over."""
        from flowscope.errors import CaptureError
        if self.error:
            raise CaptureError(path, self.error)
        left = self.end - self.start
        if left:
            raise CaptureError(path, f"truncated last {unit} at offset {self.offset + self.start} "
                                     f"({left} bytes of an incomplete {unit})")

    def close(self) -> None:
        for f in (self._f, self._raw):
            try:
                f.close()
            except (OSError, ValueError):
                pass

    def tail(self) -> bytes:
        return bytes(self.buf[self.start:self.end])
