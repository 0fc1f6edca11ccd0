"""Scripted sessions: the auditor's action log against the evidence (docs/metadata.md §7).

    read_scenario(path)                 the CSV: time,action,peer,note (one Action a row)
    align(actions, events, flows, tol)  which events each action caused -> Alignment
    alignment.scores()                  per action kind and per event kind (summary.json `scenario`)

`flowscope analyze --scenario FILE`, `flowscope align DIR FILE` and
`AnalysisResult.write(..., scenario=FILE)` all run `attach` on a written evidence directory.
"""
from __future__ import annotations

from flowscope.scenario.align import (ACTIONS_IMPLY, DEFAULT_TOLERANCE_S, Alignment, align)
from flowscope.scenario.parse import ACTION_KINDS, Action, ScenarioError, read_scenario

__all__ = ["ACTIONS_IMPLY", "ACTION_KINDS", "Action", "Alignment", "DEFAULT_TOLERANCE_S", "ScenarioError",
           "align", "read_scenario"]
