"""Write the analysis tables: flows.parquet, events/frames.parquet (when the metadata stage
made them) and summary.json, pseudonymised on the way out (deterministic: no wall clock)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from flowscope import heap
from flowscope._version import __version__
from flowscope.errors import UsageError
from flowscope.report import transfers
from flowscope.report.names import EVIDENCE, TRANSFERS
from flowscope.sources import reason_counts


def capture_entry(cap) -> dict:
    from flowscope.decode.layout import REASONS, counters, decoded
    stats = cap.stats
    named = counters(stats)
    read = int(stats[:len(REASONS)].sum())
    entry = {
        "path": cap.path, "sha256": cap.sha256, "format": cap.format, "compression": cap.compression,
        "link_types": sorted(int(x) for x in cap.link_types),
        "packets_read": read, "packets_decoded": decoded(stats),
        "packets_undecodable": reason_counts(stats),
        "packets_truncated": named.pop("packets_truncated"), "duplicates": int(cap.duplicates),
        "error": cap.error,
    }
    extra = {"sections": cap.sections, "interfaces": cap.interfaces,
             "interface_stats": cap.interface_stats, "name_records": cap.name_records,
             "blocks_skipped": cap.blocks_skipped}
    entry.update({k: v for k, v in extra.items() if v})
    entry.update({key: n for key, n in named.items() if n})
    if cap.apps:
        entry["apps"] = {str(k): v for k, v in sorted(cap.apps.items())}
    return entry


def summary_dict(result) -> dict:
    t = result.table

    def total(*names):
        return int(sum(pc.sum(t[n]).as_py() or 0 for n in names))
    summary = {
        "flowscope_version": __version__,
        "settings": result.settings.to_dict(),
        "captures": [capture_entry(c) for c in result.captures],
        **result.notes,
        "flows": t.num_rows,
        "packets": total("pkts_orig", "pkts_resp"),
        "bytes": total("bytes_orig", "bytes_resp"),
    }
    if t.num_rows and t["is_meta"].null_count < t.num_rows:
        meta = t.select(["service", "bytes_orig", "bytes_resp"]).filter(pc.fill_null(t["is_meta"], False))
        by_service = pc.value_counts(meta["service"]).to_pylist()
        summary["meta"] = {
            "flows": meta.num_rows,
            "bytes": int(sum(pc.sum(meta[n]).as_py() or 0 for n in ("bytes_orig", "bytes_resp"))),
            "flows_by_service": {d["values"]: d["counts"] for d in sorted(by_service, key=lambda d: d["values"])},
        }
    return summary




def check_out_dir(out: Path, sha256s: list, force: bool) -> None:
    """Refuse to overwrite another run's evidence without --force.

    The directory may hold the same inputs' earlier results (a re-run replaces them), or
    nothing of ours; any of our files whose inputs differ, or cannot be told, block."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is not a directory")
    if force or not any((out / name).exists() for name in EVIDENCE):
        return
    if _recorded_inputs(out) != list(sha256s):
        raise UsageError(f"{out}: holds the results of a different analysis; use --force to overwrite")


def _recorded_inputs(out: Path) -> list | None:
    for name, key in (("summary.json", "captures"), ("manifest.json", "inputs")):
        try:
            return [c.get("sha256") for c in json.loads((out / name).read_text()).get(key, [])]
        except (ValueError, OSError, AttributeError):
            continue
    return None


def clear_outputs(out: Path) -> None:
    """Remove our files of an earlier run of the same inputs, so that nothing stale (a
    report the new run does not write) stays beside the new evidence."""
    for name in EVIDENCE:
        path = out / name
        if path.is_dir():
            for png in path.glob("*.png"):
                png.unlink()
        elif path.exists():
            path.unlink()


def write_tables(result, out: Path, pseudonymizer=None) -> list[Path]:
    """flows.parquet, events.parquet and frames.parquet (if any) and summary.json."""
    out.mkdir(parents=True, exist_ok=True)
    heap.release()  # what the analysis freed, before the scrubbed copies are made
    scrub_table = pseudonymizer.table if pseudonymizer else (lambda t: t)
    meta = _parquet_metadata(result)
    written, scrubbed = [], {}
    for name, table in (("flows.parquet", result.table), ("events.parquet", getattr(result, "events_table", None)),
                        ("frames.parquet", getattr(result, "frames_table", None))):
        if table is not None:
            table = scrubbed[name] = scrub_table(table).replace_schema_metadata(meta)
            heap.release()  # the pseudonymiser's Python strings, before the Parquet encoder's buffers
            written.append(_write_parquet(table, out / name))
    summary = summary_dict(result)
    if pseudonymizer:
        summary = pseudonymizer.json(summary)
    summary_path = out / "summary.json"
    _write_json(summary_path, summary)
    # the transfer record, from the tables as written (pseudonymised): no local address in it
    events = scrubbed.get("events.parquet")
    record = transfers.build(scrubbed["flows.parquet"], events, summary)
    return written + [summary_path, _write_json(out / TRANSFERS, record)]


def _write_json(path: Path, doc: dict) -> Path:
    _tmp(path).write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
    os.replace(_tmp(path), path)
    return path


def _parquet_metadata(result) -> dict:
    """Each table names its sources itself, so it stays evidence when copied alone."""
    meta = {"flowscope_version": __version__}
    if result.notes.get("catalog"):
        meta["catalog_version"] = result.notes["catalog"]["version"]
    if result.notes.get("geo"):
        meta["geo_databases"] = json.dumps([{k: d[k] for k in ("name", "kind", "build_date", "licence")}
                                            for d in result.notes["geo"]["databases"]])
    return meta


def _write_parquet(table, path: Path) -> Path:
    pq.write_table(table, _tmp(path))
    os.replace(_tmp(path), path)
    return path


def _tmp(path: Path) -> Path:
    return path.with_name(path.name + ".tmp")
