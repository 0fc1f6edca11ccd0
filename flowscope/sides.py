"""Which end of a flow is remote: one rule, read by every stage.

The remote end is the responder, unless the responder is a private or special address and
the originator is not (an inbound flow: a webhook, a peer calling in). The classify stage
also names what the remote end is (`remote_role`: server, relay or peer); geo, metadata
and the pseudonymiser read that column instead of deciding again.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowscope.geo.special import address_class

ROLES = ("server", "relay", "peer")


def remote_is_orig(orig_ip: list, resp_ip: list, platform=None) -> list[bool]:
    """Per flow: the originator is the remote end (an inbound flow). `platform`: the given
    platform hosts (classify/platform.PlatformHosts), local whatever their address (a
    webhook reaches a company's public server)."""
    def local(ip):
        return bool(address_class(ip)) or (platform is not None and platform.contains(ip))
    is_local = {ip: local(ip) for ip in {*orig_ip, *resp_ip}}  # once per distinct address
    return [is_local[r] and not is_local[o] for o, r in zip(orig_ip, resp_ip)]


def remote_ips(orig_ip: list, resp_ip: list, platform=None) -> list[str]:
    inbound = remote_is_orig(orig_ip, resp_ip, platform)
    return [o if b else r for o, r, b in zip(orig_ip, resp_ip, inbound)]


def local_is_orig_columns(table: pa.Table) -> np.ndarray:
    """Per flow of an Arrow table: the originator is the local end (bool array). Reads
    remote_ip where the geo stage wrote it, else applies the rule."""
    remote = table["remote_ip"] if "remote_ip" in table.column_names else None
    if remote is not None and remote.null_count == 0:
        local = pc.or_(pc.not_equal(remote, table["orig_ip"]), pc.equal(remote, table["resp_ip"]))
        return local.to_numpy(zero_copy_only=False)
    by_rule = ~np.array(remote_is_orig(table["orig_ip"].to_pylist(), table["resp_ip"].to_pylist()), dtype=bool)
    if remote is None or remote.null_count == len(remote):
        return by_rule
    local = pc.or_kleene(pc.not_equal(remote, table["orig_ip"]), pc.equal(remote, table["resp_ip"]))
    return pc.fill_null(local, pa.array(by_rule)).to_numpy(zero_copy_only=False)


def is_peer(flows: pa.Table) -> pa.Array:
    """Flows whose remote end is the other party of a direct call (remote_role == peer)."""
    if "remote_role" not in flows.column_names:
        return pa.array(np.zeros(flows.num_rows, dtype=bool))
    return pc.fill_null(pc.equal(flows["remote_role"], "peer"), False)
