"""Sources: open a capture by its magic bytes (never its extension) and stream batches.

`open_capture(path)` returns a reader with `.batches(P)`; it yields (buffer, n) after
filling P[:n]. Compression (gzip, bzip2, xz) is detected by magic and undone on the fly.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from flowscope.decode.layout import REASONS, new_stats
from flowscope.errors import CaptureError
from flowscope.sources.pcap import MAGICS, PcapReader
from flowscope.sources.decompress import Decompressed
from flowscope.sources.pcapng import PcapngReader
from flowscope.sources.stream import ByteStream

COMPRESSION_MAGICS = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz"}
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"


@dataclass
class CaptureStats:
    """What one input file held; becomes its entry in summary.json's `captures` list."""
    path: str
    sha256: str | None = None
    format: str | None = None
    compression: str | None = None
    link_types: set = field(default_factory=set)
    stats: np.ndarray = field(default_factory=new_stats)
    duplicates: int = 0
    error: str | None = None
    sections: int = 0
    interfaces: int = 0
    interface_stats: dict = field(default_factory=dict)
    name_records: int = 0
    blocks_skipped: dict = field(default_factory=dict)
    apps: dict = field(default_factory=dict)       # PCAPdroid uid -> app name
    packages: dict = field(default_factory=dict)   # PCAPdroid uid -> package name
    first_ts_ns: int | None = None
    last_ts_ns: int | None = None


def open_capture(path: str, capture: CaptureStats):
    """Open `path`, detect compression and format, return a reader. Raises CaptureError."""
    if os.path.isdir(path):
        raise CaptureError(path, "is a directory, not a capture file")
    try:
        raw = open(path, "rb", buffering=0)
    except FileNotFoundError:
        raise CaptureError(path, "no such file") from None
    except PermissionError:
        raise CaptureError(path, "permission denied") from None
    except OSError as exc:
        raise CaptureError(path, f"cannot open: {exc.strerror or exc}") from None
    try:
        return _reader(path, raw, capture)
    except BaseException:
        raw.close()
        raise


def _reader(path: str, raw, capture: CaptureStats):
    head = raw.read(8)
    raw.seek(0)
    if not head:
        raise CaptureError(path, "empty file")
    fileobj = raw
    for magic, name in COMPRESSION_MAGICS.items():
        if head.startswith(magic):
            capture.compression = name
            fileobj = Decompressed(raw, name)
            break
    stream = ByteStream(fileobj, raw)
    stream.fill(8)
    inner = stream.tail()[:4]
    if len(inner) < 4 and stream.error:
        raise CaptureError(path, f"{capture.compression}: {stream.error}")
    if len(inner) < 4:
        raise CaptureError(path, f"truncated file ({len(inner)} bytes): too short for a capture header")
    if inner == PCAPNG_MAGIC:
        return PcapngReader(path, stream, capture)
    if int.from_bytes(inner, "little") in MAGICS:
        return PcapReader(path, stream, capture)
    raise CaptureError(path, f"not a pcap or pcapng capture (magic bytes {inner.hex()})")


def reason_counts(stats: np.ndarray) -> dict[str, int]:
    return {REASONS[k]: int(stats[k]) for k in range(1, len(REASONS)) if stats[k]}
