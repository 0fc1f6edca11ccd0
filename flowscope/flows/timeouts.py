"""The idle timeouts as the compiled flow table and the merge read them.

Settings holds plain seconds and stays a leaf; the slot of each timeout in the array is
the flow layout's business (TO_*), so the array is built here, next to that layout.
"""
from __future__ import annotations

import numpy as np

from flowscope.flows.layout import TO_OTHER, TO_TCP, TO_TCP_CLOSED, TO_UDP


def timeouts_ns(settings) -> np.ndarray:
    """int64[4] of nanoseconds, indexed by TO_TCP, TO_TCP_CLOSED, TO_UDP, TO_OTHER."""
    t = np.zeros(4, dtype=np.int64)
    t[TO_TCP] = int(settings.tcp_idle_s * 1e9)
    t[TO_TCP_CLOSED] = int(settings.tcp_closed_s * 1e9)
    t[TO_UDP] = int(settings.udp_idle_s * 1e9)
    t[TO_OTHER] = int(settings.other_idle_s * 1e9)
    return t
