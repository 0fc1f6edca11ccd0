"""A capture engine for tests that needs no interface: a classic pcap cut into ring files of
`per_file` packets, handed to the live session as if dumpcap had closed them. The packets
keep their timestamps, so a live run over it can be compared with `analyze` of the file."""
from __future__ import annotations

import struct
from pathlib import Path

from conftest import pcap_records
from flowscope.live.engines import Drops, Engine


class FileRing(Engine):
    label = "file-ring (test)"
    counts_drops_live = True

    def __init__(self, source: Path, workdir: Path, per_file: int, files_per_poll: int | None = None):
        self.header, self.records = pcap_records(source)
        self.workdir, self.per_file = Path(workdir), per_file
        self.files_per_poll = files_per_poll
        self.next = 0           # index of the next record to write
        self.index = 0
        self.stopped = False
        self.packets_seen = 0

    def check(self) -> None:
        pass

    def start(self) -> None:
        pass

    def wait_ready(self, timeout_s: float) -> None:
        pass

    def _write_next(self) -> str:
        self.index += 1
        chunk = self.records[self.next:self.next + self.per_file]
        self.next += len(chunk)
        self.packets_seen += len(chunk)
        path = self.workdir / f"live_{self.index:05d}_test.pcap"
        path.write_bytes(self.header + b"".join(chunk))
        return str(path)

    def closed_files(self) -> list[str]:
        out = []
        while self.next < len(self.records) and (self.files_per_poll is None or len(out) < self.files_per_poll):
            out.append(self._write_next())
        return out

    def running(self) -> bool:
        return not self.stopped and self.next < len(self.records)

    def stop(self, grace_s: float = 0.0) -> None:
        self.stopped = True

    def wait(self, timeout_s: float = 15.0) -> None:
        pass

    def drops(self) -> Drops:
        return Drops(kernel=0, interface=0, engine=0, received=self.packets_seen, source="file-ring (test)")


def looped(source: Path, out: Path, loops: int, pps: float) -> Path:
    """The capture replayed `loops` times at `pps` packets a second with new addresses each
    time, as `tcpreplay --loop=N --pps=R --unique-ip` 4.4.3 sent it onto a veth pair (seen
    with tshark): in loop k, a packet from a local address (10/8, fc00::/7) gets k added to
    its source and taken from its destination, any other packet k - 2 taken from its source
    and added to its destination (IPv4 addresses; the last 32 bits of IPv6 ones). So the
    answers of loop k continue the flow of loop k - 2, in a later ring file, beginning with
    the server's SYN-ACK: flows whose frame walk breaks, and whose records join only under
    the timeout of a closed connection. The packets keep their order, evenly spaced."""
    header, records = pcap_records(source)
    t0 = struct.unpack_from("<I", records[0], 0)[0]
    parts = [header]
    n = 0
    for k in range(loops):
        for rec in records:
            t = t0 + n / pps
            sec, usec = int(t), int(round((t - int(t)) * 1e6))
            if usec == 1_000_000:
                sec, usec = sec + 1, 0
            frame = bytearray(rec[16:])
            ether = struct.unpack_from(">H", frame, 12)[0]
            offsets = {0x0800: (26, 30), 0x86DD: (34, 50)}.get(ether, ())
            local = (ether == 0x0800 and frame[26] == 10) or (ether == 0x86DD and frame[22] & 0xFE == 0xFC)
            shift = k if local else -(k - 2)
            for off, step in zip(offsets, (shift, -shift)):
                struct.pack_into(">I", frame, off, (struct.unpack_from(">I", frame, off)[0] + step) & 0xFFFFFFFF)
            parts.append(struct.pack("<II", sec, usec) + rec[8:16] + bytes(frame))
            n += 1
    out.write_bytes(b"".join(parts))
    return out
