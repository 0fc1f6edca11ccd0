"""A scenario attached to an evidence directory: DIR/actions.parquet and the `scenario`
section of DIR/summary.json, computed from the tables in DIR (as the report is), so the
same scenario gives the same rows whether given to `analyze` or later to `align`."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.parquet as pq

from flowscope._version import __version__
from flowscope.report.data import load
from flowscope.report.manifest import file_sha256
from flowscope.report.names import ACTIONS, SUMMARY
from flowscope.scenario.align import DEFAULT_TOLERANCE_S, align
from flowscope.scenario.parse import read_scenario


def attach(out_dir, scenario, tolerance_s: float = DEFAULT_TOLERANCE_S) -> list[Path]:
    """Align the scenario file with the analysis in `out_dir`; (files written). The
    scenario is read first: a bad row fails before anything is written."""
    out = Path(out_dir)
    actions = read_scenario(scenario)
    data = load(out)
    alignment = align(actions, data.events, data.flows, tolerance_s)
    table = alignment.table.replace_schema_metadata({"flowscope_version": __version__,
                                                     "scenario_sha256": file_sha256(Path(scenario))})
    path = out / ACTIONS
    pq.write_table(table, path.with_name(path.name + ".tmp"))
    os.replace(path.with_name(path.name + ".tmp"), path)
    summary = dict(data.summary)
    summary["scenario"] = {"file": str(scenario), "sha256": file_sha256(Path(scenario)), **alignment.scores()}
    tmp = out / (SUMMARY + ".tmp")
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    os.replace(tmp, out / SUMMARY)
    return [path, out / SUMMARY]
