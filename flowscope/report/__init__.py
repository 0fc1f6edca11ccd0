"""Report stage: the analysis tables now (flows.parquet, summary.json); charts, HTML/PDF and the manifest later."""
