"""The scenario file: CSV, UTF-8, header `time,action,peer,note`.

`time` is ISO 8601 with an offset or Z (a time without one is refused: a log in local time
would shift every action by hours). A bad row raises ScenarioError naming FILE:LINE and
the problem, in one line.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from flowscope.errors import UsageError

HEADER = ("time", "action", "peer", "note")
ACTION_KINDS = ("message_sent", "message_received", "media_sent", "media_received", "call_started",
                "call_ended", "contact_added", "app_opened", "app_closed", "other")
MAX_FIELD_CHARS = 2000   # a note is a sentence, not a document
MAX_ROWS = 100_000
NEWLINE = b"\n"


class ScenarioError(UsageError):
    """A scenario file that cannot be used: FILE:LINE: problem."""


@dataclass(frozen=True)
class Action:
    line: int          # line in the file (1 = header)
    time_ns: int       # UTC, ns since the epoch
    action: str
    peer: str
    note: str


def read_scenario(path) -> list[Action]:
    """The actions of a scenario file, in file order."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read the scenario ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(NEWLINE) + 1
        raise ScenarioError(f"{path}:{line}: not UTF-8 text (byte {exc.start})") from None
    return parse_text(text, str(path))


def parse_text(text: str, name: str = "<scenario>") -> list[Action]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise ScenarioError(f"{name}:1: {exc}") from None
    if header is None or tuple(h.strip() for h in header) != HEADER:
        raise ScenarioError(f"{name}:1: the header must be {','.join(HEADER)}")
    actions: list[Action] = []
    line = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise ScenarioError(f"{name}:{reader.line_num}: {exc}") from None
        line = reader.line_num
        if not row or all(not c.strip() for c in row):
            continue
        if len(actions) >= MAX_ROWS:
            raise ScenarioError(f"{name}:{line}: more than {MAX_ROWS:,} actions")
        actions.append(_action(row, line, name))
    if not actions:
        raise ScenarioError(f"{name}:{line}: no actions after the header")
    return actions


def _action(row: list[str], line: int, name: str) -> Action:
    where = f"{name}:{line}"
    if len(row) != len(HEADER):
        raise ScenarioError(f"{where}: {len(row)} fields, expected {len(HEADER)} ({','.join(HEADER)})")
    time, action, peer, note = (c.strip() for c in row)
    if any(len(c) > MAX_FIELD_CHARS for c in row):
        raise ScenarioError(f"{where}: a field longer than {MAX_FIELD_CHARS} characters")
    if action not in ACTION_KINDS:
        raise ScenarioError(f"{where}: unknown action {action[:60]!r} (one of {', '.join(ACTION_KINDS)})")
    return Action(line, _time_ns(time, where), action, peer, note)


def _time_ns(text: str, where: str) -> int:
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise ScenarioError(f"{where}: time {text[:40]!r} is not ISO 8601 (e.g. 2026-03-02T09:00:38Z)") from None
    if t.tzinfo is None or t.utcoffset() is None:
        raise ScenarioError(f"{where}: time {text[:40]!r} has no offset or Z (write 09:00:38Z or 09:00:38+01:00)")
    t = t.astimezone(timezone.utc)
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    delta = t - epoch
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
