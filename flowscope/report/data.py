"""What a report is made from: the tables of one analysis, read back from its directory.

The report is always rendered from the files in the output directory (never from the
in-memory result), so `flowscope analyze` and a later `flowscope report DIR` give the
same figures, and the report shows exactly what the evidence files hold (pseudonymised).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from flowscope.errors import UsageError

from flowscope.report.names import ACTIONS, EVENTS, FLOWS, FRAMES, SUMMARY, TRANSFERS


@dataclass
class ReportData:
    flows: pd.DataFrame
    summary: dict
    events: pd.DataFrame | None = None   # None: the metadata stage did not write events.parquet
    frames: pd.DataFrame | None = None
    actions: pd.DataFrame | None = None  # the scripted session's actions (a scenario was given)
    transfers: dict | None = None        # transfers.json (None: an older analysis; rebuilt from the tables)

    def has(self, column: str) -> bool:
        """The flows table has `column` with at least one value (not null everywhere)."""
        return column in self.flows.columns and bool(self.flows[column].notna().any())


def check(out_dir) -> None:
    """Raise the UsageError `load` would for missing or unreadable tables, reading only
    summary.json and each table's Parquet footer (`flowscope report` and `align` check
    before they change anything; the report then reads the tables once)."""
    out = _present(out_dir)
    try:
        json.loads((out / SUMMARY).read_text())
        for name in (FLOWS, EVENTS, FRAMES, ACTIONS):
            if name == FLOWS or (out / name).is_file():
                pq.read_metadata(out / name)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{out}: cannot read the analysis tables: {exc}") from None


def _present(out_dir) -> Path:
    out = Path(out_dir)
    if not (out / FLOWS).is_file() or not (out / SUMMARY).is_file():
        raise UsageError(f"{out}: no {FLOWS} and {SUMMARY} here (write them with flowscope analyze --out)")
    return out


def load(out_dir, skip: tuple[str, ...] = ()) -> ReportData:
    """The tables in `out_dir`; flows.parquet without the columns in `skip` (the report
    leaves out list columns it never reads: converting them to pandas is slow)."""
    out = _present(out_dir)
    try:
        summary = json.loads((out / SUMMARY).read_text())
        columns = [c for c in pq.read_schema(out / FLOWS).names if c not in skip] if skip else None
        data = ReportData(flows=pq.read_table(out / FLOWS, columns=columns).to_pandas(), summary=summary,
                          events=_optional(out / EVENTS), frames=_optional(out / FRAMES),
                          actions=_optional(out / ACTIONS))
        if (out / TRANSFERS).is_file():
            data.transfers = json.loads((out / TRANSFERS).read_text())
        return data
    except (OSError, ValueError) as exc:
        raise UsageError(f"{out}: cannot read the analysis tables: {exc}") from None


def _optional(path: Path) -> pd.DataFrame | None:
    return pq.read_table(path).to_pandas() if path.is_file() else None
