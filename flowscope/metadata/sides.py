"""Which end of a flow is the local device: the end that is not `remote_ip`.

The geo stage picks the remote end (the responder, unless it is a private or special
address and the originator is not: an inbound flow). Without geolocation the same rule is
applied here, so "up" (from the local device) means the same in every table.
"""
from __future__ import annotations

from flowscope.geo.special import address_class


def local_is_orig(orig_ip: list, resp_ip: list, remote_ip: list | None = None) -> list[bool]:
    if remote_ip is None or all(r is None for r in remote_ip):
        return [not (address_class(r) and not address_class(o)) for o, r in zip(orig_ip, resp_ip)]
    return [rem != o or rem == r for o, r, rem in zip(orig_ip, resp_ip, remote_ip)]
