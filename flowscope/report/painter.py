"""The report's charts drawn on both cores: a forked child draws half of them.

matplotlib draws one figure at a time under the GIL, and the six charts were the report's
largest cost (~0.9 s of the 1.76 s it added at 20k flows; benchmarks/README.md, "The
report's cost"). Once the tables are read and matplotlib is imported, `Painter.fork` forks:
the child draws its share from the same data (copy-on-write: no import, no second read),
encodes the PNGs and sends their bytes back over a pipe, while this process draws the rest.
Same code, same data, same bytes (tests/report/test_painter.py).

Measured and not taken (benchmarks/README.md): a painter started earlier, forked before the
analysis or before the tables are written, or spawned as a fresh interpreter. Each overlapped
the imports with other work but cost more CPU than it saved on two cores (its own imports,
a second read of the tables, copy-on-write faults in a large parent).

The child only draws, writes to its pipe and leaves with os._exit: it never returns into the
caller's stack and runs no atexit handler. It is a helper only: when it cannot be forked,
dies, or sends something else, this process draws those charts itself, and the report is
the same.

    painter = Painter.fork({"destinations": build, ...})   # None: draw them yourself
    ...                                                     # draw the others
    pngs = painter.pngs()                                   # {name: PNG}; {} on failure
"""
from __future__ import annotations

import os
import pickle
import select
import struct
import time
import warnings

WAIT_S = 120
_HEADER = struct.Struct("<Q")


class Painter:
    """A forked child drawing some charts (see the module's doc)."""

    def __init__(self, pid: int, fd: int, names: tuple[str, ...]):
        self.pid, self._fd, self.names = pid, fd, names

    @classmethod
    def fork(cls, builds: dict) -> Painter | None:
        """A child drawing `builds` ({name: a function returning the figure}), or None when
        there is nothing to draw or no child can be forked."""
        if not builds or not hasattr(os, "fork"):
            return None
        try:
            r, w = os.pipe()
        except OSError:
            return None
        try:
            with warnings.catch_warnings():
                # Python 3.12+ warns of fork() beside other threads (the browser's reader, the
                # database hashing): the child touches nothing they hold (see the module's doc)
                warnings.filterwarnings("ignore", message=".*multi-threaded.*fork", category=DeprecationWarning)
                pid = os.fork()
        except OSError:
            os.close(r)
            os.close(w)
            return None
        if pid == 0:
            os.close(r)
            _leave(lambda: _write_all(w, _pack(_draw(builds))))
        os.close(w)
        return cls(pid, r, tuple(builds))

    def pngs(self, timeout_s: float = WAIT_S) -> dict[str, bytes]:
        """The child's PNG bytes by name, or {} when it failed (the caller draws them)."""
        if self._fd < 0:
            return {}
        try:
            answer = _unpack(_read_all(self._fd, time.monotonic() + timeout_s))
        except (OSError, EOFError, pickle.UnpicklingError, ValueError, TimeoutError):
            answer = None
        finally:
            self.close()
        ok = isinstance(answer, dict) and set(answer) == set(self.names) and \
            all(isinstance(v, bytes) for v in answer.values())
        return answer if ok else {}

    def close(self) -> None:
        """Let the child go and reap it (killed if it has not ended within a moment);
        after this, pngs() answers {}."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            _reap(self.pid)


def _draw(builds: dict) -> dict[str, bytes]:
    from flowscope.report import charts as ch
    return {name: ch.encode_png(ch.draw(build())) for name, build in builds.items()}


def _leave(work) -> None:
    """Run `work` in the forked child and end the child, whatever happens."""
    code = 1
    try:
        work()
        code = 0
    except BaseException:  # noqa: BLE001 - the parent draws the charts instead
        pass
    finally:
        os._exit(code)


def _pack(obj) -> bytes:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


def _unpack(data: bytes):
    if len(data) < _HEADER.size:
        raise EOFError("no answer")
    (size,) = _HEADER.unpack_from(data)
    if len(data) != _HEADER.size + size:
        raise EOFError("a short answer")
    return pickle.loads(data[_HEADER.size:])


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _read_all(fd: int, deadline: float) -> bytes:
    """Everything until the child closes its end, by `deadline`."""
    buf = bytearray()
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise TimeoutError("the painter did not answer in time")
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return bytes(buf)
        buf += chunk


def _reap(pid: int) -> None:
    """Wait for the child, killing it if it has not ended within a moment (it has nothing
    more to give once its pipe is closed)."""
    try:
        for _ in range(100):
            done, _status = os.waitpid(pid, os.WNOHANG)
            if done:
                return
            time.sleep(0.01)
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    except (ChildProcessError, ProcessLookupError):
        pass
