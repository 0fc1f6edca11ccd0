"""The only place that knows the order of the stages: sources -> decode -> flows -> ...

Each input file is one part: read in batches, decoded, accounted in its own flow table,
flushed; the parts' records are then merged exactly (flows/merge.py), so a flow that
continues from one file into the next is one flow again. A file that fails keeps what
was read before the failure, and the other files are still analysed.
"""
from __future__ import annotations

import gc
import lzma
import zlib
from contextlib import contextmanager
from typing import Callable, NamedTuple

import numpy as np
import pyarrow as pa

from flowscope.decode.layout import DUP, NO_UID, OK, STATUS, TRAILER, TS, UID, new_batch
from flowscope import hashing, schema
from flowscope.errors import CaptureError, LimitError
from flowscope.dissect.collect import PayloadCollector
from flowscope.flows.finalize import flow_order, to_table
from flowscope.dissect.streams import StreamStore
from flowscope.flows.layout import CAPTURE, HASH, OPEN_AT_END, ORIG_IS_A, PART, STREAM
from flowscope.flows.merge import merge_parts
from flowscope.flows.table import FlowTable
from flowscope.settings import Settings
from flowscope.sources import CaptureStats, open_capture

EXPIRE_EVERY_BATCHES = 64
EXPIRE_SLACK_NS = 60 * 1_000_000_000  # tolerate timestamps running backwards by up to 60 s


def _collect_apps(buf: np.ndarray, P: np.ndarray, n: int, capture: CaptureStats) -> None:
    uids = P[:n, UID]
    has = uids != NO_UID
    if not has.any():
        return
    for uid in np.unique(uids[has]).tolist():
        if uid in capture.apps:
            continue
        rows = np.flatnonzero((uids == uid) & (P[:n, TRAILER] >= 0))
        if len(rows):
            t = int(P[rows[0], TRAILER])
            capture.apps[uid] = bytes(buf[t + 8:t + 28]).split(b"\0", 1)[0].decode("utf-8", "replace")
        else:
            capture.apps.setdefault(uid, None)


def read_part(path: str, index: int, capture: CaptureStats, settings: Settings,
              collector: PayloadCollector | None = None, on_progress: Callable[[int], None] | None = None,
              open_reader: Callable = open_capture, carry=(), carry_always: bool = False) -> np.ndarray:
    """Read one file (or, through `open_reader`, a byte range of one) into flow records
    (all flushed, open ones marked OPEN_AT_END). `index` is the part's number: records and
    collected payload carry it, so parts read anywhere can be joined.

    `carry`: key hashes of walked streams (WhatsApp chat/Web) open at the end of parts read
    before, whose continuation here keeps all its payload too."""
    table = FlowTable(settings.timeouts_ns(), settings.dedup_ns(), keep=collector.keep if collector else None,
                      carry=carry, carry_always=carry_always, max_flows=settings.max_flows, source=path)
    P = new_batch(settings.batch_packets)
    reader = None
    try:
        reader = open_reader(path, capture)
        reader.stream.limit_expansion(settings.max_expansion)
        capture.format = capture.format or reader.format
        for batch_no, (buf, n) in enumerate(reader.batches(P)):
            table.add(P, n, part=index, capture=index, buf=buf)
            _note_batch(buf, P, n, capture)
            if collector:
                collector(buf, P[:n], index)
            if batch_no % EXPIRE_EVERY_BATCHES == EXPIRE_EVERY_BATCHES - 1:
                table.expire(EXPIRE_SLACK_NS)
            if on_progress:
                on_progress(reader.stream.position())
    except CaptureError as exc:
        capture.error = str(exc)
        if capture.compression and capture.compression not in capture.error and not isinstance(exc, LimitError):
            capture.error += f" (in {capture.compression}-compressed data)"
    except (OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
        capture.error = f"{path}: corrupt or unreadable data: {exc}"
    finally:
        if reader is not None:
            reader.stream.close()
    table.flush()
    return table.records()


def _note_batch(buf: np.ndarray, P: np.ndarray, n: int, capture: CaptureStats) -> None:
    ok = P[:n, STATUS] == OK
    capture.duplicates += int(np.count_nonzero(P[:n, DUP]))
    if ok.any():
        ts = P[:n, TS][ok]
        lo, hi = int(ts.min()), int(ts.max())
        capture.first_ts_ns = lo if capture.first_ts_ns is None else min(lo, capture.first_ts_ns)
        capture.last_ts_ns = hi if capture.last_ts_ns is None else max(hi, capture.last_ts_ns)
    _collect_apps(buf, P, n, capture)


def run(paths: list[str], settings: Settings, on_progress: Callable[[int, int], None] | None = None,
        hashes: dict | None = None) -> "Finished":
    """Analyse `paths`; return a Finished: (flows, captures, notes, frames, events).

    `hashes` may hold hashing.start(paths) begun earlier (the CLI starts it before imports).
    """
    with _without_cyclic_gc():
        return _run(paths, settings, on_progress, hashes)


@contextmanager
def _without_cyclic_gc():
    """The stages allocate hundreds of thousands of small, acyclic objects (payload copies,
    evidence, labels); refcounting frees them all, while the cyclic collector would rescan
    the growing heap again and again (measured: 0.4 s of a 2.3 s benchmark run)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def new_collector(settings: Settings, parts: int | None) -> PayloadCollector | None:
    """The payload collector for a run of `parts` parts (None: unknown, as in live capture).

    Other engines build one per part with the same arguments, then merge them."""
    if not settings.classify:
        return None
    many = 2 if parts is None else parts
    return PayloadCollector(many, int(settings.timeouts_ns().max()))


def _run(paths, settings, on_progress, hashes):
    analysis = Analysis(settings, parts=len(paths))
    for k, path in enumerate(paths):
        report = (lambda pos, k=k: on_progress(k, pos)) if on_progress else None
        analysis.add(str(path), report)
    return analysis.finish(hashes or hashing.start(paths))


class Analysis:
    """The stages as an object that takes one file (part) at a time: `run` feeds it a list,
    live capture feeds it each ring-buffer file as dumpcap closes it. `finish` merges the
    parts exactly and runs the later stages; it may be called again after more `add`s.

    `parts` is how many parts will come (None: unknown, as in live capture); with more than
    one, records that may continue the previous part keep their payload until the merge.
    A part is a file, or (engine/) a byte range of one: `captures` has one entry a file.
    """

    def __init__(self, settings: Settings, parts: int | None = None):
        self.settings = settings
        self.captures: list[CaptureStats] = []
        self.parts: list[np.ndarray] = []
        self._file_of_part: list[int] = []  # index into captures
        self._sources: list[tuple | None] = []  # (path, open_reader) a part, to read it again
        self.collector = new_collector(settings, parts)
        # Engines that read a file in pieces: fn(merged records, part index of each merged
        # row's last part) sets, in place, what only a one-pass read of the file knows.
        self.settle_merged: Callable[[np.ndarray, np.ndarray], None] | None = None
        self._geo = _open_geo(settings)  # opens while the parts are read
        self._carry: set[int] = set()    # walked streams open at the end of a file read so far

    def add(self, path: str, on_progress: Callable[[int], None] | None = None) -> CaptureStats:
        cap = CaptureStats(path=str(path))
        part = read_part(str(path), len(self.parts), cap, self.settings, self.collector, on_progress,
                         carry=self._carry)
        self.add_part(part, cap, source=(str(path), open_capture))
        return cap

    def add_part(self, records: np.ndarray, capture: CaptureStats, source: tuple | None = None) -> None:
        """Take a part read elsewhere by read_part(..., index=len(self.parts), ...); its payload
        goes into self.collector by the caller. `capture` is the entry of the file it came
        from: new files are appended to `captures`, a later chunk of a file already there
        passes that same object (filled in by the caller). `source` is (path, open_reader)
        to read the part again (see _reread)."""
        if len(records) and (records[:, CAPTURE] != len(self.parts)).any():
            raise ValueError(f"part records carry another part index than {len(self.parts)}")
        file = next((k for k, c in enumerate(self.captures) if c is capture), None)
        if file is None:
            self.captures.append(capture)
            file = len(self.captures) - 1
        self.parts.append(records)
        self._file_of_part.append(file)
        self._sources.append(source)
        walked_open = (records[:, OPEN_AT_END] == 1) & (records[:, STREAM] > 0)
        self._carry.update(records[walked_open, HASH].tolist())

    def _reread(self, part: int, records: set) -> StreamStore:
        """The streams of `records` ((part, serial) of this part), read again: needed when the
        part was read without knowing the walked streams open at the end of the part before
        it (files given out of time order; parts read in parallel by an engine)."""
        from flowscope.flows.layout import SERIAL
        if self._sources[part] is None:
            raise ValueError(f"part {part} cannot be read again: added without its source")
        path, open_reader = self._sources[part]
        rows = self.parts[part]
        hashes = rows[np.isin(rows[:, SERIAL], [s for _c, s in records]), HASH].tolist()
        probe = _StreamsOnly(self.collector.keep, records)
        read_part(path, part, CaptureStats(path=path), self.settings, probe, open_reader=open_reader,
                  carry=hashes, carry_always=True)
        return probe.streams

    def finish(self, hashes: dict | None = None, final: bool = True) -> "Finished":
        """Finished(flows, captures, notes, frames, events) for the parts so far.

        `final=False` gives a snapshot (live view) and leaves the collected payload in place."""
        paths = [c.path for c in self.captures]
        records = np.concatenate(self.parts) if self.parts else np.empty((0, self._width()), np.int64)
        file_of_part = np.array(self._file_of_part, dtype=np.int64)
        rank = _time_ranks(self.captures, file_of_part)
        records[:, PART] = rank[records[:, PART]]
        merged, dest = merge_parts(records, self.settings.timeouts_ns())
        if self.settle_merged is not None:
            part_of_rank = np.argsort(rank)
            self.settle_merged(merged, part_of_rank[merged[:, PART]])
        order = flow_order(merged)
        flow_of_merged = np.empty(len(order), dtype=np.int64)
        flow_of_merged[order] = np.arange(len(order))
        flows = merged[order]
        flows[:, CAPTURE] = file_of_part[flows[:, CAPTURE]]  # the part a flow began in -> its file
        table = to_table(flows, paths, _apps(self.captures))
        notes: dict = {}
        if self.collector:
            from flowscope.classify.stage import label_flows
            collector = self.collector if final else self.collector.snapshot()
            table, notes = label_flows(table, records, dest, flow_of_merged, merged[:, ORIG_IS_A],
                                       collector, self.settings)
        else:
            for c in schema.LABELS:
                table = table.append_column(pa.field(c.name, c.type), pa.nulls(table.num_rows, c.type))
        table, geo_notes = _locate(table, self.captures, self.settings, self._geo.result() if self._geo else None)
        notes.update(geo_notes)
        from flowscope.metadata.stage import describe
        table, frames, events, meta_notes = describe(
            table, records, dest, flow_of_merged, merged,
            self.collector.streams if self.collector else None, self._reread)
        if meta_notes:
            notes["metadata"] = meta_notes
        if hashes is not None:
            for cap in self.captures:
                if cap.path in hashes:
                    cap.sha256 = hashes[cap.path].result()
        return Finished(table, self.captures, notes, frames, events)

    @staticmethod
    def _width() -> int:
        from flowscope.flows.layout import NF
        return NF


class _StreamsOnly:
    """A collector for a second reading of a file: only the named records' streams."""

    def __init__(self, keep, records: set):
        self.keep = keep
        self.streams = StreamStore(only=records)

    def __call__(self, buf, P, part) -> None:
        self.streams(buf, P, part)


class Finished(NamedTuple):
    """What Analysis.finish (and run) return; unpacks as (flows, captures, notes, frames, events)."""
    flows: pa.Table          # schema.FLOWS
    captures: list           # CaptureStats per input file, in the order given
    notes: dict              # what the stages report for summary.json
    frames: pa.Table         # schema.FRAMES
    events: pa.Table         # schema.EVENTS


def _open_geo(settings: Settings):
    if not settings.geo:
        return None
    from flowscope.geo.stage import Opener
    return Opener(settings)


def _locate(table: pa.Table, captures, settings: Settings, databases) -> tuple[pa.Table, dict]:
    if databases is None:
        for c in schema.GEO:
            table = table.append_column(pa.field(c.name, c.type), pa.nulls(table.num_rows, c.type))
        return table, {}
    from flowscope.geo.stage import locate_flows
    return locate_flows(table, captures, settings, databases)


def _time_ranks(captures: list[CaptureStats], file_of_part: np.ndarray) -> np.ndarray:
    """Parts merge in time order: rank each file by its first timestamp, and the chunks of
    one file by their place in it (a file's own order stands even where its clock jumps)."""
    starts = np.array([c.first_ts_ns if c.first_ts_ns is not None else 2**62 for c in captures], dtype=np.int64)
    rank = np.empty(len(file_of_part), dtype=np.int64)
    rank[np.lexsort((np.arange(len(file_of_part)), starts[file_of_part]))] = np.arange(len(file_of_part))
    return rank


def _apps(captures: list[CaptureStats]) -> dict:
    apps: dict = {}
    for cap in captures:
        for uid, name in cap.apps.items():
            if apps.get(uid) is None:
                apps[uid] = name
    return apps
