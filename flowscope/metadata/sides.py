"""Which end of a flow is the local device: the end that is not `remote_ip`.

The geo stage picks the remote end (the responder, unless it is a private or special
address and the originator is not: an inbound flow). Without geolocation the same rule is
applied here, so "up" (from the local device) means the same in every table.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowscope.geo.special import address_class


def local_is_orig(orig_ip: list, resp_ip: list, remote_ip: list | None = None) -> list[bool]:
    if remote_ip is None or all(r is None for r in remote_ip):
        return [not (address_class(r) and not address_class(o)) for o, r in zip(orig_ip, resp_ip)]
    return [rem != o or rem == r for o, r, rem in zip(orig_ip, resp_ip, remote_ip)]


def local_is_orig_columns(table: pa.Table) -> np.ndarray:
    """The same over Arrow columns (orig_ip, resp_ip, remote_ip if present): a bool array."""
    remote = table["remote_ip"] if "remote_ip" in table.column_names else None
    if remote is None or remote.null_count == len(remote):
        return np.array(local_is_orig(table["orig_ip"].to_pylist(), table["resp_ip"].to_pylist()), dtype=bool)
    local = pc.or_kleene(pc.not_equal(remote, table["orig_ip"]), pc.equal(remote, table["resp_ip"]))
    return pc.fill_null(local, True).to_numpy(zero_copy_only=False)
