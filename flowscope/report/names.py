"""File names in an output directory (kept import-light: the CLI and manifest use them)."""
FLOWS, EVENTS, FRAMES = "flows.parquet", "events.parquet", "frames.parquet"
ACTIONS = "actions.parquet"   # the scripted session, when a scenario was given
SUMMARY, MANIFEST = "summary.json", "manifest.json"
TRANSFERS = "transfers.json"  # the transfer record (report/transfers.py)
HTML, PDF, CHARTS = "report.html", "report.pdf", "charts"
TABLES = (FLOWS, EVENTS, FRAMES, ACTIONS, SUMMARY, TRANSFERS)
# Everything an analysis writes: another run's copies are evidence too.
EVIDENCE = (*TABLES, MANIFEST, HTML, PDF, CHARTS)
