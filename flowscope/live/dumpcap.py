"""dumpcap as the capture engine: a ring of pcapng files, read back as each one closes.

dumpcap announces every file it opens on stderr ("File: PATH"); opening file k+1 closes
file k, so the announcements say exactly which files are complete. Its counters come on
stderr too: "Packets: N" while running and, on exit, "Packets received/dropped ...".
In ring-buffer mode it writes no pcapng Interface Statistics Block, so that last line is
where the drops are (ISBs are used when present, e.g. by other dumpcap versions).
"""
from __future__ import annotations

import collections
import ctypes
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

from flowscope.live.engines import Drops, Engine, interfaces, no_such_interface
from flowscope.live.options import BUFFER_MIB, RING_FILE_KB, RING_FILE_S, LiveError, LiveOptions

PREFIX = "live"
SETTLE_QUIET_S = 0.7   # no counter update for this long: dumpcap has caught up
SETTLE_MAX_S = 4.0     # on a busy port the counter never rests: stop anyway
_DROP_LINE = re.compile(r"Packets received/dropped on interface '(?P<iface>.*)': (?P<recv>\d+)/(?P<total>\d+) "
                        r"\(pcap:(?P<pcap>\d+)/dumpcap:(?P<dumpcap>\d+)/flushed:(?P<flushed>\d+)"
                        r"(?:/ps_ifdrop:(?P<ifdrop>\d+))?\)")
_COUNT = re.compile(r"^Packets(?: captured)?: (\d+)")
_NOISE = ("cap_set_proc",)  # dumpcap started as root in a restricted set says this, harmlessly


def parse_drop_line(line: str) -> Drops | None:
    """dumpcap's closing statistics line -> Drops (pcap = kernel buffer, ps_ifdrop = interface,
    dumpcap + flushed = the engine's own losses)."""
    m = _DROP_LINE.search(line)
    if not m:
        return None
    return Drops(kernel=int(m["pcap"]), interface=int(m["ifdrop"] or 0),
                 engine=int(m["dumpcap"]) + int(m["flushed"]), received=int(m["recv"]),
                 source="dumpcap")


def explain(lines: list[str], iface: str, bpf: str | None, dumpcap: str, workdir=None) -> str | None:
    """dumpcap's multi-line error text -> one line naming what is wrong, or None."""
    lines = [ln for ln in lines if not any(n in ln for n in _NOISE)]
    errors = [ln[len("dumpcap: "):] for ln in lines if ln.startswith("dumpcap: ")]
    text = "\n".join(lines)
    if "permission to capture" in text or ("Operation not permitted" in text and errors):
        return (f"cannot capture on {iface}: dumpcap lacks CAP_NET_RAW/CAP_NET_ADMIN "
                f"(run as root or `setcap cap_net_raw,cap_net_admin=eip {dumpcap}`)")
    if "There is no device named" in text or "No such device exists" in text:
        return str(no_such_interface(iface))
    if "Invalid capture filter" in text:
        why = re.search(r"isn't a valid capture filter \((.*)\)", text)
        return f"bad capture filter (BPF) {bpf!r}: {why.group(1) if why else 'rejected by libpcap'}"
    if "no space left" in text.lower():
        where = f" ({workdir})" if workdir else ""
        return f"capture stopped: no space left on the file system holding the capture files{where}"
    if errors:
        return "dumpcap: " + errors[0].rstrip(".")
    return None


class StderrState:
    """What dumpcap has said so far. Lines end in \n or \r (the running counter rewrites
    its line), and a "File:" announcement may follow the counter on the same line."""

    def __init__(self):
        self.lines: collections.deque[str] = collections.deque(maxlen=200)
        self.files: list[str] = []
        self.packets_seen = 0
        self.captured: int | None = None     # "Packets captured: N", printed on exit
        self.final: Drops | None = None      # the closing "Packets received/dropped" line
        self.started = threading.Event()     # the first file is open: packets are being kept
        self._pending = b""

    def feed(self, chunk: bytes) -> None:
        *lines, self._pending = re.split(rb"[\r\n]", self._pending + chunk)
        for raw in lines:
            self._line(raw.decode("utf-8", "replace").strip())

    def close(self) -> None:
        self._line(self._pending.decode("utf-8", "replace").strip())
        self._pending = b""

    def _line(self, line: str) -> None:
        if not line:
            return
        if "File: " in line:
            before, path = line.split("File: ", 1)
            self._line(before.strip())
            self.files.append(path.strip())
            self.started.set()
            return
        self.lines.append(line)
        if m := _COUNT.match(line):
            self.packets_seen = int(m.group(1))
            if line.startswith("Packets captured"):
                self.captured = self.packets_seen
        elif drops := parse_drop_line(line):
            self.final = drops


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM if flowscope dies, so that no orphaned
    dumpcap keeps filling the disk."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class DumpcapEngine(Engine):
    def __init__(self, path: str, options: LiveOptions, workdir: Path):
        self.path = path
        self.options = options
        self.workdir = Path(workdir)
        self.label = f"dumpcap {self._version()}"
        self.proc: subprocess.Popen | None = None
        self.err = StderrState()
        self.error: str | None = None
        self.reached_limit = False
        self.stopping = False
        self.reader: threading.Thread | None = None

    def _version(self) -> str:
        try:
            out = subprocess.run([self.path, "--version"], capture_output=True, text=True, timeout=15).stdout
        except (OSError, subprocess.TimeoutExpired):
            return "(version unknown)"
        m = re.search(r"Dumpcap \(Wireshark\) (\S+)", out)
        return m.group(1) if m else "(version unknown)"

    def check(self) -> None:
        """Open the interface and compile the filter (-d) without capturing; dumpcap exits 0
        even when this fails, so its stderr decides."""
        opts = self.options
        if opts.interface not in interfaces() and not opts.interface.isdigit() and opts.interface != "any":
            raise no_such_interface(opts.interface)
        cmd = [self.path, "-i", opts.interface, "-d"] + (["-f", opts.bpf] if opts.bpf else [])
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        except subprocess.TimeoutExpired:
            raise LiveError(f"cannot capture on {opts.interface}: `dumpcap -d` did not answer in 30 s") from None
        problem = explain(r.stderr.splitlines(), opts.interface, opts.bpf, self.path)
        if problem:
            raise LiveError(problem)

    def command(self) -> list[str]:
        opts = self.options
        cmd = [self.path, "-i", opts.interface, "-w", str(self.workdir / f"{PREFIX}.pcapng"),
               "-b", f"duration:{RING_FILE_S}", "-b", f"filesize:{RING_FILE_KB}", "-B", str(BUFFER_MIB)]
        if opts.bpf:
            cmd += ["-f", opts.bpf]
        if opts.max_packets:
            cmd += ["-c", str(opts.max_packets)]
        return cmd

    def start(self) -> None:
        # Its own process group: a terminal's Ctrl-C reaches flowscope only, which then stops
        # dumpcap itself, after it has taken stock.
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, process_group=0, preexec_fn=_die_with_parent)
        self.reader = threading.Thread(target=self._read_stderr, name="dumpcap-stderr", daemon=True)
        self.reader.start()

    def _read_stderr(self) -> None:
        for chunk in iter(lambda: self.proc.stderr.read1(65536), b""):
            self.err.feed(chunk)
        self.err.close()

    @property
    def packets_seen(self) -> int:
        return self.err.packets_seen

    def _explain(self) -> str | None:
        o = self.options
        return explain(list(self.err.lines), o.interface, o.bpf, self.path, self.workdir)

    def wait_ready(self, timeout_s: float) -> None:
        while not self.err.started.wait(0.05):
            if self.proc.poll() is not None or (timeout_s := timeout_s - 0.05) <= 0:
                self.stop()
                self.wait()
                raise LiveError(self._explain() or f"cannot capture on {self.options.interface}: "
                                                   f"dumpcap did not start ({self._exit_text()})")

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def closed_files(self) -> list[str]:
        # dumpcap closes a file before it announces the next; all are closed once it has exited
        # and its stderr is drained.
        done = self.proc is not None and self.proc.poll() is not None and not self.reader.is_alive()
        files = list(self.err.files)
        new = files[:len(files) if done else max(len(files) - 1, 0)]
        # forget what is handed over: a run of days announces a file a second (the stderr
        # thread only appends, so the first entries are still these)
        del self.err.files[:len(new)]
        return new

    def stop(self, grace_s: float = 0.0) -> None:
        if self.running():
            if grace_s:
                self._settle(grace_s)
            self.stopping = True
            self.proc.send_signal(signal.SIGINT)

    def _settle(self, grace_s: float) -> None:
        """Packets that arrived before the stop may still sit in a kernel ring block that
        libpcap hands over only when the block times out (dumpcap reads with a 250 ms
        timeout), or in a backlog dumpcap has not reached on a loaded machine; on SIGINT it
        stops reading at once and those would be lost, uncounted. So wait `grace_s`, then
        while dumpcap's counter still moves (it prints it every ~0.5 s), up to SETTLE_MAX_S."""
        deadline = time.monotonic() + SETTLE_MAX_S
        time.sleep(grace_s)
        while self.running() and time.monotonic() < deadline:
            before = self.err.packets_seen
            time.sleep(SETTLE_QUIET_S)
            if self.err.packets_seen == before:
                return

    def wait(self, timeout_s: float = 15.0) -> None:
        if self.proc is None:
            return
        try:
            rc = self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        if self.reader:
            self.reader.join(5)
        if rc == 0 and not self.stopping and self.options.max_packets:
            self.reached_limit = True
        elif rc != 0 and self.error is None and self.err.started.is_set():
            self.error = self._explain() or f"dumpcap stopped capturing ({self._exit_text()})"

    def _exit_text(self) -> str:
        rc = self.proc.returncode if self.proc else None
        if rc is None:
            return "still running"
        if rc < 0:
            return f"killed by {signal.Signals(-rc).name}"
        return f"exit status {rc}"

    def drops(self) -> Drops:
        return self.err.final or Drops(received=self.err.captured, source=None)
