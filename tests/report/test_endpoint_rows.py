"""The report's endpoint table, built column-wise, equals the per-row builder it replaced
(tests/report/report_reference.py) on crafted tables: ties, missing values, hostile names,
more endpoints than are shown. The sample capture and the corpus: test_report_equivalence.py."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from report_reference import endpoint_rows as reference_rows
from reportkit import make_flows

from flowscope.report.html import TOP_ENDPOINTS, endpoint_rows

HOSTILE = ['<script>alert(1)</script>', 'a"b\'c&d', "x\u202ey", "", "$\\frac{1}{2}$", "é.example"]


def _random_flows(seed: int, n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ips = [f"157.240.{i // 250}.{i % 250}" for i in range(40)]
    rows = []
    for _ in range(n):
        remote = ips[rng.integers(len(ips))]
        rows.append({
            "is_meta": [True, False, None][rng.integers(3)],
            "resp_ip": remote, "remote_ip": None if rng.random() < 0.2 else remote,
            "hostname": [None, "", *HOSTILE, f"h{rng.integers(9)}.whatsapp.net"][rng.integers(len(HOSTILE) + 3)],
            "service": [None, "whatsapp.chat", "whatsapp.media", "meta.other"][rng.integers(4)],
            # few distinct sizes: many endpoints tie on bytes
            "bytes_orig": int(rng.choice([0, 100, 1000])), "bytes_resp": int(rng.choice([0, 100])),
            "remote_country": [None, "DE", "IE", "US"][rng.integers(4)],
            "region": [None, "eu", "adequate", "third"][rng.integers(4)],
            "operator": [None, "Meta Platforms, Inc.", HOSTILE[0]][rng.integers(3)],
            "operator_country": [None, "US", "IE"][rng.integers(3)],
            "max_distance_km": [None, 123.4, 9876.5][rng.integers(3)],
            "geo_consistent": [None, True, False][rng.integers(3)],
        })
    return make_flows(*rows)


@pytest.mark.parametrize("seed", range(8))
def test_column_wise_equals_per_row_on_random_tables(seed):
    flows = _random_flows(seed)
    rows = endpoint_rows(flows)
    assert rows == reference_rows(flows)
    assert len(rows) == min(TOP_ENDPOINTS, flows.loc[flows["is_meta"].fillna(False), "resp_ip"].nunique())


def test_ties_are_ordered_by_endpoint_and_cut_after_the_top():
    flows = make_flows(*({"is_meta": True, "resp_ip": f"157.240.0.{i}", "remote_ip": f"157.240.0.{i}",
                          "bytes_orig": 10, "bytes_resp": 0} for i in range(40, 0, -1)))
    rows = endpoint_rows(flows)
    assert rows == reference_rows(flows)
    assert [r["endpoint"] for r in rows] == sorted(f"157.240.0.{i}" for i in range(1, 41))[:TOP_ENDPOINTS]


def test_more_than_five_names_and_first_flow_attributes():
    hosts = [f"h{i}.whatsapp.net" for i in (7, 3, 9, 1, 5, 2, 8)]
    flows = make_flows(*({"is_meta": True, "resp_ip": "157.240.0.1", "remote_ip": "157.240.0.1", "hostname": h,
                          "service": "whatsapp.media", "remote_country": "DE" if i == 0 else "US",
                          "max_distance_km": 50.0 + i, "geo_consistent": True if i == 0 else None}
                         for i, h in enumerate(hosts)))
    rows = endpoint_rows(flows)
    assert rows == reference_rows(flows)
    assert rows[0]["names"].endswith(" and 2 more") and rows[0]["country"] == "DE"
    assert rows[0]["bound_km"] == "≤ 50" and rows[0]["check"] == "consistent"


def test_no_remote_ip_column_values_falls_back_to_the_responder():
    flows = make_flows({"is_meta": True, "resp_ip": "157.240.0.9", "remote_ip": None},
                       {"is_meta": True, "resp_ip": "157.240.0.8", "remote_ip": None, "bytes_orig": 5})
    assert endpoint_rows(flows) == reference_rows(flows)
    assert [r["endpoint"] for r in endpoint_rows(flows)] == ["157.240.0.9", "157.240.0.8"]


@pytest.mark.parametrize("flows", [
    make_flows(),
    make_flows({"is_meta": None}),
    make_flows({"is_meta": False}),
], ids=["empty", "unclassified", "no-meta"])
def test_nothing_to_show(flows):
    assert endpoint_rows(flows) == reference_rows(flows) == []


def test_check_shown_when_every_flow_has_a_location_check():
    """Without nulls, geo_consistent loads as numpy booleans: the check column still reads
    consistent / impossible (it was blank before)."""
    flows = make_flows({"is_meta": True, "resp_ip": "157.240.0.1", "remote_ip": "157.240.0.1", "bytes_orig": 9,
                        "geo_consistent": True},
                       {"is_meta": True, "resp_ip": "157.240.0.2", "remote_ip": "157.240.0.2", "bytes_orig": 5,
                        "geo_consistent": False})
    assert flows["geo_consistent"].dtype == bool
    assert [r["check"] for r in endpoint_rows(flows)] == ["consistent", "impossible"]
