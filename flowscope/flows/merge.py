"""Merge partial flow records from consecutive parts (chunks or files) exactly.

A record still open when its part ended continues into the next record with the same key
if the single-pass table would have kept it: the gap is within its timeout, and it is not
a closed TCP flow meeting a new pure SYN. Combining is per-direction sum/min/max/OR after
aligning the later record's directions to the earlier record's originator.
A record open at its part's end that the next record of its key does not continue ends
there, idle (or by its FIN/RST), as the single pass ends it when that packet arrives.
Known approximation: a mirror-port duplicate pair split exactly at a part boundary is not
suppressed (the dedup ring does not cross parts).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from flowscope.flows.layout import (
    CAPTURE, D, END_EOF, END_IDLE, END_REASON, FIRST_PURE_SYN, FLOW_RECORD, K_AHI, K_ALO, K_BHI, K_BLO, K_PORTS,
    K_PROTO, FIRST_ANY, LAST_ANY, ND, NF, NONE, OPEN_AT_END, ORIG_IS_A, PART, SERIAL,
)
from flowscope.flows.table import EXPIRE_SLACK_NS, end_reason_of, is_closed, timeout_of


@njit(cache=True)
def _same_key(R, a, b):
    return (R[a, K_PROTO] == R[b, K_PROTO] and R[a, K_AHI] == R[b, K_AHI] and R[a, K_ALO] == R[b, K_ALO]
            and R[a, K_BHI] == R[b, K_BHI] and R[a, K_BLO] == R[b, K_BLO] and R[a, K_PORTS] == R[b, K_PORTS])


# The merge rules, generated from the declaration (flows/layout.FLOW_RECORD): per direction
# and for the record, the fields each rule combines.
# (numpy arrays, not tuples: numba freezes global arrays as constants, and an empty one is fine)


def _fields(rule: str, per_direction: bool) -> np.ndarray:
    return np.array(FLOW_RECORD.fields(rule, per_direction), dtype=np.int64)


def _with_unset(rule: str, per_direction: bool) -> np.ndarray:
    return np.array(FLOW_RECORD.unset_fields(rule, per_direction), dtype=np.int64).reshape(-1, 2)


_DIR_SUM, _DIR_OR, _DIR_MAX, _DIR_LAST = (_fields(r, True) for r in ("sum", "or", "max", "last"))
_DIR_MIN, _DIR_FIRST_SET = (_with_unset(r, True) for r in ("min", "first-set"))
_SUM, _OR, _MAX, _LAST = (_fields(r, False) for r in ("sum", "or", "max", "last"))
_MIN, _FIRST_SET = (_with_unset(r, False) for r in ("min", "first-set"))


@njit(cache=True, inline="always")
def _combine(M, m, dst, R, b, src, sums, ors, maxes, lasts, mins, first_sets):
    for f in sums:
        M[m, dst + f] += R[b, src + f]
    for f in ors:
        M[m, dst + f] |= R[b, src + f]
    for f in maxes:
        if R[b, src + f] > M[m, dst + f]:
            M[m, dst + f] = R[b, src + f]
    for f in lasts:
        M[m, dst + f] = R[b, src + f]
    for k in range(len(mins)):
        f, unset = mins[k, 0], mins[k, 1]
        v = R[b, src + f]
        if v != unset and (M[m, dst + f] == unset or v < M[m, dst + f]):
            M[m, dst + f] = v
    for k in range(len(first_sets)):
        f, unset = first_sets[k, 0], first_sets[k, 1]
        if M[m, dst + f] == unset:
            M[m, dst + f] = R[b, src + f]


@njit(cache=True)
def absorb(M, m, R, b):
    """Add record R[b] into M[m] (M[m] is earlier), field by field by its declared rule;
    "key" and "first" fields keep M's values."""
    swap = M[m, ORIG_IS_A] != R[b, ORIG_IS_A]
    for d in range(2):
        src = D + ((1 - d) if swap else d) * ND
        _combine(M, m, D + d * ND, R, b, src, _DIR_SUM, _DIR_OR, _DIR_MAX, _DIR_LAST, _DIR_MIN, _DIR_FIRST_SET)
    _combine(M, m, 0, R, b, 0, _SUM, _OR, _MAX, _LAST, _MIN, _FIRST_SET)
    # "end": FIN from one side in each part, only the merged flags show the close
    M[m, END_REASON] = end_reason_of(M, m, END_EOF if R[b, OPEN_AT_END] else END_IDLE)


@njit(cache=True)
def _merge_sorted(R, order, timeouts, dest):
    M = np.empty((len(order), NF), dtype=np.int64)
    m = -1
    prev = -1
    for k in range(len(order)):
        b = order[k]
        if (m >= 0 and _same_key(R, prev, b) and M[m, OPEN_AT_END] == 1 and R[b, PART] > M[m, PART]
                and R[b, FIRST_ANY] - M[m, LAST_ANY] <= timeout_of(M, m, timeouts)
                and not (R[b, FIRST_PURE_SYN] == 1 and is_closed(M, m))):
            absorb(M, m, R, b)
        else:
            if m >= 0 and _same_key(R, prev, b) and M[m, OPEN_AT_END] == 1 and R[b, PART] > M[m, PART]:
                # not continued: the single pass ends it when this record's first packet comes
                M[m, END_REASON] = end_reason_of(M, m, END_IDLE)
                M[m, OPEN_AT_END] = 0
            m += 1
            for f in range(NF):
                M[m, f] = R[b, f]
        dest[b] = m
        prev = b
    return M[:m + 1]


# Per part: the time of the last idle sweep a one-pass read of its file would have made, for
# parts that are chunks of a file (engine/sweeps.py); NOT_CHUNKED elsewhere, NO_SWEEP where
# the one-pass read never swept.
NOT_CHUNKED = np.iinfo(np.int64).max
NO_SWEEP = np.iinfo(np.int64).min


@njit(cache=True)
def _settle(M, sweep_ns, timeouts, slack):
    """The end a one-pass read gives the last flow of each key whose last part is a chunk:
    idle if its last sweep found it past its timeout + slack, else open at the end."""
    for m in range(len(M)):
        now = sweep_ns[M[m, PART]]
        if now == NOT_CHUNKED or (m + 1 < len(M) and _same_key(M, m, m + 1)):
            continue
        swept = now != NO_SWEEP and now - M[m, LAST_ANY] > timeout_of(M, m, timeouts) + slack
        M[m, END_REASON] = end_reason_of(M, m, END_IDLE if swept else END_EOF)


@dataclass
class MergedFlows:
    """The parts' records merged into flows: what the evidence join and the walk stitching
    read, as the few columns they read (the records and merged rows themselves, 52 int64 a
    row, are let go: 80 MB at 100k flows).

    Per record k (every part's records, in the order given): `capture[k]` and `serial[k]`
    (the part index and flow serial the collectors name it by), `part[k]` (the part's rank
    in time), `orig_is_a[k]`, `silent[k]` (no payload either way), `flow_of_record[k]` (the
    flow id, row of the flow table, it went into). Per flow f: `flow_orig_is_a[f]` and
    `flow_started[f]` (its SYN was captured)."""
    capture: np.ndarray
    serial: np.ndarray
    part: np.ndarray
    orig_is_a: np.ndarray
    silent: np.ndarray
    flow_of_record: np.ndarray
    flow_orig_is_a: np.ndarray
    flow_started: np.ndarray

    @classmethod
    def of(cls, records: np.ndarray, flow_of_record: np.ndarray, rows: np.ndarray) -> "MergedFlows":
        """From the records, the flow id of each, and the merged rows in flow-id order."""
        return cls(*cls.record_columns(records, flow_of_record), *cls.flow_columns(rows))

    @staticmethod
    def record_columns(records: np.ndarray, flow_of_record: np.ndarray) -> tuple:
        """The per-record fields, in field order (the records may be let go after this)."""
        R = FLOW_RECORD.view(records)
        return (records[:, CAPTURE].copy(), records[:, SERIAL].copy(), records[:, PART].copy(),
                records[:, ORIG_IS_A].copy(), (R.payload_orig == 0) & (R.payload_resp == 0),
                np.asarray(flow_of_record, dtype=np.int64))

    @staticmethod
    def flow_columns(rows: np.ndarray) -> tuple:
        """The per-flow fields, in field order, from the merged rows in flow-id order."""
        M = FLOW_RECORD.view(rows)
        return rows[:, ORIG_IS_A].copy(), (M.isn_orig != NONE) | (M.isn_resp != NONE)

    def by_flow(self, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(record index, flow id, swapped) of the records where `mask` (all: None), by flow
        id and then in time order; `swapped`: the record's originator is the flow's responder."""
        idx = np.arange(len(self.serial)) if mask is None else np.flatnonzero(mask)
        fid = self.flow_of_record[idx]
        order = np.lexsort((self.serial[idx], self.part[idx], fid))
        idx, fid = idx[order], fid[order]
        return idx, fid, self.orig_is_a[idx] != self.flow_orig_is_a[fid]

    def key(self, k: int) -> tuple[int, int]:
        """(part index, flow serial): how the collectors name record k."""
        return int(self.capture[k]), int(self.serial[k])

    def keys(self) -> list[tuple[int, int]]:
        return list(zip(self.capture.tolist(), self.serial.tolist()))


def merge_parts(records: np.ndarray, timeouts_ns: np.ndarray, sweep_ns: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Merge records from all parts (numbered in time order). `sweep_ns` (per part rank, see
    NOT_CHUNKED) ends flows that end in a chunk as a one-pass read would.

    Returns (merged records, dest) where dest[k] is the merged row that record k went into.
    """
    dest = np.zeros(len(records), dtype=np.int64)
    if len(records) == 0:
        return records, dest
    R = np.ascontiguousarray(records)
    order = np.lexsort((R[:, SERIAL], R[:, PART], R[:, K_PORTS], R[:, K_BLO],
                        R[:, K_BHI], R[:, K_ALO], R[:, K_AHI], R[:, K_PROTO]))
    M = _merge_sorted(R, order, timeouts_ns, dest)
    if sweep_ns is not None and (sweep_ns != NOT_CHUNKED).any():
        _settle(M, np.asarray(sweep_ns, dtype=np.int64), timeouts_ns, EXPIRE_SLACK_NS)
    return M, dest
