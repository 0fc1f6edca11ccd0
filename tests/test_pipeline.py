"""The incremental Analysis object: parts fed one at a time give the batch result."""
from conftest import SAMPLE, split_pcap

from flowscope import Settings
from flowscope.pipeline import Analysis, run


def _rows(table):
    return table.drop_columns(["capture"]).to_pylist() if "capture" in table.column_names else table.to_pylist()


def test_snapshot_then_more_parts_equals_batch_run(tmp_path):
    paths = [str(p) for p in split_pcap(SAMPLE, [300, 700], tmp_path)]
    settings = Settings()
    batch, _, batch_notes = run(paths, settings)
    live = Analysis(settings, parts=None)
    live.add(paths[0])
    early, _, _ = live.finish(final=False)
    assert 0 < early.num_rows <= batch.num_rows
    for p in paths[1:]:
        live.add(p)
    again, _, _ = live.finish(final=False)   # a second snapshot must not consume the payload
    final, caps, notes = live.finish()
    assert _rows(final) == _rows(batch)
    assert _rows(again) == _rows(batch)
    assert notes["dissectors"] == batch_notes["dissectors"]
    assert [c.path for c in caps] == paths


def test_no_parts_gives_an_empty_table():
    table, caps, _ = Analysis(Settings()).finish()
    assert table.num_rows == 0 and caps == []
