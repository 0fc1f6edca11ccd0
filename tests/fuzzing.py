"""The fuzz budget of the property tests over hostile input (readers, decoder, dissectors).

`make test` runs them with their normal example counts; `make fuzz` runs only them
(`-m fuzz`) with FLOWSCOPE_FUZZ_SCALE times as many (default 50 there). A crasher hypothesis
finds is replayed from its database (.hypothesis/) on every later run; keep it for good as an
`@example(...)` on the test that found it (docs/security.md).

The streamed frame walk is among them (tests/metadata/test_framewalk.py).
"""
from __future__ import annotations

import os

import pytest

SCALE = max(1, int(os.environ.get("FLOWSCOPE_FUZZ_SCALE", "1") or 1))
fuzz = pytest.mark.fuzz


def examples(n: int) -> int:
    return n * SCALE
