"""Columns are defined once (flowscope/schema.py) and documented in docs/schema.md."""
from __future__ import annotations

import pyarrow.parquet as pq

import flowscope
from flowscope import schema
from conftest import ROOT, SAMPLE


def test_docs_schema_is_generated_from_code():
    assert (ROOT / "docs" / "schema.md").read_text() == schema.markdown(), \
        "regenerate with: python -m flowscope.schema > docs/schema.md"


def test_flows_parquet_has_exactly_the_schema(tmp_path):
    result = flowscope.analyze(SAMPLE)
    result.write(tmp_path)
    table = pq.read_table(tmp_path / "flows.parquet")
    assert table.schema.remove_metadata() == schema.arrow_schema()
    assert list(result.flows.columns) == [c.name for c in schema.FLOWS]


def test_required_columns_present():
    required = ("flow_id capture ts_start ts_end duration_s l4 orig_ip orig_port resp_ip resp_port "
                "pkts_orig pkts_resp bytes_orig bytes_resp payload_bytes_orig payload_bytes_resp "
                "rtt_ms end_reason app").split()
    names = [c.name for c in schema.FLOWS]
    assert all(r in names for r in required)


def test_timestamps_are_utc(sample_default):
    flows = sample_default.flows
    assert str(flows.ts_start.dt.tz) == "UTC"
    assert flows.ts_start.min().isoformat() == "2026-03-02T09:00:00+00:00"
