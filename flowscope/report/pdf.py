"""report.pdf: the HTML page printed by headless Chromium (Debian package `chromium`).

The browser is started before the page exists (`Browser.start()` returns at once; Chromium
boots and opens a blank tab while the charts and the page are drawn), then loads the page
and prints it over its DevTools pipe (`--remote-debugging-pipe`: two file descriptors, no
port, no network). It prints with the parameters Chromium's own `--print-to-pdf
--no-pdf-header-footer` uses (a fresh browser context, wait for the page's load event,
`Page.printToPDF` with the same options), so report.pdf is the bytes that command writes.

Chromium stamps the PDF with the wall-clock time; those two dates are set to the
analysis time, so the PDF of the same analysis is the same bytes. (Chromium itself now and
then numbers the tagged PDF's structure elements, named after accessibility nodes, one
apart: --print-to-pdf did so in one of 40 prints of the same page here.)

The browser runs in a session of its own, with its profile and temporary files in a
throw-away folder; `Browser.close()` kills it and whatever it started once the PDF is in,
and removes the folder. Should flowscope itself be killed, the browser sees its pipe close
and quits.
"""
from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
TIMEOUT_S = 180
CLOSE_TIMEOUT_S = 5
_PDF_DATE = re.compile(rb"/(CreationDate|ModDate) \(D:\d{14}[^)]*\)")
# signals Python ignores that a child should not (what subprocess's restore_signals resets)
_RESTORED = tuple(getattr(signal, name) for name in ("SIGPIPE", "SIGXFZ", "SIGXFSZ") if hasattr(signal, name))
# A blank first tab (else the New Tab Page, a WebUI page that keeps a core busy for a
# second), and no WebUI omnibox popups (two more such pages a window; a headless browser
# shows no omnibox): they only cost the CPU the report is drawn with.
QUIET_ARGS = ("--disable-features=WebUIOmniboxPopup,WebUIOmniboxAimPopup,WebUIOmniboxFullPopup", "about:blank")
# what headless Chromium's --print-to-pdf --no-pdf-header-footer asks for
# (components/headless/command_handler/headless_command.js, printToPDF())
PRINT_PARAMS = {"displayHeaderFooter": False, "generateTaggedPDF": True, "printBackground": True,
                "preferCSSPageSize": True}


class PdfError(Exception):
    """Chromium ran but wrote no PDF."""


def find_chromium() -> str | None:
    """$FLOWSCOPE_CHROMIUM, else the first Chromium/Chrome on PATH."""
    env = os.environ.get("FLOWSCOPE_CHROMIUM")
    if env:
        return env if shutil.which(env) else None
    return next((p for name in CANDIDATES if (p := shutil.which(name))), None)


def chromium_version(binary: str | None = None) -> str | None:
    binary = binary or find_chromium()
    if not binary:
        return None
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.strip().splitlines()[0] if out.strip() else None


def headless_args(binary: str, profile: str) -> list[str]:
    """A throw-away profile and nothing that phones home (no sync, updates or metrics)."""
    return [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--metrics-recording-only",
            "--disable-dev-shm-usage", f"--user-data-dir={profile}"]


def render_pdf(html_path: Path, pdf_path: Path, analysed_at: str, binary: str | None = None,
               browser: Browser | Unavailable | None = None) -> Path:
    """Print `html_path` to `pdf_path` with `browser` (one started now if None); raise
    FileNotFoundError without Chromium, PdfError if it fails."""
    if browser is not None:
        return browser.print_pdf(html_path, pdf_path, analysed_at)
    with Browser.start(binary) as own:
        return own.print_pdf(html_path, pdf_path, analysed_at)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class Browser:
    """One headless Chromium, driven over its DevTools pipe; prints one page.

        with Browser.start() as browser:      # returns at once, Chromium boots meanwhile
            ...                               # write report.html
            browser.print_pdf(html, pdf, analysed_at)

    Its profile and temporary files live in a throw-away directory, removed by `close()`,
    which also ends the browser and every process it started."""

    def __init__(self, binary: str):
        self.binary = binary
        self.profile = tempfile.mkdtemp(prefix="flowscope-chromium-")
        self._buf = bytearray()
        self._next_id = 0
        self._session: str | None = None
        self._error: BaseException | None = None
        self._pid: int | None = None
        self._rfd = self._wfd = -1
        self._ready: threading.Thread | None = None
        self._deadline = time.monotonic() + TIMEOUT_S
        try:
            self._spawn()
        except BaseException:
            self.close()
            raise
        self._ready = threading.Thread(target=self._prepare, name="flowscope-chromium", daemon=True)
        self._ready.start()

    @classmethod
    def start(cls, binary: str | None = None) -> Browser:
        """Launch Chromium (do not wait for it); raise FileNotFoundError when there is none,
        PdfError when it cannot be started."""
        binary = binary or find_chromium()
        path = shutil.which(binary) if binary else None
        if not path:
            raise FileNotFoundError("Chromium not found (Debian package chromium; or set $FLOWSCOPE_CHROMIUM)")
        try:
            return cls(path)
        except OSError as exc:
            raise PdfError(f"Chromium could not be started ({path}): {_one_line(exc)}") from None

    @classmethod
    def launch(cls, binary: str | None = None) -> Browser | Unavailable:
        """`start()`, with a failure kept for `print_pdf()` to raise: the caller starts the
        browser early and learns of a problem where the PDF is due."""
        try:
            return cls.start(binary)
        except (FileNotFoundError, PdfError) as exc:
            return Unavailable(exc)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- the process ---------------------------------------------------------------------

    def _spawn(self) -> None:
        to_r, to_w = (_high(fd) for fd in os.pipe())
        from_r, from_w = (_high(fd) for fd in os.pipe())
        err = os.open(os.path.join(self.profile, "stderr.log"), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._wfd, self._rfd = to_w, from_r
        try:
            args = headless_args(self.binary, self.profile) + ["--remote-debugging-pipe", *QUIET_ARGS]
            # its own temp files too go into the throw-away profile, removed with it even
            # when the disk is full (Chromium leaves org.chromium.Chromium.* in $TMPDIR)
            env = {**os.environ, "TMPDIR": self.profile}
            # Chromium reads commands on fd 3 and writes answers on fd 4; in a session of
            # its own, so that close() can end every process it started
            self._pid = os.posix_spawn(self.binary, args, env, setsid=True, setsigdef=_RESTORED, file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_DUP2, err, 2),
                (os.POSIX_SPAWN_DUP2, to_r, 3),
                (os.POSIX_SPAWN_DUP2, from_w, 4)])
        finally:
            for fd in (to_r, from_w, err):
                os.close(fd)

    def _exit_code(self, wait_s: float = 0.0):
        """Chromium's exit code once it has exited, else None; the process stays a zombie
        (not reaped) so that its process group id cannot be reused before close()."""
        end = time.monotonic() + wait_s
        while True:
            pid = self._pid
            if pid is None:
                return None
            try:
                info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:  # reaped by close() meanwhile
                return None
            if info is not None:
                return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status
            if time.monotonic() >= end:
                return None
            time.sleep(0.01)

    def _stderr_tail(self) -> str:
        try:
            lines = Path(self.profile, "stderr.log").read_text(errors="replace").strip().splitlines()
        except OSError:
            lines = []
        return _one_line(lines[-1]) if lines else "no output"

    def _died(self) -> PdfError:
        code = self._exit_code(wait_s=1.0)
        return PdfError(f"Chromium exited (exit {'unknown' if code is None else code}): {self._stderr_tail()}")

    def close(self) -> None:
        """End Chromium and every process it started (it has nothing left to do: killed,
        not asked to quit, so that nobody waits for its shutdown), remove its profile."""
        if self._pid is not None:
            try:
                os.killpg(self._pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            os.waitpid(self._pid, 0)  # reaped only now: its group id stays ours until here
            self._pid = None
        if self._ready is not None:
            self._ready.join(CLOSE_TIMEOUT_S)  # its pipe saw the end of the browser
        for attr in ("_wfd", "_rfd"):
            if getattr(self, attr) >= 0:
                os.close(getattr(self, attr))
                setattr(self, attr, -1)
        shutil.rmtree(self.profile, ignore_errors=True)

    # --- the DevTools protocol over the pipe ----------------------------------------------

    def _send(self, method: str, params: dict | None = None, session: bool = False) -> int:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self._session
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._wfd, data):]
        return self._next_id

    def _receive(self) -> dict:
        poll = select.poll()
        poll.register(self._rfd, select.POLLIN)
        while (end := self._buf.find(b"\0")) < 0:
            left = self._deadline - time.monotonic()
            if left <= 0:
                raise PdfError(f"Chromium did not answer within {TIMEOUT_S} s")
            if not poll.poll(min(left, 1.0) * 1000):
                continue
            chunk = os.read(self._rfd, 1 << 20)
            if not chunk:
                raise self._died()
            self._buf += chunk
        try:
            message = json.loads(bytes(self._buf[:end]))
        except ValueError:
            raise PdfError("Chromium sent an unreadable answer") from None
        del self._buf[:end + 1]
        return message

    def _call(self, method: str, params: dict | None = None, session: bool = False) -> dict:
        try:
            sent = self._send(method, params, session)
        except OSError:  # the pipe is closed: Chromium died
            raise self._died() from None
        while True:
            message = self._receive()
            if message.get("id") == sent:
                if "error" in message:
                    raise PdfError(f"Chromium refused {method}: {_one_line(message['error'].get('message', ''))}")
                return message.get("result", {})

    def _prepare(self) -> None:
        """A blank page in a browser context of its own, as --print-to-pdf opens (runs on a
        thread while the report is written)."""
        try:
            context = self._call("Target.createBrowserContext")["browserContextId"]
            target = self._call("Target.createTarget", {"url": "about:blank", "browserContextId": context})
            self._session = self._call("Target.attachToTarget",
                                       {"targetId": target["targetId"], "flatten": True})["sessionId"]
            self._call("Page.enable", session=True)
            self._call("Page.setLifecycleEventsEnabled", {"enabled": True}, session=True)
        except Exception as exc:  # reported by print_pdf
            self._error = exc

    def print_pdf(self, html_path: Path, pdf_path: Path, analysed_at: str) -> Path:
        """Load `html_path`, wait for its load event, print it to `pdf_path` (dates := the
        analysis time); raise PdfError (one line, with Chromium's last words) if that fails."""
        self._ready.join(max(self._deadline - time.monotonic(), 0))
        if self._ready.is_alive():
            raise PdfError(f"Chromium did not start within {TIMEOUT_S} s")
        if self._error is not None:
            if isinstance(self._error, PdfError):
                raise self._error
            raise PdfError(f"Chromium failed: {_one_line(self._error)}") from self._error
        self._deadline = time.monotonic() + TIMEOUT_S
        nav = self._call("Page.navigate", {"url": Path(html_path).resolve().as_uri()}, session=True)
        if nav.get("errorText"):
            raise PdfError(f"Chromium could not open {html_path}: {_one_line(nav['errorText'])}")
        self._wait_for_load(nav["frameId"], nav.get("loaderId"))
        data = base64.b64decode(self._call("Page.printToPDF", PRINT_PARAMS, session=True).get("data", ""))
        if not data.startswith(b"%PDF-"):
            raise PdfError("Chromium wrote no PDF")
        tmp = pdf_path.with_name(pdf_path.name + ".tmp")
        tmp.write_bytes(_stamp(data, analysed_at))
        os.replace(tmp, pdf_path)
        return pdf_path

    def _wait_for_load(self, frame: str, loader: str | None) -> None:
        while True:
            m = self._receive()
            p = m.get("params") or {}
            if (m.get("method") == "Page.lifecycleEvent" and p.get("name") == "load" and p.get("frameId") == frame
                    and (loader is None or p.get("loaderId") == loader)):
                return


class Unavailable:
    """A browser that could not be started: print_pdf() raises why."""

    def __init__(self, error: Exception):
        self.error = error

    def print_pdf(self, html_path: Path, pdf_path: Path, analysed_at: str) -> Path:
        raise self.error

    def close(self) -> None:
        pass

    def __enter__(self) -> Unavailable:
        return self

    def __exit__(self, *exc) -> None:
        pass


def _high(fd: int) -> int:
    """The same pipe end at a descriptor above 9 (close-on-exec), so that placing the
    child's ends at 3 and 4 cannot overwrite one another."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


def _stamp(pdf: bytes, analysed_at: str) -> bytes:
    """Creation and modification dates := the analysis time, same length (the xref table
    holds byte offsets, so nothing may move)."""
    when = datetime.fromisoformat(analysed_at.replace("Z", "+00:00"))
    stamp = when.strftime("%Y%m%d%H%M%S").encode()

    def repl(m: re.Match) -> bytes:
        new = b"/" + m.group(1) + b" (D:" + stamp + b"+00'00')"
        return new if len(new) == len(m.group(0)) else m.group(0)
    return _PDF_DATE.sub(repl, pdf)
