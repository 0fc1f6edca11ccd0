"""The HTML page of `flowscope diff --html`: self-contained, the report's style and CSP
(no script, no request); every value from the evidence files is autoescaped."""
from __future__ import annotations

from flowscope._version import __version__
from flowscope.report.html import _environment


def _n(x: int) -> str:
    return f"{x:,}"


def _change(a: int, b: int) -> str:
    return f"{b - a:+,}"


def render(d) -> str:
    totals = [(k, _n(a), _n(b), _change(a, b)) for k, (a, b) in d.totals.items()]
    by = [(dim, [{**r, "flows_a": _n(r["flows_a"]), "flows_b": _n(r["flows_b"]), "bytes_a": _n(r["bytes_a"]),
                  "bytes_b": _n(r["bytes_b"]), "change": _change(r["bytes_a"], r["bytes_b"])} for r in rows])
          for dim, rows in d.by.items()]
    events = [{**r, "change": _change(r["a"], r["b"])} for r in d.events]
    lists = [(title, [{**r, "bytes": _n(r["bytes"])} for r in rows])
             for title, rows in (("New endpoints (only in B)", d.new_endpoints),
                                 ("Vanished endpoints (only in A)", d.vanished_endpoints))]
    return _environment().get_template("diff.html.j2").render(
        version=__version__, a=d.a, b=d.b, totals=totals, by=by, events=events, endpoint_lists=lists)
