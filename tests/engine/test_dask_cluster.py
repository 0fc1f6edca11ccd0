"""A real cluster on loopback: a `dask scheduler` and two `dask worker` processes (with
nannies, as deployed), started here on free ports and always torn down."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

import flowscope
from conftest import ROOT, SAMPLE, pcap_records, split_pcap, write_records
from engine_checks import assert_same

distributed = pytest.importorskip("distributed")
pytestmark = pytest.mark.slow
START_TIMEOUT_S = 120


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args, env, log):
    # Own session: the worker's nanny and its worker process go down together.
    return subprocess.Popen([sys.executable, "-m", "dask", *args], env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)


def _stop(proc) -> None:
    for sig, wait_s in ((signal.SIGTERM, 15), (signal.SIGKILL, 15)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """The address of a running scheduler with two workers."""
    logs = tmp_path_factory.mktemp("dask-logs")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    procs = []
    try:
        with open(logs / "scheduler.log", "wb") as log:
            procs.append(_start(["scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"], env, log))
        for k in range(2):
            with open(logs / f"worker{k}.log", "wb") as log:
                procs.append(_start(["worker", address, "--host", "127.0.0.1", "--nworkers", "1", "--nthreads", "1",
                                     "--no-dashboard", "--name", f"w{k}"], env, log))
        with distributed.Client(address, timeout=START_TIMEOUT_S) as client:
            client.wait_for_workers(2, timeout=START_TIMEOUT_S)
        yield address
    finally:
        for proc in reversed(procs):
            _stop(proc)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, corpus):
    """Several files: the sample cut in three (flows cross the cuts), corpus chat captures,
    one of them without its first third (its chat connection is already open: a
    resynchronised walk), and a pcapng."""
    where = tmp_path_factory.mktemp("cut")
    cut = split_pcap(SAMPLE, [300, 700], where)
    pcap = corpus / "pcap"
    header, records = pcap_records(pcap / "whatsapp_login_call.pcap")
    late = write_records(where / "login_call_late.pcap", header, records[len(records) // 3:])
    chat = [pcap / n for n in ("whatsapp.pcap", "wa_voice.pcap", "whatsapp_login_chat.pcap")]
    return [str(p) for p in [*cut, *chat, late, pcap / "quic-mvfst-27.pcapng"]]


def test_the_inputs_hold_walks_from_the_start_and_resynchronised(inputs):
    local = flowscope.analyze(inputs)
    assert {"prologue", "resync"} <= set(local.flows.frame_sync.dropna())


def test_files_as_tasks_give_exactly_the_in_process_analysis(scheduler, inputs):
    on_cluster = flowscope.analyze(inputs, engine="dask", scheduler=scheduler, workers=2, chunk_bytes=0)
    assert_same(flowscope.analyze(inputs), on_cluster, chunked=False)


def test_files_in_chunks_give_the_same_flows(scheduler, inputs):
    on_cluster = flowscope.analyze(inputs, engine="dask", scheduler=scheduler, chunk_bytes=20_000)
    assert_same(flowscope.analyze(inputs), on_cluster)


def test_cli_on_the_cluster_writes_what_the_local_run_writes(scheduler, inputs, tmp_path):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "flowscope.cli", "analyze", *inputs, *args],
                              capture_output=True, text=True, timeout=600)
    local = cli("--out", tmp_path / "local")
    dask = cli("--out", tmp_path / "dask", "--engine", "dask", "--scheduler", scheduler, "--chunk-mb", "0")
    assert local.returncode == dask.returncode == 0, dask.stderr
    assert local.stdout.replace("local", "dask") == dask.stdout
    for name in ("flows.parquet", "frames.parquet", "events.parquet"):
        assert pq.read_table(tmp_path / "local" / name).equals(pq.read_table(tmp_path / "dask" / name)), name
    summaries = [json.loads((tmp_path / d / "summary.json").read_text()) for d in ("local", "dask")]
    assert summaries[0] == summaries[1]


def test_unreadable_files_among_many_are_listed_and_the_rest_analysed(scheduler, inputs, tmp_path):
    garbage = tmp_path / "garbage.pcap"
    garbage.write_bytes(b"not a capture at all")
    truncated = tmp_path / "truncated.pcap"
    truncated.write_bytes(SAMPLE.read_bytes()[:-50])
    paths = [inputs[0], str(tmp_path / "missing.pcap"), str(tmp_path), str(garbage), str(truncated), inputs[3]]
    local = flowscope.analyze(paths)
    on_cluster = flowscope.analyze(paths, engine="dask", scheduler=scheduler, chunk_bytes=100_000)
    assert len(on_cluster.errors) == 4 and on_cluster.errors == local.errors
    assert [c["error"] is None for c in on_cluster.summary["captures"]] == [True, False, False, False, False, True]
    assert_same(local, on_cluster)


class KillOnce(distributed.WorkerPlugin):
    """Kills the worker process that starts the run's first part task, once (a marker
    file remembers it across the worker the nanny starts in its place)."""
    name = "flowscope-test-kill-once"

    def __init__(self, marker: str):
        self.marker = marker

    def transition(self, key, start, finish, **kwargs):
        if finish == "executing" and str(key).startswith("flowscope-part-") and not os.path.exists(self.marker):
            with open(self.marker, "w") as f:
                f.write(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)


def test_a_worker_killed_mid_task_loses_and_doubles_nothing(scheduler, inputs, tmp_path):
    import cloudpickle
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/
    marker = tmp_path / "killed"
    with distributed.Client(scheduler, timeout=START_TIMEOUT_S) as client:
        client.register_plugin(KillOnce(str(marker)))
        try:
            on_cluster = flowscope.analyze(inputs, engine="dask", scheduler=scheduler, chunk_bytes=30_000)
        finally:
            client.unregister_worker_plugin(KillOnce.name)
        client.wait_for_workers(2, timeout=START_TIMEOUT_S)  # the nanny's replacement
    killed = int(marker.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(killed, 0)
    assert_same(flowscope.analyze(inputs), on_cluster)
