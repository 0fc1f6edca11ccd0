"""The live loop: start an engine, analyse each capture file as soon as it is closed, stop
on a signal, a limit or an engine failure, and return the same result `analyze` would.

Each closed file is one part of `pipeline.Analysis` (flows that continue across files are
merged exactly), is hashed for the evidence trail, and is deleted at once unless kept
(--keep-pcap), so a long capture needs no more disk than a ring file or two.

With rotation (--rotate, --rotate-packets) the files go to the current period instead
(rotation.py), and each period is written as it ends (periods.py).
"""
from __future__ import annotations

import collections
import datetime as dt
import os
import shutil
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from flowscope import hashing
from flowscope.geo.stage import check_settings
from flowscope.live.dumpcap import DumpcapEngine
from flowscope.live.engines import Drops, Engine, drops_from_isb
from flowscope.live.options import LiveError, LiveOptions
from flowscope.settings import Settings

POLL_S = 0.2
READY_TIMEOUT_S = 30.0
STOP_GRACE_S = 0.6   # see DumpcapEngine._settle: lets the last kernel ring block reach the file


@dataclass
class LiveRun:
    """What a live capture produced: the analysis result (notes["live"] describes the
    capture) and what went wrong, if anything, after the capture had started."""
    result: object                       # flowscope.AnalysisResult
    drops: Drops
    local_nets: tuple                    # ipaddress networks: the monitored devices
    error: str | None = None             # the engine failed mid-capture (what it got is analysed)
    kept_files: list = field(default_factory=list)   # rotated runs: [] (each period lists its files)
    rotation: object | None = None       # rotation.Written: the periods written (then result is the last, written)


class _Stopper:
    """SIGINT/SIGTERM ask the loop to stop; a second one while flushing aborts."""

    def __init__(self):
        self.reason: str | None = None
        self.closing = False          # set once the loop is over: a signal now means abort
        self.event = threading.Event()
        self.previous = {}

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, _frame) -> None:
        if self.reason is not None or self.closing:   # already stopping: the user insists
            raise KeyboardInterrupt
        self.request("interrupted" if signum == signal.SIGINT else "terminated")

    def request(self, reason: str) -> None:
        self.reason = self.reason or reason
        self.event.set()

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


class _Feeder:
    """Turns closed capture files into parts of the analysis."""

    def __init__(self, analysis, keep: bool):
        self.analysis = analysis
        self.keep = keep
        self.hashes: dict = {}
        self.kept: list[str] = []

    def add(self, path: str):
        digest = hashing.FileHash(path)      # hashes on another core while the file is parsed
        cap = self.analysis.add(path)
        digest.result()
        if self.keep:
            self.kept.append(path)
        else:
            cap.path = os.path.basename(path)   # the file is gone; its name and hash remain
            Path(path).unlink(missing_ok=True)
        self.hashes[cap.path] = digest
        return cap

    def tick(self) -> None:
        pass


def _utc(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def choose_engine(options: LiveOptions, workdir: Path) -> Engine:
    """dumpcap if it is on PATH, else scapy; neither: say what to install."""
    path = shutil.which("dumpcap")
    if path:
        return DumpcapEngine(path, options, workdir)
    try:  # imported here, not above: scapy is optional, and importing the sniffer imports it
        from flowscope.live.sniffer import ScapyEngine
    except ImportError:
        raise LiveError("live capture needs dumpcap (Debian/Ubuntu: apt install tshark) "
                        "or scapy (pip install scapy); neither is installed") from None
    return ScapyEngine(options, workdir)


def prepare_out(options: LiveOptions) -> Path:
    """Refuse a bad output directory before capturing, not after an hour; returns the
    directory the capture files go to (DIR/pcap/ when kept, else a private temp dir)."""
    from flowscope.report.tables import check_out_dir
    if options.rotating:
        _check_rotation_out(options.out)
    else:
        check_out_dir(options.out, [], options.force)
    if not options.keep_pcap:
        return Path(tempfile.mkdtemp(prefix="flowscope-live-"))
    pdir = options.pcap_dir
    if pdir.exists() and any(pdir.iterdir()):
        raise LiveError(f"{pdir}: holds capture files of an earlier run; move them away or choose another --out")
    pdir.mkdir(parents=True, exist_ok=True)
    return pdir


def _check_rotation_out(out: Path) -> None:
    """Periods go into subdirectories: of a new or empty directory, or of one that holds
    periods of earlier runs (the new ones follow them), never beside a single analysis."""
    from flowscope.errors import UsageError
    from flowscope.report.names import EVIDENCE
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is not a directory")
    if any((out / name).exists() for name in EVIDENCE):
        raise UsageError(f"{out}: holds a single analysis; rotated periods need a directory of their own")


def run(options: LiveOptions, settings: Settings | None = None, view=None, on_ready=None, *,
        write_options: dict | None = None, make_engine=None) -> LiveRun:
    """Capture until stopped and analyse; raises LiveError if capture cannot start.

    `view` (view.LiveView) is ticked about every POLL_S; `on_ready(engine)` is called once
    packets are being captured. With rotation every period is written as it ends, with
    `write_options` (AnalysisResult.write's report, pseudonymize, ...), and the result is
    the last period's, already written. `make_engine(options, workdir)`: another engine
    than dumpcap or scapy (tests)."""
    settings = settings or Settings()
    check_settings(settings)  # a bad --vantage fails now, not when the capture is analysed
    out_existed = options.out.exists()
    workdir = prepare_out(options)
    stopper = _Stopper()
    engine: Engine | None = None
    try:
        engine = (make_engine or choose_engine)(options, workdir)
        engine.check()
        stopper.install()
        started = time.time()
        engine.start()
        engine.wait_ready(READY_TIMEOUT_S)
        if on_ready:
            on_ready(engine)
        from flowscope.pipeline import Analysis   # numba and pandas load while packets arrive
        if options.rotating:
            from flowscope.live.rotation import Rotation

            def new_feeder(analysis):
                feeder = _Feeder(analysis, options.keep_pcap)
                feeder.kept = collections.deque(maxlen=0)   # a run of days: the periods list them
                return feeder
            sink = Rotation(options, settings, write_options, engine, started, new_feeder)
            if view is not None:
                view.rotation = sink
        else:
            sink = _Feeder(Analysis(settings, parts=None), options.keep_pcap)
        _loop(options, engine, sink, stopper, view, time.monotonic())
        stopper.closing = True
        engine.stop(STOP_GRACE_S)
        engine.wait()
        for path in engine.closed_files():
            sink.add(path)
        ended = time.time()
        reason = stopper.reason or ("packets" if engine.reached_limit else
                                    "engine-failed" if engine.error else "engine-exited")
        if options.rotating:
            return _rotated_result(options, engine, sink, reason)
        return _result(options, settings, engine, sink.analysis, sink, started, ended, reason)
    finally:
        if engine is not None:
            engine.stop()
            engine.wait()
        stopper.restore()
        if not options.keep_pcap:
            shutil.rmtree(workdir, ignore_errors=True)
        elif not any(workdir.iterdir()):   # capture never started: leave no empty DIR/pcap behind
            workdir.rmdir()
            if not out_existed and not any(options.out.iterdir()):
                options.out.rmdir()


def _loop(options, engine, sink, stopper, view, t0: float) -> None:
    """`sink`: a _Feeder (one analysis) or a rotation.Rotation (one a period)."""
    while True:
        for path in engine.closed_files():
            sink.add(path)
        if stopper.reason or not engine.running():
            return
        if options.duration_s and time.monotonic() - t0 >= options.duration_s:
            stopper.request("duration")
            return
        sink.tick()
        if view is not None:
            view.tick(time.monotonic() - t0, engine, sink.analysis)
        stopper.event.wait(POLL_S)


def _rotated_result(options, engine, rotation, reason) -> LiveRun:
    drops = engine.drops()
    if not drops.known:
        drops = drops_from_isb(rotation.current.analysis.captures) or drops
    result = rotation.finish(reason, engine.error, drops)
    return LiveRun(result, drops, options.local_nets, engine.error, [], rotation.written)


def _result(options, settings, engine, analysis, feeder, started, ended, reason) -> LiveRun:
    from flowscope import AnalysisResult
    finished = analysis.finish(feeder.hashes)
    captures, notes = finished.captures, finished.notes
    drops = engine.drops()
    if not drops.known:
        drops = drops_from_isb(captures) or drops
    from flowscope.decode.layout import REASONS
    analysed = sum(int(c.stats[:len(REASONS)].sum()) for c in captures)  # decodable or not
    notes["live"] = {
        "interface": options.interface, "bpf": options.bpf,
        "local_nets": options.local_net_strings(), "engine": engine.label,
        "started_utc": _utc(started), "ended_utc": _utc(ended), "duration_s": round(ended - started, 3),
        "stop_reason": reason, "error": engine.error,
        "packets_captured": engine.packets_seen, "packets_analysed": analysed,
        **drops.as_notes(),
        "capture_files": len(captures),
        "pcap_dir": str(options.pcap_dir) if options.keep_pcap else None,
    }
    result = AnalysisResult.from_finished(finished, settings)
    return LiveRun(result, drops, options.local_nets, engine.error, feeder.kept)
