"""Helpers for the report tests: paths, tables that follow the EVENTS/FRAMES schemas
(synthetic until the metadata stage writes real ones)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pyarrow as pa

import flowscope
from flowscope import schema

ROOT = Path(__file__).resolve().parent.parent  # the repository
SAMPLE = ROOT / "captures" / "sample_session.pcap"
SAMPLE_ANALYSED_AT = "2026-03-02T12:00:00Z"

T0 = pd.Timestamp("2026-03-02 09:00:00", tz="UTC")
FLOW_DEFAULTS = {
    "l4": "tcp", "ip_version": 4, "orig_ip": "192.168.1.20", "orig_port": 40000, "resp_port": 443,
    "pkts_orig": 10, "pkts_resp": 10, "bytes_orig": 1000, "bytes_resp": 1000, "duration_s": 10.0,
    "service": "other", "is_meta": False, "hostname": "", "catalog_rule": "", "stun_mapped": [],
}


def make_flows(*rows: dict) -> pd.DataFrame:
    """A flows DataFrame with every FLOWS column: given values, else defaults, else null."""
    records = []
    for i, row in enumerate(rows):
        rec = {c.name: None for c in schema.FLOWS}
        rec.update(FLOW_DEFAULTS, flow_id=i, resp_ip=f"157.240.0.{i + 1}", ts_start=T0 + pd.Timedelta(minutes=i))
        rec.update(row)
        rec.setdefault("ts_end", None)
        rec["ts_end"] = rec["ts_end"] or rec["ts_start"] + pd.Timedelta(seconds=rec["duration_s"])
        records.append(rec)
    table = pa.Table.from_pylist(records, schema=schema.arrow_schema(schema.FLOWS))
    return table.to_pandas()


def make_events(*rows: dict) -> pd.DataFrame:
    records = []
    for i, row in enumerate(rows):
        rec = {"event_id": i, "flow_id": 0, "service": "whatsapp.chat", "kind": "message",
               "ts_start": T0 + pd.Timedelta(seconds=i), "direction": "up", "bytes": 100, "frames": 1,
               "confidence": "medium", "detail": ""}
        rec.update(row)
        rec.setdefault("ts_end", rec["ts_start"])
        records.append(rec)
    return pa.Table.from_pylist(records, schema=schema.arrow_schema(schema.EVENTS)).to_pandas()


def synthetic_events(flows: pd.DataFrame) -> pa.Table:
    """Events as the metadata stage will write them: chat frames for chat flows, a call
    event for the call flows, media and 'flow' events for the other Meta flows."""
    rows = []
    meta = flows[flows["is_meta"].fillna(False)]
    for f in meta.itertuples():
        start, end = f.ts_start, f.ts_end
        if f.service == "whatsapp.chat":
            step = (end - start) / 6
            for k, (kind, direction, size) in enumerate((("handshake", "up", 300), ("message", "up", 180),
                                                         ("receipt", "down", 40), ("message", "down", 220),
                                                         ("presence", "up", 30))):
                t = start + step * k
                rows.append((f.flow_id, f.service, kind, t, t, direction, size, 2, "medium", ""))
        elif f.service == "whatsapp.call":
            rows.append((f.flow_id, f.service, "call", start, end, "both", int(f.bytes_orig + f.bytes_resp), 0,
                         "high", "relays=2 p2p_legs=1"))
        elif f.service == "whatsapp.media":
            rows.append((f.flow_id, f.service, "media", start, end, "down", int(f.bytes_resp), 0, "high", ""))
        else:
            rows.append((f.flow_id, f.service, "flow", start, end, "up", int(f.bytes_orig + f.bytes_resp), 0,
                         "low", ""))
    names = [c.name for c in schema.EVENTS][1:]
    df = pd.DataFrame(rows, columns=names).sort_values(["ts_start", "flow_id", "kind"], kind="stable")
    df.insert(0, "event_id", range(len(df)))
    return pa.Table.from_pandas(df, schema=schema.arrow_schema(schema.EVENTS), preserve_index=False)


def synthetic_frames(flows: pd.DataFrame) -> pa.Table:
    rows = []
    for f in flows[flows["service"] == "whatsapp.chat"].itertuples():
        for direction in ("up", "down"):
            for k in range(4):
                t = f.ts_start + (f.ts_end - f.ts_start) * (k + 1) / 5
                rows.append((f.flow_id, k, t, t, direction, 100 + 10 * k, "wa-frame"))
    df = pd.DataFrame(rows, columns=[c.name for c in schema.FRAMES])
    return pa.Table.from_pandas(df, schema=schema.arrow_schema(schema.FRAMES), preserve_index=False)


def with_metadata(result, analysed_at: str = SAMPLE_ANALYSED_AT):
    """A copy of `result` carrying synthetic events and frames (and a fixed analysis time)."""
    flows = result.flows
    return flowscope.AnalysisResult(result.table, result.captures, result.settings, result.notes,
                                    events_table=synthetic_events(flows), frames_table=synthetic_frames(flows),
                                    analysed_at=analysed_at)


# --- a real browser: open a page in headless Chromium over the DevTools protocol ----------

def chromium_or_skip() -> str:
    import pytest

    from flowscope.report.pdf import find_chromium
    binary = find_chromium()
    if binary is None:
        pytest.skip("chromium is not installed (Debian package chromium; scripts/setup-system.sh installs it)")
    return binary


def browse(page: Path, settle_s: float = 1.0, timeout_s: float = 60.0) -> dict:
    """Load `page` in headless Chromium; return what it did:
    {"errors": console errors, uncaught exceptions and browser log errors (CSP violations
    included), "requests": every URL the page asked for, "title": document.title}."""
    import json
    import subprocess
    import tempfile
    import time
    import urllib.request

    import websocket

    from flowscope.report.pdf import headless_args
    binary = chromium_or_skip()
    # its own session, so that every Chromium process (zygote, renderers) is stopped with it
    # before the profile is removed (a renderer still writing into Default/ broke cleanup)
    with tempfile.TemporaryDirectory(prefix="flowscope-cdp-", ignore_cleanup_errors=True) as profile:
        proc = subprocess.Popen(headless_args(binary, profile) + ["--remote-debugging-port=0", "about:blank"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            port = _devtools_port(Path(profile), proc, timeout_s)
            targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10))
            ws_url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
            ws = websocket.create_connection(ws_url, timeout=timeout_s, suppress_origin=True)
            try:
                return _session(ws, page.resolve().as_uri(), settle_s, timeout_s, time)
            finally:
                ws.close()
        finally:
            _stop_group(proc)


def _stop_group(proc) -> None:
    import os
    import signal
    import subprocess
    for sig, wait_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue
        try:  # the group outlives its leader until the others exit
            for _ in range(100):
                os.killpg(proc.pid, 0)
                __import__("time").sleep(0.05)
        except ProcessLookupError:
            return


def _devtools_port(profile: Path, proc, timeout_s: float) -> int:
    import time
    deadline = time.monotonic() + timeout_s
    marker = profile / "DevToolsActivePort"
    while time.monotonic() < deadline:
        if marker.is_file() and marker.read_text().strip():
            return int(marker.read_text().splitlines()[0])
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited with {proc.returncode} before opening DevTools")
        time.sleep(0.05)
    raise TimeoutError("chromium did not open its DevTools port")


def _session(ws, url: str, settle_s: float, timeout_s: float, time) -> dict:
    import json
    counter = iter(range(1, 10**6))
    events: list[dict] = []

    def call(method, **params):
        """Send a command and wait for its answer; events that arrive meanwhile are kept."""
        ident = next(counter)
        ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            msg = json.loads(ws.recv())
            if msg.get("id") == ident:
                return msg.get("result", {})
            events.append(msg)
    ws.settimeout(timeout_s)
    for domain in ("Network", "Runtime", "Log", "Page"):
        call(f"{domain}.enable")  # all four on before the page starts loading
    call("Page.navigate", url=url)
    deadline = time.monotonic() + timeout_s
    while not any(e.get("method") == "Page.loadEventFired" for e in events):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not finish loading")
        events.append(json.loads(ws.recv()))
    settle_until = time.monotonic() + settle_s
    ws.settimeout(0.1)
    while time.monotonic() < settle_until:  # late console messages and requests
        try:
            events.append(json.loads(ws.recv()))
        except Exception:  # noqa: BLE001 - a receive timeout: nothing new yet
            continue
    ws.settimeout(timeout_s)
    title = call("Runtime.evaluate", expression="document.title", returnByValue=True)["result"].get("value")
    return {**_classify(events), "title": title}


def _classify(events: list[dict]) -> dict:
    errors, requests = [], []
    for msg in events:
        method, params = msg.get("method"), msg.get("params", {})
        if _TRACE:
            print("CDP", method, str(params)[:160])
        if method == "Network.requestWillBeSent":
            requests.append(params["request"]["url"])
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            errors.append("console: " + " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"]))
        elif method == "Runtime.exceptionThrown":
            errors.append("exception: " + params["exceptionDetails"].get("text", ""))
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            errors.append(f"log ({params['entry'].get('source')}): {params['entry'].get('text')}")
    return {"errors": errors, "requests": requests}


_TRACE = False


def network_requests(seen: dict, page: Path) -> list[str]:
    """Requests other than the page itself and inline data: URIs."""
    own = page.resolve().as_uri()
    return [u for u in seen["requests"] if u != own and not u.startswith("data:")]


# Chromium's tagged PDF names each structure element after its accessibility node, and the
# node numbers now and then come out one apart (--print-to-pdf itself: once in 40 prints of
# the same page on this VM; docs/features.md). Evidence bytes are compared with those names
# blanked in report.pdf, and without report.pdf's own hash in manifest.json (verify() checks
# that hash against the file).
PDF_NODE_NAME = re.compile(rb"\(node\d+\)")


def evidence_bytes(path: Path) -> bytes:
    """A written file's bytes as the same-input-same-bytes tests compare them."""
    data = path.read_bytes()
    if path.suffix == ".pdf":
        return PDF_NODE_NAME.sub(b"(node)", data)
    if path.name == "manifest.json":
        doc = json.loads(data)
        entry = (doc.get("outputs") or {}).get("report.pdf")
        if entry:
            entry.pop("sha256", None)
        return json.dumps(doc, sort_keys=True).encode()
    return data
