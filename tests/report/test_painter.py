"""The forked painter: the charts it draws are the bytes this process would draw; when it
fails, dies or hangs, the report draws them itself and nothing is left behind."""
from __future__ import annotations

import os
import time

import pytest

from flowscope.report import charts, painter, renderer
from flowscope.report.data import load
from flowscope.report.painter import Painter

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the painter forks (POSIX only)")


def _builds(out):
    return {name: build for name, _, _, build, _ in renderer.chart_specs(load(out, skip=renderer.NOT_SHOWN))
            if build}


def _here(builds):
    return {name: charts.encode_png(charts.draw(build())) for name, build in builds.items()}


def _gone(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def test_painted_charts_are_the_bytes_drawn_here(written_dir):
    builds = _builds(written_dir)
    assert set(renderer.PAINTED) <= set(builds)   # the sample draws every chart
    p = Painter.fork(builds)
    assert p is not None
    assert p.pngs() == _here(builds)
    assert _gone(p.pid)


def test_the_report_uses_the_painter_and_matches_the_written_charts(written_dir, monkeypatch):
    forked = []
    real_fork = Painter.fork
    monkeypatch.setattr(Painter, "fork", classmethod(lambda cls, b: forked.append(sorted(b)) or real_fork(b)))
    drawn = {c.name: c.png for c in renderer.build_charts(load(written_dir, skip=renderer.NOT_SHOWN))}
    assert forked == [sorted(renderer.PAINTED)]
    assert drawn == {p.stem: p.read_bytes() for p in (written_dir / "charts").glob("*.png")}


def _dies():
    os._exit(3)


def _raises():
    raise RuntimeError("a chart that fails in the painter")


def _hangs():
    time.sleep(60)


@pytest.mark.parametrize("build", [_dies, _raises, _hangs])
def test_a_failed_painter_gives_nothing_and_is_reaped(build):
    p = Painter.fork({"destinations": build})
    started = time.monotonic()
    assert p.pngs(timeout_s=1.0) == {}
    assert time.monotonic() - started < 10
    assert _gone(p.pid)


def test_the_report_draws_what_a_failed_painter_did_not(written_dir, monkeypatch):
    expected = {c.name: c.png for c in renderer.build_charts(load(written_dir, skip=renderer.NOT_SHOWN))}
    monkeypatch.setattr(painter, "_draw", lambda builds: os._exit(1))   # in the child only
    again = {c.name: c.png for c in renderer.build_charts(load(written_dir, skip=renderer.NOT_SHOWN))}
    assert again == expected and all(again[name] for name in renderer.PAINTED)


def test_a_garbled_answer_is_refused(monkeypatch):
    monkeypatch.setattr(painter, "_draw", lambda builds: {"destinations": "not bytes"})
    p = Painter.fork({"destinations": _raises})
    assert p.pngs() == {}


def test_nothing_to_draw_forks_nothing():
    assert Painter.fork({}) is None


def test_closing_a_painter_reaps_it_and_leaves_nothing_to_read():
    p = Painter.fork({"destinations": _hangs})
    p.close()
    assert _gone(p.pid)
    assert p.pngs() == {}


def test_a_chart_failing_here_still_reaps_the_painter(written_dir, monkeypatch):
    painters = []
    real_fork = Painter.fork
    monkeypatch.setattr(Painter, "fork", classmethod(lambda cls, b: painters.append(real_fork(b)) or painters[-1]))
    monkeypatch.setattr(charts, "event_timeline", lambda *a, **k: _raises())   # drawn here, not painted
    with pytest.raises(RuntimeError, match="fails in the painter"):
        renderer.build_charts(load(written_dir, skip=renderer.NOT_SHOWN))
    assert painters and _gone(painters[0].pid)
