"""The analysis on a dask.distributed cluster: parts read by workers, merged here.

Each part (a file, or a byte range of a large classic pcap: chunks.py) is one task that
returns its flow records, statistics and payload collector. The client checks that the
chunks of each file meet exactly (re-reading any that guessed its start wrong), folds
the collectors together (combine.py) and hands every part to pipeline.Analysis, whose
`finish` merges the parts exactly and runs classification and geolocation as in a
single process. The input files' SHA-256 are tasks too: the client never reads them.
"""
from __future__ import annotations

import logging
import os
import time
import uuid
from contextlib import contextmanager

from flowscope.engine import chunks, tasks
from flowscope.engine.combine import assemble, exact_results
from flowscope.errors import UsageError
from flowscope.heap import without_cyclic_gc
from flowscope.pipeline import Analysis
from flowscope.settings import Settings

CHUNK_BYTES = 256 << 20   # ~0.3 M packets, ~0.3 s of work: many tasks a worker, little overhead
RETRIES = 2               # a task that raised runs again up to this often (a lost worker: always)
CONNECT_TIMEOUT_S = 30


def run(paths: list[str], settings: Settings, scheduler: str | None = None, workers: int | None = None,
        chunk_bytes: int | None = CHUNK_BYTES, info: dict | None = None):
    """Analyse `paths` on a cluster: a pipeline.Finished (flows, captures, notes, frames,
    events), the same as pipeline.run. `scheduler`: an address to use (else a LocalCluster of
    `workers` processes is started, default one a core); with an address, `workers` is
    how many to wait for. `chunk_bytes`: split larger classic pcaps (None: never).
    `info`, if given, receives what the run cost: parts, re-reads, seconds per phase."""
    info = {} if info is None else info
    if scheduler:  # workers elsewhere do not share our working directory: name files absolutely
        paths = [os.path.abspath(p) for p in paths]
    specs = chunks.plan([str(p) for p in paths], chunk_bytes)
    with without_cyclic_gc():
        analysis = Analysis(settings, parts=len(specs))  # geo databases open meanwhile
        t0 = time.perf_counter()
        with _client(scheduler, workers) as client:
            t1 = time.perf_counter()
            info["workers"] = len(client.scheduler_info()["workers"])
            results, digests = _read(client, specs, settings, info)
            t2 = time.perf_counter()
        info.update(parts=len(specs), connect_s=t1 - t0, read_s=t2 - t1,
                    result_bytes=sum(r.records.nbytes for r in results if r is not None))
        assemble(analysis, specs, results)
        finished = analysis.finish({p: _Done(h) for p, h in digests.items()})
        info["finish_s"] = time.perf_counter() - t2
    return finished


def _read(client, specs, settings, info):
    def submit(spec, k):
        return client.submit(tasks.read, spec, k, settings, len(specs), pure=False, retries=RETRIES,
                             key=f"flowscope-part-{k}-{uuid.uuid4().hex}")

    def fetched(futures):  # in part order; each result leaves the cluster once fetched
        for fut in futures:
            yield fut.result()
            fut.release()
    digests = {p: client.submit(tasks.sha256, p, pure=False, retries=RETRIES,
                                key=f"flowscope-sha256-{uuid.uuid4().hex}")
               for p in dict.fromkeys(s.path for s in specs)}
    futures = [submit(s, k) for k, s in enumerate(specs)]
    results, info["rereads"] = exact_results(specs, fetched(futures), lambda s, k: submit(s, k).result())
    return results, {p: f.result() for p, f in digests.items()}


class _Done:
    """A computed hash, in the shape Analysis.finish expects (hashing.FileHash)."""

    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value


@contextmanager
def _client(scheduler: str | None, workers: int | None):
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise UsageError("--engine dask needs dask.distributed: pip install 'flowscope[dask]'") from None
    if scheduler:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            raise UsageError(f"dask scheduler {scheduler}: cannot connect: {exc}") from None
        with client:
            if workers:
                try:
                    client.wait_for_workers(workers, timeout=CONNECT_TIMEOUT_S)
                except TimeoutError:
                    raise UsageError(f"dask scheduler {scheduler}: fewer than {workers} workers "
                                     f"after {CONNECT_TIMEOUT_S} s") from None
            yield client
        return
    n = workers or len(os.sched_getaffinity(0))
    # One thread a worker: the compiled read loop holds the GIL for most of its work.
    with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        yield client
