"""`flowscope live`: options in, live view while capturing, the analyze outputs at the end.

Exit codes: 0 captured and written; 1 the engine failed mid-capture or a capture file was
damaged (what was captured is still analysed and written); 2 capture could not start
(usage, interface, filter, permissions) and nothing was written, or (rotation) a period
could not be written, which stops the capture (the periods written before stay); 130 a
second Ctrl-C while flushing.
"""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from flowscope.terminal import printable
from flowscope.live.options import DEFAULT_LOCAL_NETS, LiveOptions, parse_duration_s


def options_from_args(args) -> LiveOptions:
    return LiveOptions(
        interface=args.interface, out=Path(args.out), bpf=args.bpf,
        duration_s=parse_duration_s(args.duration) if args.duration is not None else None,
        max_packets=args.packets, local_nets=tuple(args.local_net or DEFAULT_LOCAL_NETS),
        keep_pcap=args.keep_pcap, force=args.force,
        rotate_s=parse_duration_s(args.rotate, "--rotate") if args.rotate is not None else None,
        rotate_packets=args.rotate_packets)


def main(args, settings, write_options: dict | None = None) -> int:
    """Run `flowscope live` with parsed arguments, the Settings the CLI built from them and
    the options of AnalysisResult.write (report, pseudonyms)."""
    from flowscope.live import session
    from flowscope.live.view import LiveView, rotation_lines, summary_lines
    options = options_from_args(args)
    show = not args.quiet and sys.stderr.isatty()
    view = LiveView(options.interface, options.out, options.local_nets) if show else None

    def ready(engine):
        if not args.quiet:
            print(printable(f"flowscope: capturing on {options.interface} with {engine.label}"
                            f"{' (filter: ' + options.bpf + ')' if options.bpf else ''}; Ctrl-C stops"),
                  file=sys.stderr, flush=True)

    with view or contextlib.nullcontext():
        run = session.run(options, settings, view=view, on_ready=ready, write_options=write_options)
    result = run.result
    if run.rotation is None:   # rotated periods are written as they end
        result.write(options.out, force=True, **(write_options or {}))  # prepare_out checked the directory
    if run.error:
        print(printable(f"flowscope: error: {run.error}"), file=sys.stderr)
    else:
        for err in result.errors:
            print(printable(f"flowscope: error: {err}"), file=sys.stderr)
    if not args.quiet:
        lines = summary_lines(run, options.out) if run.rotation is None else rotation_lines(run, options.out)
        print("\n".join(map(printable, lines)), flush=True)
    elif run.drops.total:   # quiet prints errors only, and a lossy capture is one
        from flowscope.live.view import first_line
        print(printable(f"flowscope: warning: {first_line(run, options.interface)}"), file=sys.stderr)
    return 1 if run.error or result.errors else 0
