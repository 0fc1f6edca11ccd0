"""docs/cli.md, generated from the argument parser (a test fails when the page drifts):
`python -m flowscope.clidoc > docs/cli.md`."""
from __future__ import annotations

import argparse


def _usage(action: argparse.Action) -> str:
    if action.option_strings:
        names = ", ".join(f"`{o}`" for o in action.option_strings)
        return names + (f" `{action.metavar or action.dest.upper()}`" if action.nargs != 0 else "")
    return f"`{action.metavar or action.dest}`" + (" …" if action.nargs in ("+", "*") else "")


def _rows(parser: argparse.ArgumentParser) -> list[str]:
    rows = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        text = (action.help or "").replace("|", "\\|").replace("%%", "%")
        if action.choices and not isinstance(action.choices, dict):
            text += f" (one of: {', '.join(map(str, action.choices))})"
        rows.append(f"| {_usage(action)} | {text} |")
    return rows


def markdown() -> str:
    from flowscope.cli import build_parser
    parser = build_parser()
    out = ["# Command line", "",
           "Generated from the argument parser by `python -m flowscope.clidoc > docs/cli.md`;",
           "`tests/test_cli_doc.py` fails when it drifts. Every command is a thin front end over the",
           "library (`flowscope.analyze`, `AnalysisResult.write`).", "",
           f"`{parser.prog}`: {parser.description}", ""]
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {c.dest: c.help for c in sub._choices_actions}
    for name, cmd in sub.choices.items():
        out += [f"## `flowscope {name}`", "", (helps.get(name) or "").rstrip(".") + ".", "",
                "| argument | meaning |", "|---|---|", *_rows(cmd), ""]
    return "\n".join(out)


if __name__ == "__main__":
    print(markdown(), end="")
