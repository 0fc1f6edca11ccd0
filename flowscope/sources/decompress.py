"""Streaming decompression that hands over every byte decoded before damage.

gzip.GzipFile and friends raise from read() and drop what that call had decoded, so a
truncated capture would lose up to a chunk of good packets. Here compressed input is fed
in small pieces; on truncation nothing is lost, on corruption at most one piece's output.
Multi-member gzip (`cat a.gz b.gz`) and multi-stream bzip2/xz are followed.
"""
from __future__ import annotations

import bz2
import io
import lzma
import zlib

FEED_BYTES = 1 << 10  # small: on corruption only this much input is lost
ERRORS = (OSError, EOFError, lzma.LZMAError, zlib.error, ValueError)


def _new(kind: str):
    if kind == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if kind == "bzip2":
        return bz2.BZ2Decompressor()
    return lzma.LZMADecompressor()


class Decompressed(io.RawIOBase):
    def __init__(self, raw, kind: str):
        self._raw = raw
        self._kind = kind
        self._d = _new(kind)
        self._out = b""
        self._pos = 0
        self._error: Exception | None = None
        self._done = False
        self._began = False  # the current member/stream has consumed input

    def readable(self) -> bool:
        return True

    def readinto(self, view) -> int:
        while self._pos >= len(self._out):
            if self._error is not None:
                err, self._error = self._error, None
                raise err
            if self._done:
                return 0
            self._step()
        n = min(len(view), len(self._out) - self._pos)
        view[:n] = self._out[self._pos:self._pos + n]
        self._pos += n
        return n

    def _step(self) -> None:
        data = self._raw.read(FEED_BYTES)
        if not data:
            self._done = True
            if self._began and not self._d.eof:
                self._error = EOFError(f"{self._kind} stream ends before its end-of-stream marker (truncated)")
            return
        parts = []
        try:
            while data:
                self._began = True
                parts.append(self._d.decompress(data))
                if not self._d.eof:
                    break
                data = self._d.unused_data  # next member of a concatenated stream
                self._d = _new(self._kind)
                self._began = False
        except ERRORS as exc:
            self._error = exc
        self._out, self._pos = b"".join(parts), 0
