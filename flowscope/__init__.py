"""flowscope: measure what a messenger's traffic tells its operator, from packet captures.

    >>> import flowscope
    >>> result = flowscope.analyze(["captures/sample_session.pcap"])
    >>> result.flows.head()          # one row a bidirectional flow (pandas)
    >>> result.frames.head()         # WhatsApp chat frames / Web TLS records: sizes and times
    >>> result.events.head()         # messages, receipts, presence, calls, media, other flows
    >>> result.summary["captures"]   # per-file statistics
    >>> result.write("out/")         # tables, charts, report.html/pdf, manifest.json
    >>> flowscope.align("out/", "captures/sample_session.scenario.csv")  # the auditor's action log
    >>> flowscope.diff("out/", "other/").text()                             # two analyses side by side
    >>> flowscope.analyze(paths, on_progress=print)  # a flowscope.Progress about once a batch
"""
from __future__ import annotations

from pathlib import Path

from flowscope._version import __version__
from flowscope.errors import CaptureError, FlowscopeError, UsageError
from flowscope.progress import Progress, ProgressHook, Tracker
from flowscope.settings import Settings

__all__ = ["AnalysisResult", "CaptureError", "FlowscopeError", "Progress", "Settings", "UsageError",
           "__version__", "align", "analyze", "diff"]


class AnalysisResult:
    """What `analyze` returns: the flow, frame and event tables and per-capture statistics."""

    def __init__(self, table, captures: list, settings: Settings, notes: dict | None = None,
                 frames_table=None, events_table=None, *, analysed_at: str | None = None):
        from flowscope import schema
        from flowscope.metadata.stage import empty_table
        from flowscope.report.manifest import now_utc
        self.table = table          # pyarrow.Table with the columns of schema.FLOWS
        self.captures = captures    # one CaptureStats per input file
        self.settings = settings
        self.notes = notes or {}    # what later stages report: catalog version, dissector counts
        self.frames_table = frames_table if frames_table is not None else empty_table(schema.FRAMES)
        self.events_table = events_table if events_table is not None else empty_table(schema.EVENTS)
        self.analysed_at = analysed_at or now_utc()  # ISO 8601 UTC; manifest.json and one report line
        self.write_notes: list[str] = []  # what write() could not do (e.g. no Chromium for the PDF)
        self._pandas: dict = {}

    @classmethod
    def from_finished(cls, finished, settings: Settings) -> "AnalysisResult":
        """From pipeline.run / Analysis.finish."""
        return cls(finished.flows, finished.captures, settings, finished.notes, finished.frames, finished.events)

    def _df(self, name: str, table):
        self._tables()
        if name not in self._pandas:
            self._pandas[name] = table.to_pandas()
        return self._pandas[name]

    @property
    def flows(self):
        """The flow table as a pandas DataFrame (converted once, on first use)."""
        return self._df("flows", self.table)

    @property
    def frames(self):
        """WhatsApp chat frames and WhatsApp Web TLS records (pandas, converted on first use)."""
        return self._df("frames", self.frames_table)

    @property
    def events(self):
        """Events: chat heuristics, calls, media transfers, other Meta flows (pandas)."""
        return self._df("events", self.events_table)

    @property
    def summary(self) -> dict:
        self._tables()
        from flowscope.report.tables import summary_dict
        return summary_dict(self)

    @property
    def errors(self) -> list[str]:
        return [c.error for c in self.captures if c.error]

    def write(self, out, force: bool = False, *, report: bool = True, pdf: bool = True,
              pseudonymize: bool = True, pseudonym_key=None, scenario=None,
              scenario_tolerance_s: float | None = None, release: bool = False) -> list[Path]:
        """Write the evidence directory: tables, charts/, report.html, report.pdf, manifest.json.

        Local, MAC and call-peer addresses are pseudonymised with the key in `pseudonym_key`
        (default ~/.config/flowscope/pseudonym.key, created if absent) unless `pseudonymize`
        is False. Another analysis' directory is not overwritten without `force`. Returns
        the files written; what could not be written (no Chromium: no PDF) is in
        `write_notes`. With `scenario` (the auditor's action log, a CSV file: docs/metadata.md
        §7), each action is aligned with the events it caused into actions.parquet, within
        `scenario_tolerance_s` seconds (default 5). With `release`, the tables are let go once
        written, before the report is drawn from the files (the CLI: at 100k flows the
        report's peak memory no longer carries them); see `release()`."""
        from flowscope import report as _report
        files, self.write_notes = _report.write(self, out, force=force, report=report, pdf=pdf,
                                                pseudonymize=pseudonymize, pseudonym_key=pseudonym_key,
                                                scenario=scenario, scenario_tolerance_s=scenario_tolerance_s,
                                                release=release)
        return files

    def release(self) -> None:
        """Let the tables go (their memory with them); `summary`, `flows`, `frames` and
        `events` are not available afterwards. `captures`, `errors` and `notes` stay."""
        self.table = self.frames_table = self.events_table = None
        self._pandas.clear()

    def _tables(self):
        if self.table is None:
            raise RuntimeError("this AnalysisResult released its tables (write(release=True)); "
                               "read them from the written directory")


def align(out, scenario, tolerance_s: float = 5.0, *, force: bool = False) -> list[Path]:
    """Add a scenario (the auditor's action log, CSV `time,action,peer,note`) to the analysis
    written in directory `out`: actions.parquet, summary.json `scenario`, the report's
    "Scripted session", manifest.json updated. Returns the files written."""
    from flowscope import report as _report
    files, _notes = _report.align(out, scenario, tolerance_s, force=force)
    return files


def diff(dir_a, dir_b):
    """Two written analyses side by side (flowscope.report.diff.Diff: .text(), .to_dict(), .html())."""
    from flowscope.report.diff import compare
    return compare(dir_a, dir_b)


_ENGINES = ("local", "dask")


def analyze(paths, settings: Settings | None = None, *, engine: str = "local",
            on_progress: ProgressHook | None = None, scheduler: str | None = None,
            workers: int | None = None, chunk_bytes: int | None = None, **options) -> AnalysisResult:
    """Analyse capture files (pcap, pcapng, optionally compressed) into an AnalysisResult.

    `paths` is a path or a list of paths; keyword options override Settings fields
    (`analyze(path, geo=False, udp_idle_s=60)`). Files that cannot be read are listed in
    `result.errors`; the others are analysed. A bad option raises UsageError.

    `on_progress`, if given, is called with a `flowscope.Progress` about once a batch of
    packets while the files are read in this process: the file's index and path, its bytes
    read and size, and the run's bytes read and total (bytes on disk). The CLI's progress
    bar is such a hook. With engine="dask" the workers read the files and it is not called.

    `engine="dask"` reads the files, and large classic pcaps in chunks of `chunk_bytes`
    (default 256 MiB; 0: never split), as tasks on a dask.distributed cluster: the one at
    `scheduler` ("tcp://host:8786"), else a local one of `workers` processes. The result
    is the same as in-process (docs/distributed.md).
    """
    if engine not in _ENGINES:
        raise UsageError(f"analyze: engine must be one of {', '.join(_ENGINES)} (got {engine!r})")
    if engine == "local" and (scheduler or workers or chunk_bytes is not None):
        raise UsageError("analyze: scheduler, workers and chunk_bytes need engine='dask'")
    if workers is not None and workers < 1:
        raise UsageError(f"analyze: workers must be >= 1 (got {workers})")
    if chunk_bytes is not None and chunk_bytes < 0:
        raise UsageError(f"analyze: chunk_bytes must be >= 0 (got {chunk_bytes})")
    if on_progress is not None and not callable(on_progress):
        raise UsageError(f"analyze: on_progress must be callable (got {type(on_progress).__name__})")
    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = [str(p) for p in paths]
    if not paths:
        raise UsageError("analyze: no capture files given")
    settings = settings or Settings()
    if options:
        settings = Settings(**{**settings.__dict__, **options})
    if engine == "dask":
        from flowscope.engine.dask import CHUNK_BYTES, run as run_dask
        finished = run_dask(paths, settings, scheduler, workers,
                            CHUNK_BYTES if chunk_bytes is None else chunk_bytes or None)
    else:
        from flowscope import hashing
        hashes = hashing.start(paths)  # on another core, while the imports below load numba and pandas
        from flowscope.pipeline import run
        finished = run(paths, settings, on_progress=Tracker(paths, on_progress) if on_progress else None,
                       hashes=hashes)
    return AnalysisResult.from_finished(finished, settings)
