"""The one error family flowscope raises on bad input.

Every message names the file and the problem in one line, so that the CLI can print it
as is and a multi-file run can record it in summary.json next to the other captures.
"""
from __future__ import annotations


class FlowscopeError(Exception):
    """Base class: anything flowscope reports to the user as a clean one-line error."""


class CaptureError(FlowscopeError):
    """A capture file that cannot be read (missing, wrong magic, truncated, absurd lengths)."""

    def __init__(self, path: str, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class LimitError(CaptureError):
    """A capture that hit a limit against hostile input (docs/security.md): reading of that
    file stopped there, and what was read before is kept and analysed."""


class UsageError(FlowscopeError):
    """Bad options or an output directory that must not be overwritten."""
