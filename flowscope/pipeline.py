"""The only place that knows the order of the stages: sources -> decode -> flows -> ...

Each input file is one part: read in batches, decoded, accounted in its own flow table,
flushed; the parts' records are then merged exactly (flows/merge.py), so a flow that
continues from one file into the next is one flow again. A file that fails keeps what
was read before the failure, and the other files are still analysed.
"""
from __future__ import annotations

import lzma
import zlib
from typing import Callable, NamedTuple

import numpy as np
import pyarrow as pa

from flowscope.decode.layout import DUP, NO_UID, OK, STATUS, TRAILER, TS, UID, new_batch
from flowscope import hashing, heap, schema
from flowscope.errors import CaptureError, LimitError
from flowscope.dissect.collect import PayloadCollector
from flowscope.dissect.streams import PlatformAddresses
from flowscope.flows.finalize import flow_order, to_table
from flowscope.flows.layout import CAPTURE, OPEN_AT_END, PART, SERIAL
from flowscope.flows.merge import NOT_CHUNKED, MergedFlows, merge_parts
from flowscope.flows.table import EXPIRE_EVERY_BATCHES, EXPIRE_SLACK_NS, FlowTable
from flowscope.flows.timeouts import timeouts_ns
from flowscope.settings import Settings
from flowscope.sources import CaptureStats, open_capture


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
              open_reader: Callable = open_capture) -> np.ndarray:
    """Read one file (or, through `open_reader`, a byte range of one) into flow records
    (all flushed, open ones marked OPEN_AT_END). `index` is the part's number: records and
    collected payload carry it, so parts read anywhere can be joined."""
    table = FlowTable(timeouts_ns(settings), settings.dedup_ns(), keep=collector.keep if collector else None,
                      business=collector.business.arrays if collector and collector.business else None,
                      max_flows=settings.max_flows, source=path)
    P = new_batch(settings.batch_packets)
    reader = None
    try:
        reader = open_reader(path, capture)
        reader.stream.limit_expansion(settings.max_expansion)
        capture.format = capture.format or reader.format
        ended = 0  # table.finished[:ended]: records already handed to the collector
        for batch_no, (buf, n) in enumerate(reader.batches(P)):
            table.add(P, n, part=index, capture=index, buf=buf)
            _note_batch(buf, P, n, capture)
            if collector:
                collector(buf, P[:n], index)
            if batch_no % EXPIRE_EVERY_BATCHES == EXPIRE_EVERY_BATCHES - 1:
                table.expire(EXPIRE_SLACK_NS)
                if collector and len(table.finished) > ended:
                    collector.end_records(index, np.concatenate(table.finished[ended:])[:, SERIAL].tolist())
                    ended = len(table.finished)
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
    records = table.records()
    if collector:  # one part: nothing continues it, so every walk ends (their search state freed)
        still_open = [] if collector.single else records[records[:, OPEN_AT_END] == 1, SERIAL].tolist()
        collector.streams.close_part(index, still_open)
    heap.release()  # the part's transient buffers, payload copies and search state
    return records


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
    with heap.without_cyclic_gc():
        return _run(paths, settings, on_progress, hashes)


def new_collector(settings: Settings, parts: int | None) -> PayloadCollector | None:
    """The payload collector for a run of `parts` parts (None: unknown, as in live capture).

    Other engines build one per part with the same arguments, then merge them."""
    if not settings.classify:
        return None
    many = 2 if parts is None else parts
    collector = PayloadCollector(many, int(timeouts_ns(settings).max()), _walk_candidates(settings))
    collector.business = _business_walks(settings)
    collector.streams.platform = PlatformAddresses(settings.platform_hosts)
    return collector


def _business_walks(settings: Settings):
    """What the flow table walks as Business Platform records: ClientHellos naming a Cloud API
    or solution-provider host, and inbound hellos from the webhook-source networks (issue 13)."""
    from flowscope.classify.catalog import load_catalog
    from flowscope.flows.table import BusinessWalks
    catalog = load_catalog(settings.catalogs)
    return BusinessWalks(tuple(catalog.business_names()), tuple(r.prefix for r in catalog.webhook_sources),
                         tuple(catalog.business_names(services=("whatsapp.business_api",))))


def _walk_candidates(settings: Settings):
    """Which servers an open connection is walked towards: the catalog's WhatsApp and
    Meta addresses (dissect/streams.py)."""
    from flowscope.classify.catalog import load_catalog
    return load_catalog(settings.catalogs).chat_candidates()


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
        self._sweep_of_part: list[int] = []  # flows/merge.py NOT_CHUNKED, or a chunk's last sweep
        self.collector = new_collector(settings, parts)
        self._geo = _open_geo(settings)  # opens while the parts are read

    def add(self, path: str, on_progress: Callable[[int], None] | None = None) -> CaptureStats:
        self._check_open()
        cap = CaptureStats(path=str(path))
        part = read_part(str(path), len(self.parts), cap, self.settings, self.collector, on_progress)
        self.add_part(part, cap)
        return cap

    def add_part(self, records: np.ndarray, capture: CaptureStats, sweep_ns: int = NOT_CHUNKED) -> None:
        """Take a part read elsewhere by read_part(..., index=len(self.parts), ...); its payload
        goes into self.collector by the caller. `capture` is the entry of the file it came
        from: new files are appended to `captures`, a later chunk of a file already there
        passes that same object (filled in by the caller). `sweep_ns`: for a chunk of a file,
        the last idle sweep a one-pass read of the file would make (engine/sweeps.py)."""
        self._check_open()
        if len(records) and (records[:, CAPTURE] != len(self.parts)).any():
            raise ValueError(f"part records carry another part index than {len(self.parts)}")
        file = next((k for k, c in enumerate(self.captures) if c is capture), None)
        if file is None:
            self.captures.append(capture)
            file = len(self.captures) - 1
        self.parts.append(records)
        self._file_of_part.append(file)
        self._sweep_of_part.append(sweep_ns)

    def finish(self, hashes: dict | None = None, final: bool = True) -> "Finished":
        """Finished(flows, captures, notes, frames, events) for the parts so far.

        `final=False` gives a snapshot (live view) and leaves the parts and the collected
        payload in place. The final finish is one-way: it consumes the payload and lets the
        parts go once merged (100k flows: 40 MB of records), so the analysis takes no more
        parts and cannot be finished again."""
        self._check_open()
        table, mflows = self._merged(release=final)
        heap.release()  # the flow table's build (per-flow strings and arrays) before the labels
        notes: dict = {}
        walks = None
        if self.collector:
            from flowscope.classify.stage import label_flows
            from flowscope.metadata.walked import stitch_flows
            collector = self.collector if final else self.collector.snapshot()
            walks = stitch_flows(mflows, collector.streams)
            table, notes = label_flows(table, mflows, collector, self.settings, walks)
            del mflows, collector  # the record-to-flow join: not needed from here
            if final:
                self.collector = None  # its evidence and walks are in the labels and `walks` now
            heap.release()
        else:
            for c in schema.LABELS:
                table = table.append_column(pa.field(c.name, c.type), pa.nulls(table.num_rows, c.type))
        table, geo_notes = _locate(table, self.captures, self.settings, self._geo.result() if self._geo else None,
                                   self._geo.release if final and self._geo else None)
        notes.update(geo_notes)
        if final and self._geo:
            self._geo.release()
        heap.release()
        from flowscope.metadata.stage import describe
        table, frames, events, meta_notes = describe(table, walks)
        if meta_notes:
            notes["metadata"] = meta_notes
        if hashes is not None:
            for cap in self.captures:
                if cap.path in hashes:
                    cap.sha256 = hashes[cap.path].result()
        return Finished(table, self.captures, notes, frames, events)

    def _check_open(self) -> None:
        if self.parts is None:
            raise RuntimeError("this Analysis was finished (final=True): start a new one")

    def _merged(self, release: bool = False) -> tuple[pa.Table, MergedFlows]:
        """The parts' records merged into flows: (the flows table, the MergedFlows the
        evidence join and the walk stitching read). `release`: the parts go once merged
        (the final finish), before the flow rows are copied into flow order."""
        paths = [c.path for c in self.captures]
        if len(self.parts) == 1:
            records = self.parts[0]  # its PART column is all 0, the rank of the one part: no copy
        else:
            records = np.concatenate(self.parts) if self.parts else np.empty((0, self._width()), np.int64)
        file_of_part = np.array(self._file_of_part, dtype=np.int64)
        rank = _time_ranks(self.captures, file_of_part)
        records[:, PART] = rank[records[:, PART]]
        sweep_by_rank = np.empty(len(rank), dtype=np.int64)
        sweep_by_rank[rank] = self._sweep_of_part
        merged, dest = merge_parts(records, timeouts_ns(self.settings), sweep_by_rank)
        order = flow_order(merged)
        flow_of_merged = np.empty(len(order), dtype=np.int64)
        flow_of_merged[order] = np.arange(len(order))
        per_record = MergedFlows.record_columns(records, flow_of_merged[dest])
        del records, dest
        if release:
            self.parts = None  # 40 MB of records at 100k flows, not held beside the two copies below
        flows = merged[order]
        del merged  # one copy of the merged rows, in flow order (100k flows: 40 MB a copy)
        flows[:, CAPTURE] = file_of_part[flows[:, CAPTURE]]  # the part a flow began in -> its file
        merged_flows = MergedFlows(*per_record, *MergedFlows.flow_columns(flows))
        return to_table(flows, paths, _apps(self.captures)), merged_flows

    @staticmethod
    def _width() -> int:
        from flowscope.flows.layout import NF
        return NF


class Finished(NamedTuple):
    """What Analysis.finish (and run) return; unpacks as (flows, captures, notes, frames, events)."""
    flows: pa.Table          # schema.FLOWS
    captures: list           # CaptureStats per input file, in the order given
    notes: dict              # what the stages report for summary.json
    frames: pa.Table         # schema.FRAMES
    events: pa.Table         # schema.EVENTS


def _open_geo(settings: Settings):
    from flowscope.geo.stage import Opener, check_settings
    check_settings(settings)  # a bad --vantage fails before any file is read, with --no-geo too
    if not settings.geo:
        return None
    return Opener(settings)


def _locate(table: pa.Table, captures, settings: Settings, databases, looked_up=None) -> tuple[pa.Table, dict]:
    if databases is None:
        for c in schema.GEO:
            table = table.append_column(pa.field(c.name, c.type), pa.nulls(table.num_rows, c.type))
        return table, {}
    from flowscope.geo.stage import locate_flows
    return locate_flows(table, captures, settings, databases, looked_up)


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
