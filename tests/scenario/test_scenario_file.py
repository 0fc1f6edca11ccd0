"""The scenario file: header, times with an offset, known actions; a bad row names FILE:LINE."""
from __future__ import annotations

import pytest

from flowscope.scenario import ScenarioError, read_scenario
from flowscope.scenario.parse import parse_text


def test_reads_actions_with_offsets_quotes_and_blank_lines(tmp_path):
    f = tmp_path / "s.csv"
    f.write_text('\ufefftime,action,peer,note\n2026-03-02T10:00:38+01:00,message_sent,contact-A,"a, ""quoted"" note"\n'
                 "\n2026-03-02T09:00:40.250Z,other,,\n", encoding="utf-8")
    a, b = read_scenario(f)
    assert (a.line, a.action, a.peer, a.note) == (2, "message_sent", "contact-A", 'a, "quoted" note')
    assert a.time_ns == 1772442038 * 10**9      # 09:00:38Z: the +01:00 offset is applied
    assert b.line == 4 and b.time_ns - a.time_ns == 2_250_000_000


@pytest.mark.parametrize(("text", "message"), [
    ("when,what\n", "s.csv:1: the header must be time,action,peer,note"),
    ("time,action,peer,note\n", "s.csv:1: no actions after the header"),
    ("time,action,peer,note\n2026-03-02T09:00:38Z,message_sent,,\n2026-03-02T09:00:39Z,dance,,\n",
     "s.csv:3: unknown action 'dance'"),
    ("time,action,peer,note\n2026-03-02T09:00:38,message_sent,,\n", "s.csv:2: time '2026-03-02T09:00:38' has no offset"),
    ("time,action,peer,note\nyesterday,message_sent,,\n", "s.csv:2: time 'yesterday' is not ISO 8601"),
    ("time,action,peer,note\n2026-03-02T09:00:38Z,message_sent\n", "s.csv:2: 2 fields, expected 4"),
])
def test_a_bad_row_is_one_line_naming_file_and_line(tmp_path, text, message):
    f = tmp_path / "s.csv"
    f.write_text(text, encoding="utf-8")
    with pytest.raises(ScenarioError) as err:
        read_scenario(f)
    assert str(err.value).startswith(str(tmp_path / message.split(":")[0]) + ":" + message.split(":", 1)[1]) \
        or message in str(err.value)
    assert "\n" not in str(err.value) and f"{f}:" in str(err.value)


def test_not_utf8_names_the_line(tmp_path):
    f = tmp_path / "s.csv"
    f.write_bytes(b"time,action,peer,note\n2026-03-02T09:00:38Z,other,caf\xe9,\n")
    with pytest.raises(ScenarioError, match=r"s\.csv:2: not UTF-8"):
        read_scenario(f)


def test_parse_text_without_a_file():
    assert parse_text("time,action,peer,note\n2026-03-02T09:00:38Z,app_closed,,\n")[0].action == "app_closed"
