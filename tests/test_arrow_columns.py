"""flowscope/columns.py: pylist equals to_pylist, while sharing one object per distinct string."""
from __future__ import annotations

import pyarrow as pa
import pytest

from flowscope.columns import one_array, pydict, pylist


@pytest.mark.parametrize("col", [
    pa.array(["a", None, "b", "a", "", None, "é\u202e"]),
    pa.chunked_array([pa.array(["x", "y"]), pa.array([None, "x"])]),
    pa.chunked_array([], pa.string()),
    pa.array([], pa.large_string()),
    pa.array([None, None], pa.string()),
    pa.array([1, None, 3]),
    pa.array([1.5, None]),
], ids=["strings", "chunks", "empty-chunked", "empty-large", "all-null", "ints", "floats"])
def test_pylist_equals_to_pylist(col):
    assert pylist(col) == col.to_pylist()


def test_repeated_strings_are_one_object():
    values = pylist(pa.array(["meta.facebook"] * 3 + ["whatsapp.chat"]))
    assert values[0] is values[1] is values[2] and values[3] == "whatsapp.chat"


def test_pydict_selects_columns():
    t = pa.table({"a": ["x", None], "b": [1, 2], "c": ["q", "q"]})
    assert pydict(t, ["a", "b"]) == {"a": ["x", None], "b": [1, 2]}


def test_one_array_keeps_a_single_chunk_and_joins_several():
    single = pa.chunked_array([pa.array(["x", "y"])])
    assert one_array(single).buffers()[2].address == single.chunk(0).buffers()[2].address  # not copied
    assert one_array(pa.chunked_array([pa.array(["x"]), pa.array([None], pa.string())])).to_pylist() == ["x", None]
    assert one_array(pa.chunked_array([], pa.string())).type == pa.string()
    plain = pa.array([1])
    assert one_array(plain) is plain
