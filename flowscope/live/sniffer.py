"""scapy's packet socket as the fallback engine, where dumpcap is not installed.

scapy is used only to open the socket (interface, promiscuous mode, the BPF filter
compiled by libpcap); frames are read raw, never dissected, and written by a small
pcap writer into a ring of files, one per RING_FILE_S. Slower than dumpcap (a Python
call a packet), so it drops earlier; the kernel's PACKET_STATISTICS count those drops.
"""
from __future__ import annotations

import errno
import logging
import queue
import select
import socket
import struct
import threading
import time
from pathlib import Path

logging.getLogger("scapy").setLevel(logging.ERROR)  # its import-time warnings are not ours

import scapy  # noqa: E402  (ImportError here means: no scapy, see session.choose_engine)
from scapy.arch.linux import L2ListenSocket  # noqa: E402
from scapy.data import ARPHRD_TO_DLT  # noqa: E402
from scapy.error import Scapy_Exception  # noqa: E402

from flowscope.live.engines import Drops, Engine, interface_drops, interfaces, no_such_interface  # noqa: E402
from flowscope.live.options import RING_FILE_S, LiveError, LiveOptions  # noqa: E402

SOL_PACKET, PACKET_STATISTICS = 263, 6
SO_RCVBUFFORCE = 33   # Linux; the socket module does not export it
SNAP_BYTES = 262144
RCVBUF_BYTES = 32 << 20
DRAIN_MAX_S = 2.0
DLT_TO_LINKTYPE = {12: 101}  # BSD DLT_RAW -> pcap LINKTYPE_RAW


class PcapRing:
    """Classic pcap files (microsecond timestamps) cut every `file_s` seconds."""

    def __init__(self, workdir: Path, linktype: int, file_s: float):
        self.workdir, self.linktype, self.file_s = Path(workdir), linktype, file_s
        self.index = 0
        self.fh = None
        self.path: str | None = None
        self.deadline = 0.0

    def open_next(self) -> str | None:
        """Close the current file (returned) and start the next."""
        closed = self.close()
        self.index += 1
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
        self.path = str(self.workdir / f"live_{self.index:05d}_{stamp}.pcap")
        self.fh = open(self.path, "wb")
        self.fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, SNAP_BYTES, self.linktype))
        self.deadline = time.monotonic() + self.file_s
        return closed

    def write(self, frame: bytes, ts_s: float) -> None:
        sec = int(ts_s)
        usec = int(round((ts_s - sec) * 1e6))
        if usec == 1_000_000:
            sec, usec = sec + 1, 0
        data = frame[:SNAP_BYTES]
        self.fh.write(struct.pack("<IIII", sec, usec, len(data), len(frame)) + data)

    def close(self) -> str | None:
        if self.fh is None:
            return None
        fh, self.fh = self.fh, None
        fh.close()
        return self.path


class ScapyEngine(Engine):
    counts_drops_live = True      # PACKET_STATISTICS and the NIC counters, read at any time

    def __init__(self, options: LiveOptions, workdir: Path):
        self.options = options
        self.workdir = Path(workdir)
        self.label = f"scapy {scapy.__version__}"
        self.sock = None
        self.thread: threading.Thread | None = None
        self.closed: queue.Queue[str] = queue.Queue()
        self.halt = threading.Event()
        self.packets_seen = 0
        self.kernel_drops = 0
        self.ifdrops_at_start: int | None = None
        self.error: str | None = None
        self.reached_limit = False

    def check(self) -> None:
        """Opening the socket is the check: it needs the interface, the capability and a
        filter libpcap compiles."""
        iface = self.options.interface
        if iface not in interfaces():
            raise no_such_interface(iface)
        try:
            self.sock = L2ListenSocket(iface=iface, filter=self.options.bpf, promisc=True)
        except PermissionError:
            raise LiveError(f"cannot capture on {iface}: no CAP_NET_RAW for the scapy fallback (run as root, "
                            f"or install dumpcap and `setcap cap_net_raw,cap_net_admin=eip` it)") from None
        except Scapy_Exception as exc:
            if self.options.bpf and "filter" in str(exc).lower():
                raise LiveError(f"bad capture filter (BPF) {self.options.bpf!r}: {exc}") from None
            raise LiveError(f"cannot capture on {iface}: {exc}") from None
        except (OSError, ValueError) as exc:
            raise LiveError(f"cannot capture on {iface}: {exc}") from None
        try:  # a larger buffer than scapy's 64 KiB rides out the pause while a file is analysed
            self.sock.ins.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF_BYTES)  # root may exceed rmem_max
        except OSError:
            self.sock.ins.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF_BYTES)
        self._stats()  # reading the kernel's counters resets them: start from zero
        self.kernel_drops = 0
        self.ifdrops_at_start = interface_drops(iface)

    def start(self) -> None:
        if self.sock is None:
            self.check()
        hatype = self.sock.ins.getsockname()[3]
        dlt = ARPHRD_TO_DLT.get(hatype, 1)
        self.ring = PcapRing(self.workdir, DLT_TO_LINKTYPE.get(dlt, dlt), RING_FILE_S)
        self.ring.open_next()
        self.thread = threading.Thread(target=self._run, name="scapy-capture", daemon=True)
        self.thread.start()

    def wait_ready(self, timeout_s: float) -> None:
        if not self.running() and self.error:
            raise LiveError(self.error)

    def _run(self) -> None:
        try:
            self._capture()
        except Exception as exc:  # noqa: BLE001 - a thread's failure must reach the session as its error
            self.error = self._describe(exc)
        finally:
            self._stats()
            try:
                last = self.ring.close()
            except OSError as exc:   # the final flush can be what meets the full disk
                last = self.ring.path
                self.error = self.error or self._describe(exc)
            if last:
                self.closed.put(last)
            self.sock.close()

    def _capture(self) -> None:
        limit = self.options.max_packets
        drain_until = None
        while True:
            halted = self.halt.is_set()
            if halted and drain_until is None:
                drain_until = time.monotonic() + DRAIN_MAX_S
            # once asked to stop, read what the socket already holds (on a busy port: for a
            # bounded time), then leave
            ready, _, _ = select.select([self.sock.ins], [], [], 0 if halted else 0.1)
            if halted and (not ready or time.monotonic() > drain_until):
                return
            if ready:
                _cls, frame, ts = self.sock.recv_raw(SNAP_BYTES)
                if frame:
                    self.ring.write(frame, ts if ts is not None else time.time())
                    self.packets_seen += 1
                    if limit and self.packets_seen >= limit:
                        self.reached_limit = True
                        return
            if time.monotonic() >= self.ring.deadline:
                self.closed.put(self.ring.open_next())
                self._stats()   # keeps the live view's kernel drop count current

    def _describe(self, exc: Exception) -> str:
        if getattr(exc, "errno", None) == errno.ENOSPC:
            return f"capture stopped: no space left on the file system holding the capture files ({self.workdir})"
        return f"capture stopped: {exc}"

    def _stats(self) -> None:
        raw = self.sock.ins.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
        _packets, dropped = struct.unpack("II", raw)
        self.kernel_drops += dropped

    def closed_files(self) -> list[str]:
        out = []
        while True:
            try:
                out.append(self.closed.get_nowait())
            except queue.Empty:
                return out

    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def stop(self, grace_s: float = 0.0) -> None:
        self.halt.set()   # the thread drains the socket before it closes: no grace needed

    def wait(self, timeout_s: float = 15.0) -> None:
        if self.thread is not None:
            self.thread.join(timeout_s)
        elif self.sock is not None:
            self.sock.close()

    def drops(self) -> Drops:
        # PACKET_STATISTICS: drops for want of socket buffer (the kernel side); the NIC's
        # counters over the run, as libpcap computes ps_ifdrop; this engine loses nothing
        # once it has read a frame.
        now = interface_drops(self.options.interface)
        start = self.ifdrops_at_start
        iface = now - start if None not in (now, start) else None
        return Drops(kernel=self.kernel_drops, interface=iface, engine=0,
                     received=self.packets_seen, source="PACKET_STATISTICS, sysfs NIC counters")
