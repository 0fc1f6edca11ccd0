"""What "the same analysis" means across engines, checked column by column."""
from __future__ import annotations

from flowscope import AnalysisResult, Settings, hashing
from flowscope.engine import chunks, tasks
from flowscope.engine.combine import assemble, exact_results
from flowscope.pipeline import Analysis


def assert_same(local, other, chunked: bool = True) -> None:
    """Two AnalysisResults: every column of every flow, every capture entry, every note.

    `chunked`: one side cut files into more parts than the other. Then the dissector
    counters (work done, not findings) may differ: a record that may continue the previous
    part keeps its first payload packets whatever they look like, so more payloads are
    kept and tried (`payload-packets-kept`, `quic-unknown-version`...); labels do not change.
    """
    for what in ("table", "frames_table", "events_table"):
        a, b = getattr(local, what), getattr(other, what)
        assert a.schema == b.schema, what
        assert a.num_rows == b.num_rows, what
        for name in a.column_names:
            assert a[name].equals(b[name]), f"{what}: column {name} differs"
    sa, sb = local.summary, other.summary
    if chunked:
        sa.pop("dissectors", None)
        sb.pop("dissectors", None)
    assert sa == sb


def run_parts_here(paths, settings: Settings, chunk_bytes: int | None):
    """The engine's plan, tasks and merge, run one part after another in this process:
    (AnalysisResult, re-reads)."""
    specs = chunks.plan([str(p) for p in paths], chunk_bytes)

    def read(spec, k):
        return tasks.read(spec, k, settings, len(specs))
    results, rereads = exact_results(specs, (read(s, k) for k, s in enumerate(specs)), read)
    analysis = Analysis(settings, parts=len(specs))
    assemble(analysis, specs, results)
    finished = analysis.finish(hashing.start([str(p) for p in paths]))
    return AnalysisResult.from_finished(finished, settings), rereads
