"""Streaming decompression that hands over every byte decoded before damage.

gzip.GzipFile and friends raise from read() and drop what that call had decoded, so a
truncated capture would lose up to a chunk of good packets. Here compressed input is fed
in small pieces; on truncation nothing is lost, on corruption at most one piece's output.
Multi-member gzip (`cat a.gz b.gz`) and multi-stream bzip2/xz are followed.

A decompression bomb costs bounded work: each call hands out at most OUT_BYTES (bzip2 and xz
can expand 1 KiB of input into gigabytes), and reading stops with ExpansionLimit once the
output exceeds `max_ratio` times the compressed bytes read (past a floor that no real
capture's first megabytes can trip). Real captures compress 2-20x; runs of identical
packets a few hundred times; deflate cannot exceed about 1032x.
"""
from __future__ import annotations

import bz2
import io
import lzma
import zlib

FEED_BYTES = 1 << 10  # small: on corruption only this much input is lost
OUT_BYTES = 1 << 20   # most output one step may produce
MAX_RATIO = 1000.0    # default output / compressed input at which reading stops (Settings.max_expansion)
RATIO_FLOOR_BYTES = 16 << 20  # the ratio is judged once this much output exists
ERRORS = (OSError, EOFError, lzma.LZMAError, zlib.error, ValueError)


def _new(kind: str):
    if kind == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if kind == "bzip2":
        return bz2.BZ2Decompressor()
    return lzma.LZMADecompressor()


class ExpansionLimit(Exception):
    """The output outgrew max_ratio x the compressed input read (one line, for the user)."""


class Decompressed(io.RawIOBase):
    def __init__(self, raw, kind: str, max_ratio: float = MAX_RATIO):
        self._raw = raw
        self.max_ratio = max_ratio  # 0: no limit
        self.bytes_in = 0           # compressed bytes fed to the decompressor
        self.bytes_out = 0
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
        data = b""
        if not self._has_output():  # the last input is used up: feed the next piece
            data = self._raw.read(FEED_BYTES)
            if not data:
                self._done = True
                if self._began and not self._d.eof:
                    self._error = EOFError(f"{self._kind} stream ends before its end-of-stream marker (truncated)")
                return
            self.bytes_in += len(data)
        parts = []
        try:
            while True:
                self._began = True
                parts.append(self._decompress(data))
                if not self._d.eof:
                    break
                data = self._d.unused_data  # next member of a concatenated stream
                self._d = _new(self._kind)
                self._began = False
                if not data:
                    break
        except ERRORS as exc:
            self._error = exc
        self._out, self._pos = b"".join(parts), 0
        self._check_ratio(len(self._out))

    def _decompress(self, data: bytes) -> bytes:
        if self._kind == "gzip":  # zlib keeps input it had no room to expand in unconsumed_tail
            return self._d.decompress(self._d.unconsumed_tail + data, OUT_BYTES)
        return self._d.decompress(data, max_length=OUT_BYTES)

    def _has_output(self) -> bool:
        """Input already fed still holds output (a step stopped at OUT_BYTES)."""
        if self._d.eof:
            return False
        if self._kind == "gzip":
            return bool(self._d.unconsumed_tail)
        return not self._d.needs_input

    def _check_ratio(self, made: int) -> None:
        self.bytes_out += made
        if (self.max_ratio and self.bytes_out > RATIO_FLOOR_BYTES
                and self.bytes_out > self.max_ratio * max(self.bytes_in, 1)):
            self._done = True
            self._error = self._error or ExpansionLimit(
                f"{self._kind} output exceeds {self.max_ratio:g}x the compressed bytes read "
                f"({self.bytes_out:,} bytes from {self.bytes_in:,}): reading stopped, a decompression "
                "bomb? (--max-expansion raises the limit)")
