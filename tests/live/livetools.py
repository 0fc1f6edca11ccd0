"""Helpers for live capture tests: a private network namespace holding a veth pair, a replayer
for the sample capture, and `flowscope live` run as a real process inside the namespace."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "captures" / "sample_session.pcap"
SAMPLE_PACKETS = 1037
CAPTURING_TIMEOUT_S = 60
EXIT_TIMEOUT_S = 240   # a cold numba cache compiles for ~25 s on first use


@dataclass
class Veth:
    """A veth pair inside namespace `ns`: frames sent on `send` arrive on `capture`."""
    ns: str
    send: str = "fs-send"
    capture: str = "fs-cap"

    def cmd(self, *args) -> list[str]:
        return ["ip", "netns", "exec", self.ns, *map(str, args)]

    def replay(self, pcap=SAMPLE, *, pps: int | None = 1000, loop: int = 1) -> int:
        """Send `pcap` with tcpreplay; returns the packets it reports as sent."""
        rate = [f"--pps={pps}"] if pps else ["--topspeed"]
        r = subprocess.run(self.cmd("tcpreplay", "-i", self.send, *rate, f"--loop={loop}", pcap),
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        return int(re.search(r"Successful packets:\s+(\d+)", r.stdout).group(1))


def _skip_unless_netns_possible() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: creates a network namespace with a veth pair and captures on it")
    for tool, package in (("ip", "iproute2"), ("tcpreplay", "tcpreplay")):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool} (Debian package {package}; scripts/setup-system.sh installs it)")


def _run(*cmd) -> None:
    subprocess.run(list(map(str, cmd)), check=True, capture_output=True, text=True, timeout=30)


@pytest.fixture(name="veth")
def veth_fixture():
    _skip_unless_netns_possible()
    name = f"flowscope-test-{uuid.uuid4().hex[:8]}"
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"`ip netns add` is not possible here: {r.stderr.strip()}")
    v = Veth(name)
    try:
        # No IPv6 on the pair: the kernel would otherwise send its own router solicitations
        # and MLD reports on it, which are not in the sample.
        for key in ("all", "default"):
            subprocess.run(v.cmd("sysctl", "-qw", f"net.ipv6.conf.{key}.disable_ipv6=1"), capture_output=True)
        _run("ip", "-n", name, "link", "add", v.send, "type", "veth", "peer", "name", v.capture)
        for dev in (v.send, v.capture):
            # PCAPdroid frames carry a 32-byte trailer: 1500-byte packets exceed the default MTU
            _run("ip", "-n", name, "link", "set", dev, "mtu", "9000", "up")
        yield v
    finally:
        pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout.split()
        for pid in pids:  # only processes this test started live in the namespace
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


class LiveProcess:
    """`flowscope live` running in the namespace; stderr is collected as it comes."""

    def __init__(self, cmd: list[str], env: dict | None = None):
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     cwd=ROOT, env=env)
        self.err_lines: list[str] = []
        self.capturing = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.err_lines.append(line)
            if line.startswith("flowscope: capturing on"):
                self.capturing.set()
        self.capturing.set()   # also when it exited without capturing: the caller checks

    def wait_capturing(self) -> None:
        assert self.capturing.wait(CAPTURING_TIMEOUT_S), "flowscope live did not start capturing"
        assert self.proc.poll() is None, f"flowscope live exited: {''.join(self.err_lines)}"

    def engine_pid(self) -> int:
        """The capture engine's pid (dumpcap, a child of flowscope)."""
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                comm, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
                if comm == "dumpcap" and int(rest[1]) == self.proc.pid:
                    return int(entry.name)
        raise AssertionError("no dumpcap child found")

    def signal(self, sig) -> None:
        self.proc.send_signal(sig)

    def finish(self, timeout_s: float = EXIT_TIMEOUT_S):
        """(exit code, stdout, stderr) once it has exited."""
        try:
            out = self.proc.stdout.read() if self.proc.wait(timeout_s) is not None else ""
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        self.reader.join(10)
        return self.proc.returncode, out, "".join(self.err_lines)


def start_live(veth: Veth, out: Path, *args, engine: str = "dumpcap", prefix=(), env=None) -> LiveProcess:
    """`flowscope live -i <capture end> --out OUT ARGS` in the namespace. engine="scapy" hides
    dumpcap from PATH, which is how a machine without it looks."""
    hide = ["env", "PATH=/nonexistent"] if engine == "scapy" else []
    cmd = veth.cmd(*prefix, *hide, sys.executable, "-m", "flowscope.cli", "live", "-i", veth.capture,
                   "--out", out, *args)
    return LiveProcess(cmd, env)


def live_summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def wait_for(predicate, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def need_engine(engine: str) -> None:
    """Skip, saying why, when the engine a test is about is not installed."""
    if engine == "scapy":
        pytest.importorskip("scapy", reason="scapy (the test extra) provides the fallback engine")
    elif shutil.which("dumpcap") is None:
        pytest.skip("dumpcap is not installed (Debian: tshark; scripts/setup-system.sh installs it)")


def split_sample(out_dir: Path, at: int) -> tuple[Path, Path]:
    """The sample cut into two classic pcaps before record `at` (little-endian, as it is)."""
    data = SAMPLE.read_bytes()
    pos, bounds = 24, []
    while pos < len(data):
        bounds.append(pos)
        pos += 16 + int.from_bytes(data[pos + 8:pos + 12], "little")
    first, second = out_dir / "first.pcap", out_dir / "second.pcap"
    first.write_bytes(data[:bounds[at]])
    second.write_bytes(data[:24] + data[bounds[at]:])
    return first, second
