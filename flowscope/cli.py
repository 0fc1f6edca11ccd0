"""Thin command-line front end over the library: parse, call, print.

Exit codes: 0 all inputs analysed; 1 some input could not be read (the rest was analysed
and written); 2 usage errors.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

PROGRESS_MIN_BYTES = 64 << 20  # show a progress bar for inputs larger than this


def build_parser() -> argparse.ArgumentParser:
    from flowscope import __version__
    p = argparse.ArgumentParser(prog="flowscope", description="Measure what metadata WhatsApp/Meta "
                                "traffic reveals, from packet captures.")
    p.add_argument("--version", action="version", version=f"flowscope {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("analyze", help="analyse capture files into DIR/flows.parquet, frames.parquet, "
                       "events.parquet and summary.json")
    a.add_argument("captures", nargs="+", metavar="CAPTURE", help="pcap or pcapng files, optionally gzip/bzip2/xz")
    a.add_argument("--out", required=True, metavar="DIR", help="output directory")
    a.add_argument("--force", action="store_true", help="overwrite a directory holding another analysis")
    a.add_argument("--tcp-idle", type=float, metavar="S", help="TCP idle timeout, seconds (default 3600)")
    a.add_argument("--udp-idle", type=float, metavar="S", help="UDP idle timeout, seconds (default 300)")
    a.add_argument("--dedup-window-ms", type=float, metavar="MS",
                   help="treat identical packets within MS ms as mirror-port duplicates (default 1; 0 off)")
    a.add_argument("--catalog", action="append", default=[], metavar="FILE",
                   help="catalog file extending or overriding the built-in service catalog (repeatable)")
    a.add_argument("--no-classify", action="store_true", help="flow table only: no payload dissection or labels")
    a.add_argument("--geoip", action="append", default=[], metavar="FILE",
                   help="MaxMind/DB-IP .mmdb (City, Country or ASN) consulted besides the embedded databases "
                        "(repeatable; also $FLOWSCOPE_GEOIP, ':'-separated)")
    a.add_argument("--vantage", metavar="PLACE",
                   help="where the capture was taken: 'LAT,LON', an IATA code or a city; checks every "
                        "location against the RTT bound")
    a.add_argument("--no-geo", action="store_true", help="no geolocation: geo columns null")
    a.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    a.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    c = sub.add_parser("catalog", help="print the service catalog in force, one entry a line with its source")
    c.add_argument("--catalog", action="append", default=[], metavar="FILE", help="extra catalog file (repeatable)")
    return p


def _settings(args):
    from flowscope.settings import Settings
    overrides = {"tcp_idle_s": args.tcp_idle, "udp_idle_s": args.udp_idle,
                 "dedup_window_ms": args.dedup_window_ms}
    return Settings(classify=not args.no_classify, catalogs=tuple(args.catalog), geo=not args.no_geo,
                    geoip=tuple(args.geoip), vantage=args.vantage,
                    **{k: v for k, v in overrides.items() if v is not None})


def _run_with_progress(paths, settings, show: bool, hashes):
    from flowscope.pipeline import run
    if not show:
        return run(paths, settings, hashes=hashes)
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn
    sizes = [os.path.getsize(p) if os.path.isfile(p) else 0 for p in paths]
    done = [0] * len(paths)
    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), TimeRemainingColumn(), transient=True) as bar:
        task = bar.add_task("reading captures", total=sum(sizes))

        def on_progress(k, pos):
            done[k] = pos
            bar.update(task, completed=sum(done))
        return run(paths, settings, on_progress=on_progress, hashes=hashes)


def cmd_analyze(args) -> int:
    from flowscope import hashing
    hashes = hashing.start(args.captures)  # overlaps with the imports below
    from flowscope import AnalysisResult
    settings = _settings(args)
    out = Path(args.out)
    total = sum(os.path.getsize(p) for p in args.captures if os.path.isfile(p))
    show = not args.no_progress and not args.quiet and sys.stderr.isatty() and total > PROGRESS_MIN_BYTES
    result = AnalysisResult.from_finished(_run_with_progress(args.captures, settings, show, hashes), settings)
    result.write(out, force=args.force)
    for err in result.errors:
        print(f"flowscope: error: {err}", file=sys.stderr)
    if not args.quiet:
        _print_summary(result, out)
    return 1 if result.errors else 0


def cmd_catalog(args) -> int:
    from flowscope.classify.catalog import load_catalog
    catalog = load_catalog(args.catalog)
    print(catalog.to_text())
    return 0


def _print_summary(result, out: Path) -> None:
    s = result.summary
    read = sum(c["packets_read"] for c in s["captures"])
    undecodable = sum(sum(c["packets_undecodable"].values()) for c in s["captures"])
    dups = sum(c["duplicates"] for c in s["captures"])
    ok = sum(1 for c in s["captures"] if not c["error"])
    print(f"{ok}/{len(s['captures'])} captures read, {read:,} packets "
          f"({undecodable:,} undecodable, {dups:,} duplicates), {s['flows']:,} flows, "
          f"{s['bytes']:,} IP bytes")
    meta = s.get("meta")
    if meta:
        print(f"{meta['flows']:,} flows ({meta['bytes']:,} IP bytes) reach WhatsApp/Meta: "
              + ", ".join(f"{k} {v:,}" for k, v in meta["flows_by_service"].items()))
    geo = s.get("geo")
    if meta and geo:
        regions = ", ".join(f"{k} {v:,}" for k, v in geo["meta_flows_by_region"].items())
        print(f"WhatsApp/Meta flows by region of the remote endpoint: {regions}"
              + (f"; {geo['impossible']:,} flows with a database location ruled out by RTT" if geo["impossible"] else ""))
    for w in (geo or {}).get("warnings", []):
        print(f"note: {w}")
    md = s.get("metadata")
    if md:
        kinds = ", ".join(f"{k} {v:,}" for k, v in md["events_by_kind"].items())
        print(f"{md['frames']['flows_walked']:,} chat flows walked ({md['frames']['frames_up']:,} frames up, "
              f"{md['frames']['frames_down']:,} down); events: {kinds}")
    print(f"wrote {out / 'flows.parquet'}, {out / 'frames.parquet'}, {out / 'events.parquet'} and "
          f"{out / 'summary.json'}")


def main(argv=None) -> int:
    from flowscope.errors import FlowscopeError
    args = build_parser().parse_args(argv)
    try:
        if args.command == "analyze":
            return cmd_analyze(args)
        if args.command == "catalog":
            return cmd_catalog(args)
    except FlowscopeError as exc:
        print(f"flowscope: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("flowscope: interrupted", file=sys.stderr)
        return 130
    return 2


def entry() -> None:
    """Console script: run, flush, and leave without tearing down numba/LLVM and the
    interpreter's objects one by one (that teardown cost ~0.3 s a run; outputs are closed)."""
    try:
        rc = main()
        sys.stdout.flush()
    except BrokenPipeError:  # `flowscope catalog | head`: the reader left, nothing is wrong
        rc = 0
    sys.stderr.flush()
    os._exit(rc)


if __name__ == "__main__":
    sys.exit(main())
