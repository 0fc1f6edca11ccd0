"""Where a one-pass read would have swept idle flows (engine/sweeps.py), from chunk runs."""
from __future__ import annotations

import numpy as np

from flowscope.engine.sweeps import NO_TS, BufferRuns, last_sweep_ns
from flowscope.flows.table import EXPIRE_EVERY_BATCHES


def _runs(groups, batch):
    """One chunk's BufferRuns from (buffer end, timestamps) groups."""
    r = BufferRuns()
    for end, ts in groups:
        ts = np.asarray(ts, dtype=np.int64)
        r.add(end, ts, np.ones(len(ts), dtype=bool), batch)
    return r


def test_a_read_shorter_than_the_sweep_period_never_swept():
    assert last_sweep_ns([_runs([(100, [1, 2, 3])], 10)], 10) == NO_TS


def test_the_last_sweep_sees_the_latest_time_of_its_batch():
    batch = 4
    n = batch * EXPIRE_EVERY_BATCHES + 3          # one full sweep period and a bit
    ts = list(range(10, 10 + n))
    got = last_sweep_ns([_runs([(1 << 30, ts)], batch)], batch)
    assert got == ts[batch * EXPIRE_EVERY_BATCHES - 1]


def test_chunks_of_one_buffer_count_as_one_group():
    batch = 4
    ts = list(range(batch * EXPIRE_EVERY_BATCHES))
    whole = last_sweep_ns([_runs([(1 << 30, ts)], batch)], batch)
    half = len(ts) // 2
    split = last_sweep_ns([_runs([(1 << 30, ts[:half])], batch), _runs([(1 << 30, ts[half:])], batch)], batch)
    assert whole == split == ts[-1]
