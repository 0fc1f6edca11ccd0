"""Record layouts declared once, as data: the int64 matrices of the hot path.

A layout is a list of fields (name, merge rule, doc). It generates the integer column
constants the compiled code reads (module globals, so numba folds them), the tuples of
fields that share a merge rule (flows/merge.py loops over them), and named zero-copy
views for Python code (`layout.view(rows).pkts_orig`). Flow records have a block of
fields per direction: the originator's at D, the responder's at D + ND.

Merge rules (flow records, flows/merge.py: how the records of consecutive parts combine):
  key        part of the flow key (equal in both)
  first      fixed when the flow starts: the earlier record's stands
  first-set  the earlier record's, unless it has none (NONE), then the later's
  sum, min, max, or   per value (min ignores NONE)
  last       the later record's (the newest state: duplicate ring, open at the end, part)
  end        recomputed from the merged flags (END_REASON)
"""
from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

RULES = ("key", "first", "first-set", "sum", "min", "max", "or", "last", "end", "")


@dataclass(frozen=True)
class Field:
    name: str
    doc: str
    rule: str = ""
    unset: int = -1   # "not seen" for min and first-set (flows/layout.NONE, or NO_UID)

    def __post_init__(self):
        if self.rule not in RULES:
            raise ValueError(f"{self.name}: unknown merge rule {self.rule!r}")


class Layout:
    """Columns of one int64 record matrix: `head` fields, an optional block per direction
    (originator, responder) at `direction_base`, then `tail` fields."""

    def __init__(self, title: str, head: list[Field], per_direction: list[Field] = (), tail: list[Field] = ()):
        self.title, self.head, self.per_direction, self.tail = title, list(head), list(per_direction), list(tail)
        self.direction_base = len(self.head)
        self.direction_width = len(self.per_direction)
        first_tail = self.direction_base + 2 * self.direction_width
        self.index = {f.name: k for k, f in enumerate(self.head)}
        self.index.update({f.name: first_tail + k for k, f in enumerate(self.tail)})
        self.offset = {f.name: k for k, f in enumerate(self.per_direction)}  # within a direction block
        self.width = first_tail + len(self.tail)
        names = [f.name for f in self.head + self.per_direction + self.tail]
        if len(set(names)) != len(names):
            raise ValueError(f"{title}: a field name is declared twice")

    def constants(self) -> dict[str, int]:
        """Name -> index (direction fields: the offset within a block); and the block base
        and width when there are directions."""
        out = {**self.index, **self.offset}
        if self.per_direction:
            out["D"], out["ND"] = self.direction_base, self.direction_width
        return out

    def fields(self, rule: str, per_direction: bool = False) -> tuple[int, ...]:
        """Indices (direction fields: offsets) of the fields merged by `rule`."""
        if per_direction:
            return tuple(self.offset[f.name] for f in self.per_direction if f.rule == rule)
        return tuple(self.index[f.name] for f in self.head + self.tail if f.rule == rule)

    def unset_fields(self, rule: str, per_direction: bool = False) -> tuple[tuple[int, int], ...]:
        """(index or offset, its "not seen" value) of the fields merged by `rule`."""
        if per_direction:
            return tuple((self.offset[f.name], f.unset) for f in self.per_direction if f.rule == rule)
        return tuple((self.index[f.name], f.unset) for f in self.head + self.tail if f.rule == rule)

    def rule_of(self) -> dict[int, str]:
        """Every column's merge rule, by column index (both direction blocks)."""
        out = {self.index[f.name]: f.rule for f in self.head + self.tail}
        for d in (0, 1):
            out.update({self.direction_base + d * self.direction_width + self.offset[f.name]: f.rule
                        for f in self.per_direction})
        return out

    def view(self, rows: np.ndarray) -> SimpleNamespace:
        """Named zero-copy column views of `rows` (n, width): `name` for record fields,
        `name_orig` / `name_resp` for direction fields (lower case)."""
        cols = {f.name.lower(): rows[:, self.index[f.name]] for f in self.head + self.tail}
        for side, d in (("orig", 0), ("resp", 1)):
            base = self.direction_base + d * self.direction_width
            cols.update({f"{f.name.lower()}_{side}": rows[:, base + self.offset[f.name]] for f in self.per_direction})
        return SimpleNamespace(**cols)
