"""Engines other than the in-process loop: the same parts, read elsewhere, merged here.

`tasks` is what a worker runs (one part: a file or a byte range of one, see `chunks`);
`combine` folds the parts' payload collectors and per-chunk statistics together; `dask`
drives a dask.distributed cluster and hands the parts to pipeline.Analysis, so the merge
and every later stage run exactly as in a single process.
"""
