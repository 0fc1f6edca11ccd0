"""docs/cli.md is generated from the argument parser and must not drift from it."""
from conftest import ROOT

from flowscope.clidoc import markdown


def test_docs_cli_is_the_parser():
    assert (ROOT / "docs" / "cli.md").read_text() == markdown(), \
        "regenerate with: python -m flowscope.clidoc > docs/cli.md"


def test_every_command_and_option_is_documented():
    page = markdown()
    for text in ("## `flowscope analyze`", "## `flowscope live`", "## `flowscope verify`", "`--out`", "`--vantage`"):
        assert text in page
