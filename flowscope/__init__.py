"""flowscope: measure what a messenger's traffic tells its operator, from packet captures.

    >>> import flowscope
    >>> result = flowscope.analyze(["captures/sample_session.pcap"])
    >>> result.flows.head()          # one row a bidirectional flow (pandas)
    >>> result.frames.head()         # WhatsApp chat frames / Web TLS records: sizes and times
    >>> result.events.head()         # messages, receipts, presence, calls, media, other flows
    >>> result.summary["captures"]   # per-file statistics
    >>> result.write("out/")         # flows, frames and events .parquet + summary.json
"""
from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"

from flowscope.errors import CaptureError, FlowscopeError, UsageError  # noqa: E402
from flowscope.settings import Settings  # noqa: E402

__all__ = ["AnalysisResult", "CaptureError", "FlowscopeError", "Settings", "UsageError",
           "__version__", "analyze"]


class AnalysisResult:
    """What `analyze` returns: the flow, frame and event tables and per-capture statistics."""

    def __init__(self, table, captures: list, settings: Settings, notes: dict | None = None,
                 frames_table=None, events_table=None):
        from flowscope import schema
        from flowscope.metadata.stage import empty_table
        self.table = table          # pyarrow.Table with the columns of schema.FLOWS
        self.captures = captures    # one CaptureStats per input file
        self.settings = settings
        self.notes = notes or {}    # what later stages report: catalog version, dissector counts
        self.frames_table = frames_table if frames_table is not None else empty_table(schema.FRAMES)
        self.events_table = events_table if events_table is not None else empty_table(schema.EVENTS)
        self._pandas: dict = {}

    @classmethod
    def from_finished(cls, finished, settings: Settings) -> "AnalysisResult":
        """From pipeline.run / Analysis.finish."""
        return cls(finished.flows, finished.captures, settings, finished.notes, finished.frames, finished.events)

    def _df(self, name: str, table):
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
        from flowscope.report.tables import summary_dict
        return summary_dict(self)

    @property
    def errors(self) -> list[str]:
        return [c.error for c in self.captures if c.error]

    def write(self, out, force: bool = False) -> list[Path]:
        from flowscope.report.tables import check_out_dir, write_tables
        out = Path(out)
        check_out_dir(out, [c.sha256 for c in self.captures], force)
        return write_tables(self, out)


def analyze(paths, settings: Settings | None = None, **options) -> AnalysisResult:
    """Analyse capture files (pcap, pcapng, optionally compressed) into an AnalysisResult.

    `paths` is a path or a list of paths; keyword options override Settings fields.
    Files that cannot be read are listed in `result.errors`; the others are analysed.
    """
    from flowscope.pipeline import run
    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = [str(p) for p in paths]
    if not paths:
        raise UsageError("analyze: no capture files given")
    settings = settings or Settings()
    if options:
        settings = Settings(**{**settings.__dict__, **options})
    return AnalysisResult.from_finished(run(paths, settings), settings)
