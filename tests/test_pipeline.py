"""The incremental Analysis object: parts fed one at a time give the batch result."""
from conftest import SAMPLE, split_pcap

from flowscope import Settings
from flowscope.pipeline import Analysis, run


def _rows(table):
    return table.drop_columns(["capture"]).to_pylist() if "capture" in table.column_names else table.to_pylist()


def test_snapshot_then_more_parts_equals_batch_run(tmp_path):
    paths = [str(p) for p in split_pcap(SAMPLE, [300, 700], tmp_path)]
    settings = Settings()
    batch = run(paths, settings)
    live = Analysis(settings, parts=None)
    live.add(paths[0])
    early = live.finish(final=False)
    assert 0 < early.flows.num_rows <= batch.flows.num_rows
    for p in paths[1:]:
        live.add(p)
    again = live.finish(final=False)   # a second snapshot must not consume the payload
    final, caps, notes, frames, events = live.finish()
    assert _rows(final) == _rows(batch.flows)
    assert _rows(again.flows) == _rows(batch.flows)
    assert again.frames.equals(batch.frames) and again.events.equals(batch.events)
    assert frames.equals(batch.frames) and events.equals(batch.events) and frames.num_rows == 95
    assert notes["dissectors"] == batch.notes["dissectors"]
    assert notes["metadata"] == batch.notes["metadata"]
    assert [c.path for c in caps] == paths


def test_no_parts_gives_an_empty_table():
    table, caps, _notes, frames, events = Analysis(Settings()).finish()
    assert table.num_rows == 0 and caps == [] and frames.num_rows == 0 and events.num_rows == 0


def test_the_final_finish_is_one_way(tmp_path):
    """The final finish consumed the payload and let the parts go: adding or finishing
    again is refused with a clear error, not answered with an empty or partial table."""
    import pytest
    live = Analysis(Settings(), parts=None)
    live.add(str(SAMPLE))
    assert live.finish().flows.num_rows > 0
    for again in (lambda: live.add(str(SAMPLE)), live.finish, lambda: live.finish(final=False)):
        with pytest.raises(RuntimeError, match="finished"):
            again()
