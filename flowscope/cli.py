"""Thin command-line front end over the library: parse, call, print.

Exit codes: 0 all inputs analysed; 1 some input could not be read (the rest was analysed
and written); 2 usage errors.
"""
from __future__ import annotations

import argparse
import os
import sys
from contextlib import contextmanager
from pathlib import Path

from flowscope.terminal import printable

PROGRESS_MIN_BYTES = 64 << 20  # show a progress bar for inputs larger than this


def say(line: str, file=None) -> None:
    """Print one line whose parts may come from a capture or a file: controls escaped."""
    print(printable(line), file=file or sys.stdout)


def build_parser() -> argparse.ArgumentParser:
    from flowscope._version import __version__
    p = argparse.ArgumentParser(prog="flowscope", description="Measure what metadata WhatsApp/Meta "
                                "traffic reveals, from packet captures.")
    p.add_argument("--version", action="version", version=f"flowscope {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("analyze", help="analyse capture files into DIR: tables, charts, report.html/pdf, manifest.json")
    a.add_argument("captures", nargs="+", metavar="CAPTURE", help="pcap or pcapng files, optionally gzip/bzip2/xz")
    a.add_argument("--out", required=True, metavar="DIR", help="output directory")
    a.add_argument("--engine", choices=("local", "dask"), default="local",
                   help="local: this process (default); dask: files and chunks of large pcaps as "
                        "dask.distributed tasks, same result")
    a.add_argument("--scheduler", metavar="ADDRESS",
                   help="with --engine dask: an existing scheduler (tcp://host:8786); default: start "
                        "a local cluster")
    a.add_argument("--workers", type=int, metavar="N",
                   help="with --engine dask: local worker processes (default one a core), or with "
                        "--scheduler how many to wait for")
    a.add_argument("--chunk-mb", type=float, metavar="MB",
                   help="with --engine dask: split uncompressed classic pcaps into ~MB MiB chunks "
                        "(default 256; 0: whole files)")
    a.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    a.add_argument("--scenario", metavar="FILE",
                   help="the auditor's action log (CSV time,action,peer,note): align each action with the "
                        "events it caused into DIR/actions.parquet")
    a.add_argument("--scenario-tolerance", type=float, metavar="S",
                   help="with --scenario: how far (s) an event may lie from its action (default 5)")
    _add_analysis_options(a)
    r = sub.add_parser("report", help="re-render charts, report.html and report.pdf from the tables in DIR")
    r.add_argument("dir", metavar="DIR", help="an output directory of flowscope analyze")
    r.add_argument("--force", action="store_true", help="render even if the tables changed since the analysis")
    al = sub.add_parser("align", help="add a scenario (the auditor's action log) to an analysis in DIR: "
                        "actions.parquet, summary.json, report, manifest.json")
    al.add_argument("dir", metavar="DIR", help="an output directory of flowscope analyze")
    al.add_argument("scenario", metavar="FILE", help="CSV time,action,peer,note (docs/metadata.md §7)")
    al.add_argument("--scenario-tolerance", type=float, metavar="S",
                    help="how far (s) an event may lie from its action (default 5)")
    al.add_argument("--force", action="store_true", help="align even if the tables changed since the analysis")
    df = sub.add_parser("diff", help="two analyses side by side: services, destinations, bytes, events, "
                        "new and vanished endpoints")
    df.add_argument("dir_a", metavar="DIR_A", help="an output directory of flowscope analyze (before)")
    df.add_argument("dir_b", metavar="DIR_B", help="another one (after)")
    out_form = df.add_mutually_exclusive_group()
    out_form.add_argument("--json", action="store_true", help="print the comparison as JSON")
    df.add_argument("--html", metavar="FILE", help="also write a self-contained HTML page")
    v = sub.add_parser("verify", help="re-check the SHA-256 of every file manifest.json lists")
    v.add_argument("dir", metavar="DIR", help="an output directory of flowscope analyze, or of flowscope live "
                   "--rotate (every period, and the chain of periods)")
    v.add_argument("--outputs-only", action="store_true",
                   help="check the output files only, not the input captures")
    c = sub.add_parser("catalog", help="print the service catalog in force, one entry a line with its source")
    c.add_argument("--catalog", action="append", default=[], metavar="FILE", help="extra catalog file (repeatable)")
    lv = sub.add_parser("live", help="capture on an interface (mirror port, test access point), analyse as it "
                        "goes, and write the analyze outputs when stopped")
    lv.add_argument("-i", "--interface", required=True, metavar="IFACE", help="interface to capture on")
    lv.add_argument("--bpf", metavar="EXPR", help="capture filter (tcpdump syntax), checked before capturing")
    stop = lv.add_mutually_exclusive_group()
    stop.add_argument("--duration", metavar="D", help="stop after D seconds (or 90s, 10m, 2h); default: Ctrl-C")
    stop.add_argument("--packets", type=int, metavar="N", help="stop after N packets")
    lv.add_argument("--local-net", action="append", default=[], metavar="CIDR",
                    help="addresses of the monitored devices (repeatable; default RFC 1918, fc00::/7, "
                         "link-local, 100.64.0.0/10)")
    lv.add_argument("--out", required=True, metavar="DIR", help="output directory")
    lv.add_argument("--keep-pcap", action="store_true", help="keep the capture files in DIR/pcap/")
    rot = lv.add_mutually_exclusive_group()
    rot.add_argument("--rotate", metavar="D",
                     help="one evidence directory per period of D (30s, 10m, 1h; aligned to the clock), "
                          "DIR/2026-12-04T10-00-00Z/, written as each period ends; flows open at a boundary "
                          "are counted once, in the period where they end (docs/live.md)")
    rot.add_argument("--rotate-packets", type=int, metavar="N",
                     help="one evidence directory per N packets (whole ring files), named after the "
                          "period's first packet")
    _add_analysis_options(lv)
    return p


def _add_analysis_options(p: argparse.ArgumentParser) -> None:
    """Options shared by analyze and live: both run the same pipeline."""
    p.add_argument("--force", action="store_true", help="overwrite a directory holding another analysis")
    p.add_argument("--tcp-idle", type=float, metavar="S", help="TCP idle timeout, seconds (default 3600)")
    p.add_argument("--udp-idle", type=float, metavar="S", help="UDP idle timeout, seconds (default 300)")
    p.add_argument("--dedup-window-ms", type=float, metavar="MS",
                   help="treat identical packets within MS ms as mirror-port duplicates (default 1; 0 off)")
    p.add_argument("--catalog", action="append", default=[], metavar="FILE",
                   help="catalog file extending or overriding the built-in service catalog (repeatable)")
    p.add_argument("--no-classify", action="store_true", help="flow table only: no payload dissection or labels")
    p.add_argument("--geoip", action="append", default=[], metavar="FILE",
                   help="MaxMind/DB-IP .mmdb (City, Country or ASN) consulted besides the embedded databases "
                        "(repeatable; also $FLOWSCOPE_GEOIP, ':'-separated)")
    p.add_argument("--vantage", metavar="PLACE",
                   help="where the capture was taken: 'LAT,LON', an IATA code or a city; checks every "
                        "location against the RTT bound")
    p.add_argument("--platform-host", action="append", default=[], metavar="ADDR|CIDR",
                   help="a WhatsApp Business Platform server (repeatable): its Graph API flows are Cloud API "
                        "calls, inbound flows to it from Meta's networks webhooks (local addresses that "
                        "receive webhooks are found without it)")
    p.add_argument("--no-geo", action="store_true", help="no geolocation: geo columns null")
    p.add_argument("--no-report", action="store_true",
                   help="tables and manifest only: no charts, report.html or report.pdf")
    p.add_argument("--no-pseudonymize", action="store_true",
                   help="write local, MAC and call-peer addresses in clear (default: keyed pseudonyms)")
    p.add_argument("--pseudonym-key", metavar="FILE",
                   help="key file for the pseudonyms, kept outside DIR (default ~/.config/flowscope/"
                        "pseudonym.key, created with mode 0600 if absent)")
    p.add_argument("--max-flows", type=int, metavar="N",
                   help="memory guard: stop reading a file at N concurrent flows (default 1048576)")
    p.add_argument("--max-expansion", type=float, metavar="X",
                   help="stop reading a gzip/bzip2/xz input that expands beyond X times its compressed "
                        "size (default 1000; 0 off)")
    p.add_argument("-q", "--quiet", action="store_true", help="print errors only")


def _settings(args):
    from flowscope import Settings
    overrides = {"tcp_idle_s": args.tcp_idle, "udp_idle_s": args.udp_idle,
                 "dedup_window_ms": args.dedup_window_ms, "max_flows": args.max_flows,
                 "max_expansion": args.max_expansion}
    return Settings(classify=not args.no_classify, catalogs=tuple(args.catalog), geo=not args.no_geo,
                    geoip=tuple(args.geoip), vantage=args.vantage, platform_hosts=tuple(args.platform_host),
                    **{k: v for k, v in overrides.items() if v is not None})


@contextmanager
def _progress_bar(show: bool):
    """An on_progress hook for analyze() drawing a transient bar on stderr, or None."""
    if not show:
        yield None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn
    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), TimeRemainingColumn(), transient=True) as bar:
        task = bar.add_task("reading captures", total=None)

        def on_progress(p):
            bar.update(task, completed=p.bytes_read, total=p.total_bytes)
        yield on_progress


def _engine_options(args) -> dict:
    from flowscope.errors import UsageError
    given = [f for f, v in (("--scheduler", args.scheduler), ("--workers", args.workers),
                            ("--chunk-mb", args.chunk_mb)) if v is not None]
    if args.engine == "local":
        if given:
            raise UsageError(f"{', '.join(given)} need --engine dask")
        return {}
    if args.chunk_mb is not None and args.chunk_mb < 0:
        raise UsageError(f"--chunk-mb must be >= 0 (got {args.chunk_mb})")
    return {"scheduler": args.scheduler, "workers": args.workers,
            "chunk_bytes": None if args.chunk_mb is None else int(args.chunk_mb * (1 << 20))}


def _check_pseudonym_options(args) -> None:
    from flowscope.errors import UsageError
    if args.pseudonym_key and args.no_pseudonymize:
        raise UsageError("--pseudonym-key and --no-pseudonymize exclude each other")


def write_options(args) -> dict:
    """The AnalysisResult.write options both analyze and live take from the command line."""
    return {"report": not args.no_report, "pseudonymize": not args.no_pseudonymize,
            "pseudonym_key": args.pseudonym_key}


def _check_tolerance(args) -> None:
    from flowscope.errors import UsageError
    if args.scenario_tolerance is not None and not args.scenario_tolerance >= 0:
        raise UsageError(f"--scenario-tolerance must be >= 0 (got {args.scenario_tolerance})")


def cmd_analyze(args) -> int:
    from flowscope import analyze
    _check_pseudonym_options(args)
    _check_tolerance(args)
    if args.scenario_tolerance is not None and not args.scenario:
        from flowscope.errors import UsageError
        raise UsageError("--scenario-tolerance needs --scenario")
    if args.scenario:  # a bad row fails before the captures are read
        from flowscope.scenario import read_scenario
        read_scenario(args.scenario)
    engine = _engine_options(args)
    settings = _settings(args)
    out = Path(args.out)
    # The bar is for big inputs read here; on a cluster the workers read and nothing reports.
    total = sum(os.path.getsize(p) for p in args.captures if os.path.isfile(p))
    show = (not engine and not args.no_progress and not args.quiet and sys.stderr.isatty()
            and total > PROGRESS_MIN_BYTES)
    with _progress_bar(show) as on_progress:
        result = analyze(args.captures, settings, engine=args.engine, on_progress=on_progress, **engine)
    summary = None if args.quiet else result.summary  # the tables go once written (release)
    result.write(out, force=args.force, scenario=args.scenario, scenario_tolerance_s=args.scenario_tolerance,
                 release=True, **write_options(args))
    for err in result.errors:
        say(f"flowscope: error: {err}", file=sys.stderr)
    if not args.quiet:
        _print_summary(summary, out)
        _print_scenario(out)
        _print_written(out, result.write_notes)
    return 1 if result.errors else 0


def cmd_live(args) -> int:
    from flowscope.live.command import main as live_main
    _check_pseudonym_options(args)
    return live_main(args, _settings(args), write_options(args))


def cmd_report(args) -> int:
    from flowscope import report
    _files, notes = report.render(args.dir, force=args.force)
    _print_written(Path(args.dir), notes)
    return 0


def cmd_align(args) -> int:
    from flowscope import report
    _check_tolerance(args)
    _files, notes = report.align(args.dir, args.scenario, args.scenario_tolerance, force=args.force)
    _print_scenario(Path(args.dir))
    _print_written(Path(args.dir), notes)
    return 0


def _print_scenario(out: Path) -> None:
    import json
    sc = json.loads((out / "summary.json").read_text()).get("scenario")
    if not sc:
        return
    say(f"scripted session: {sc['matched']} of {sc['actions']} actions matched within {sc['tolerance_s']:g} s")
    for kind, row in sc["by_action"].items():
        lag = "" if row["median_lag_s"] is None else f", median lag {row['median_lag_s']:+.2f} s"
        say(f"  {kind}: {row['matched']}/{row['actions']}{lag}")
    for kind, row in sc["by_event_kind"].items():
        p = "-" if row["precision"] is None else f"{row['precision']:.2f}"
        r = "-" if row["recall"] is None else f"{row['recall']:.2f}"
        say(f"  {kind} events: precision {p}, recall {r}")
    if sc["unexplained_events"]:
        say("  events near no action: " + ", ".join(f"{k} {v}" for k, v in sc["unexplained_events"].items()))


def cmd_diff(args) -> int:
    import json
    from flowscope.report.diff import compare
    d = compare(args.dir_a, args.dir_b)
    if args.json:
        print(json.dumps(d.to_dict(), indent=2))   # json.dumps escapes control characters
    else:
        for line in d.text().splitlines():
            say(line)
    if args.html:
        Path(args.html).write_text(d.html(), encoding="utf-8")
        if not args.json:
            say(f"wrote {args.html}")
    return 0


def cmd_verify(args) -> int:
    from flowscope import report
    from flowscope.live.periods import is_rotated_run
    if is_rotated_run(args.dir):
        return _verify_periods(args)
    problems = report.verify(args.dir, captures=not args.outputs_only)
    for line in problems:  # names come from the directory and its manifest: hostile strings
        say(line)
    if not problems:
        say(f"{args.dir}: every file matches manifest.json")
    return 1 if problems else 0


def _verify_periods(args) -> int:
    from flowscope.live.periods import period_dirs, verify_run
    problems, notes = verify_run(args.dir, captures=not args.outputs_only)
    for line in notes:
        say(f"note: {line}")
    for line in problems:
        say(line)
    if not problems:
        say(f"{args.dir}: every file of its {len(period_dirs(args.dir))} periods matches their manifest.json, "
            "and each period names the one before it")
    return 1 if problems else 0


def cmd_catalog(args) -> int:
    from flowscope.classify.catalog import load_catalog
    catalog = load_catalog(args.catalog)
    for line in catalog.to_text().splitlines():
        print(printable(line, keep="\t"))
    return 0


def _print_summary(s: dict, out: Path) -> None:
    read = sum(c["packets_read"] for c in s["captures"])
    undecodable = sum(sum(c["packets_undecodable"].values()) for c in s["captures"])
    dups = sum(c["duplicates"] for c in s["captures"])
    ok = sum(1 for c in s["captures"] if not c["error"])
    say(f"{ok}/{len(s['captures'])} captures read, {read:,} packets "
          f"({undecodable:,} undecodable, {dups:,} duplicates), {s['flows']:,} flows, "
          f"{s['bytes']:,} IP bytes")
    meta = s.get("meta")
    if meta:
        say(f"{meta['flows']:,} flows ({meta['bytes']:,} IP bytes) reach WhatsApp/Meta: "
              + ", ".join(f"{k} {v:,}" for k, v in meta["flows_by_service"].items()))
    geo = s.get("geo")
    if meta and geo:
        regions = ", ".join(f"{k} {v:,}" for k, v in geo["meta_flows_by_region"].items())
        say(f"WhatsApp/Meta flows by region of the remote endpoint: {regions}"
              + (f"; {geo['impossible']:,} flows with a database location ruled out by RTT" if geo["impossible"] else ""))
    for w in (geo or {}).get("warnings", []):
        say(f"note: {w}")
    md = s.get("metadata")
    if md:
        kinds = ", ".join(f"{k} {v:,}" for k, v in md["events_by_kind"].items())
        say(f"{md['frames']['flows_walked']:,} flows walked ({md['frames']['frames_up']:,} frames up, "
              f"{md['frames']['frames_down']:,} down); events: {kinds}")
        for w in md.get("warnings", []):
            say(f"note: {w}")


def _print_written(out: Path, notes: list[str]) -> None:
    from flowscope.report.names import EVIDENCE
    for note in notes:
        say(f"note: {note}")
    names = [n + ("/" if n == "charts" else "") for n in EVIDENCE if (out / n).exists()]
    say(f"wrote {out}/: {', '.join(names)}")


def main(argv=None) -> int:
    from flowscope.errors import FlowscopeError
    args = build_parser().parse_args(argv)
    try:
        if args.command == "analyze":
            return cmd_analyze(args)
        if args.command == "catalog":
            return cmd_catalog(args)
        if args.command == "live":
            return cmd_live(args)
        if args.command == "report":
            return cmd_report(args)
        if args.command == "verify":
            return cmd_verify(args)
        if args.command == "align":
            return cmd_align(args)
        if args.command == "diff":
            return cmd_diff(args)
    except FlowscopeError as exc:
        say(f"flowscope: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("flowscope: interrupted", file=sys.stderr)
        return 130
    return 2


def entry() -> None:
    """Console script: run, flush, and leave without tearing down numba/LLVM and the
    interpreter's objects one by one (that teardown cost ~0.3 s a run; outputs are closed).

    Arrow allocates from the C library's heap, not from the wheels' mimalloc: mimalloc keeps
    freed pages for reuse, which stacked ~70 MiB (100k flows) under each later stage's
    peak; glibc's are returned by heap.release() between stages (benchmarks/README.md,
    "Many flows"). Set before pyarrow is imported; an explicit environment setting wins.
    Blocks of 1 MiB and more are mapped on their own (heap.large_blocks_mapped)."""
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    from flowscope import heap
    heap.large_blocks_mapped()
    try:
        rc = main()
        sys.stdout.flush()
    except BrokenPipeError:  # `flowscope catalog | head`: the reader left, nothing is wrong
        rc = 0
    sys.stderr.flush()
    os._exit(rc)


if __name__ == "__main__":
    sys.exit(main())
