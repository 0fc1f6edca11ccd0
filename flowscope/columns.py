"""Arrow columns as Python lists for the stages that work per flow, one object per distinct
value rather than one per row.

`to_pylist()` of a string column makes a new str for every row: at 100k flows ~6 MB a
column, made and freed stage after stage into a heap that then stays fragmented (peak RSS).
`pylist()` makes one str per distinct value and repeats references to it.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa


def pylist(col: pa.ChunkedArray | pa.Array) -> list:
    """The values of `col` as a list (None for null), equal to `col.to_pylist()`."""
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        return col.to_pylist()
    encoded = one_array(col).dictionary_encode()
    distinct = np.empty(len(encoded.dictionary) + 1, dtype=object)  # the last: null
    distinct[:-1] = encoded.dictionary.to_pylist()
    index = encoded.indices.fill_null(len(distinct) - 1).to_numpy(zero_copy_only=False)
    return distinct[index].tolist()


def one_array(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    """The column as one array: an array or a single chunk as it is (no copy), chunks
    joined, or an empty array of its type."""
    if isinstance(col, pa.Array):
        return col
    if col.num_chunks == 1:
        return col.chunk(0)
    return col.combine_chunks() if col.num_chunks else pa.array([], col.type)


def pydict(table: pa.Table, names: list[str]) -> dict[str, list]:
    """{name: pylist(column)} for the columns `names` of `table`."""
    return {name: pylist(table[name]) for name in names}
