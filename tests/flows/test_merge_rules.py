"""The merge combines every column by the rule the layout declares for it (flowscope/records.py)."""
from __future__ import annotations

import numpy as np
import pytest

from flowscope.flows.layout import D, END_REASON, FLOW_RECORD, ND, NF, NONE, OPEN_AT_END, ORIG_IS_A, TCPFLAGS
from flowscope.flows.merge import absorb
from flowscope.flows.table import end_reason_of


def _pair(seed: int, swap: bool):
    rng = np.random.default_rng(seed)
    M = rng.integers(1, 1000, size=(1, NF)).astype(np.int64)
    R = rng.integers(1, 1000, size=(1, NF)).astype(np.int64)
    for rows in (M, R):
        rows[0, D + TCPFLAGS] &= 0x1A   # no FIN/RST: END_REASON stays the forced one
        rows[0, D + ND + TCPFLAGS] &= 0x1A
    M[0, ORIG_IS_A], R[0, ORIG_IS_A] = 1, 0 if swap else 1
    for col, rule in FLOW_RECORD.rule_of().items():  # some "not seen" values on both sides
        if rule in ("min", "first-set") and rng.random() < 0.5:
            (M if rng.random() < 0.5 else R)[0, col] = _unset(col)
    return M, R


def _unset(col: int) -> int:
    fields = {**{FLOW_RECORD.index[f.name]: f for f in FLOW_RECORD.head + FLOW_RECORD.tail},
              **{D + d * ND + FLOW_RECORD.offset[f.name]: f for f in FLOW_RECORD.per_direction for d in (0, 1)}}
    return fields[col].unset


def _partner(col: int, swap: bool) -> int:
    """The later record's column that combines into `col` (directions aligned)."""
    if swap and D <= col < D + 2 * ND:
        return col + ND if col < D + ND else col - ND
    return col


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("swap", [False, True])
def test_every_column_follows_its_declared_rule(seed, swap):
    M, R = _pair(seed, swap)
    before = M.copy()
    absorb(M, 0, R, 0)
    for col, rule in FLOW_RECORD.rule_of().items():
        a, b, got = before[0, col], R[0, _partner(col, swap)], M[0, col]
        unset = _unset(col)
        want = {
            "key": a, "first": a, "sum": a + b, "or": a | b, "max": max(a, b), "last": b,
            "min": a if b == unset else b if a == unset else min(a, b),
            "first-set": b if a == unset else a,
        }.get(rule)
        if rule == "end":
            want = end_reason_of(M, 0, 0 if R[0, OPEN_AT_END] else 1)
        assert got == want, (col, rule, a, b, got)
    assert END_REASON in FLOW_RECORD.rule_of() and NONE == -1


def test_every_field_has_a_rule_and_the_constants_are_the_declaration():
    rules = FLOW_RECORD.rule_of()
    assert sorted(rules) == list(range(NF)) and "" not in rules.values()
    from flowscope.flows import layout
    for name, index in FLOW_RECORD.constants().items():
        assert getattr(layout, name) == index
