"""What a worker runs: one part read into flow records, with its own payload collector.

Everything here is a pure function of its arguments and the input file, so a task that
is run again (its worker died) gives the same result, and the client keeps one result a
part: nothing is lost or counted twice.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flowscope import hashing
from flowscope.dissect.collect import PayloadCollector
from flowscope.engine.chunks import PartSpec, PcapChunk
from flowscope.engine.sweeps import BufferRuns
from flowscope.heap import without_cyclic_gc
from flowscope.pipeline import new_collector, read_part
from flowscope.settings import Settings
from flowscope.sources import CaptureStats


@dataclass
class PartResult:
    records: np.ndarray                 # flow records, CAPTURE = PART = the part's index
    capture: CaptureStats               # what this part held (a chunk: its share of the file)
    collector: PayloadCollector | None  # payload and evidence, keyed (part index, flow serial)
    start: int                          # where the part began reading (a chunk's guess)
    stop: int | None                    # a chunk read to its limit: where the next one begins
    runs: BufferRuns | None             # a chunk's records by read buffer (sweeps.py)


def read(spec: PartSpec, index: int, settings: Settings, parts: int) -> PartResult:
    """Read part number `index` of a run of `parts` parts."""
    capture = CaptureStats(path=spec.path)
    collector = new_collector(settings, parts)  # the arguments the client's Analysis uses
    opened: list[PcapChunk] = []

    def open_chunk(_path, cap):
        opened.append(PcapChunk(spec, cap))
        return opened[-1]
    with without_cyclic_gc():
        if spec.whole:
            records = read_part(spec.path, index, capture, settings, collector)
        else:
            records = read_part(spec.path, index, capture, settings, collector, open_reader=open_chunk)
    chunk = opened[0] if opened else None
    return PartResult(records, capture, collector,
                      chunk.start if chunk else spec.start,
                      chunk.stop if chunk and capture.error is None else None,
                      chunk.runs if chunk else None)


def sha256(path: str) -> str | None:
    """The evidence hash of one input, computed where the file is (None if unreadable)."""
    return hashing.FileHash(path).result()
