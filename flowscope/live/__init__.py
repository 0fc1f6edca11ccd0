"""Live capture: a mirror port or a test access point, analysed while it is captured.

    >>> from flowscope.live import LiveOptions, capture
    >>> run = capture(LiveOptions(interface="eth1", out="out/live", duration_s=600))
    >>> run.result.write("out/live")          # the same outputs as `analyze`
    >>> run.result.notes["live"]              # interface, engine, drops, local_nets, stop reason

Engines: dumpcap where installed (dumpcap.py), else scapy (sniffer.py), both behind
engines.py's interface; session.py picks one and runs the loop, view.py draws the terminal
view, command.py is `flowscope live`.
"""
from __future__ import annotations

from flowscope.live.options import DEFAULT_LOCAL_NETS, LiveError, LiveOptions, parse_local_nets

__all__ = ["DEFAULT_LOCAL_NETS", "LiveError", "LiveOptions", "capture", "parse_local_nets"]


def capture(options: LiveOptions, settings=None, view=None, on_ready=None):
    """Capture until stopped (signal, --duration, --packets, engine failure) and analyse;
    returns session.LiveRun. Raises LiveError when capture cannot start."""
    from flowscope.live.session import run
    return run(options, settings, view=view, on_ready=on_ready)
