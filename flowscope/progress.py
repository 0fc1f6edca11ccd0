"""What `analyze(..., on_progress=)` is told while it reads: bytes of the capture files.

A leaf (no numpy, no stages): the CLI's progress bar and a library caller's hook both take
these reports. Sizes are bytes on disk, so a gzip/bzip2/xz input counts compressed bytes,
which is what is read from disk and what `ls -l` shows.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Progress:
    """One report: the file being read and how far, and the whole run's bytes."""
    file: int              # index in the paths given to analyze()
    path: str
    file_bytes_read: int   # bytes of this file read so far
    file_bytes: int        # its size on disk (0: not a regular file, e.g. a pipe)
    bytes_read: int        # all files: bytes read so far (files done count whole)
    total_bytes: int       # all files: sum of sizes on disk


ProgressHook = Callable[[Progress], None]


class Tracker:
    """Turns the pipeline's (file index, position) calls into Progress reports for `hook`.

    Reports come about once a batch (16,384 packets by default), in file order; a file that
    ends early (an error, a limit) is not topped up, so bytes_read may end below total_bytes.
    """

    def __init__(self, paths: list[str], hook: ProgressHook):
        self.paths = [str(p) for p in paths]
        self.sizes = [os.path.getsize(p) if os.path.isfile(p) else 0 for p in self.paths]
        self.total = sum(self.sizes)
        self.read = [0] * len(self.paths)
        self.hook = hook

    def __call__(self, k: int, position: int) -> None:
        self.read[k] = position
        self.hook(Progress(k, self.paths[k], position, self.sizes[k], sum(self.read), self.total))
