"""Volume per service, region, country, jurisdiction, hour and device; EU/EEA share."""
from __future__ import annotations

import pandas as pd
import pytest

from flowscope.metadata import volume

H = pd.Timestamp("2026-03-02 09:00", tz="UTC")


@pytest.fixture()
def flows():
    rows = [  # flow_id, is_meta, service, orig, resp, remote, bytes o/r, region, country, operator_country, start
        (0, True, "whatsapp.chat", "10.0.0.2", "157.240.0.1", "157.240.0.1", 100, 300, "eu", "DE", "US", H),
        (1, True, "whatsapp.media", "10.0.0.2", "157.240.0.2", "157.240.0.2", 1000, 10, "adequate", "US", "US",
         H + pd.Timedelta(minutes=70)),
        (2, True, "meta.facebook", "10.0.0.3", "31.13.0.1", "31.13.0.1", 50, 50, None, None, None, H),
        (3, False, "other", "10.0.0.2", "8.8.8.8", "8.8.8.8", 5000, 5000, "adequate", "US", "US", H),
        (4, True, "whatsapp.call", "198.51.100.9", "10.0.0.2", "198.51.100.9", 7, 3, "third", "BR", "NO", H),
    ]
    cols = ["flow_id", "is_meta", "service", "orig_ip", "resp_ip", "remote_ip", "bytes_orig", "bytes_resp",
            "region", "remote_country", "operator_country", "ts_start"]
    df = pd.DataFrame(rows, columns=cols)
    df["ts_end"] = df["ts_start"] + pd.Timedelta(seconds=5)
    df["pkts_orig"], df["pkts_resp"] = 2, 1
    df["operator"] = "x"
    return df


@pytest.fixture()
def events():
    return pd.DataFrame({"flow_id": [0, 0, 0, 1, 4], "ts_start": [H, H, H + pd.Timedelta(minutes=65), H, H]})


def test_by_service_and_hour(flows, events):
    by = volume.volume_by(flows, events, "service").set_index("service")
    assert "other" not in by.index                       # only Meta flows count
    assert by.loc["whatsapp.media", ["bytes", "bytes_up", "bytes_down", "events"]].tolist() == [1010, 1000, 10, 1]
    assert by.loc["whatsapp.call", ["bytes_up", "bytes_down"]].tolist() == [3, 7]   # inbound: local = responder
    assert by.loc["whatsapp.chat", "events"] == 3 and by["share_bytes"].sum() == pytest.approx(1.0)
    hours = volume.volume_by(flows, events, "hour")
    assert hours.hour.tolist() == [H, H + pd.Timedelta(hours=1)]
    assert hours.flows.tolist() == [3, 1] and hours.events.tolist() == [4, 1]


def test_unknown_values_are_kept_as_unknown(flows):
    by = volume.volume_by(flows, None, "operator_country").set_index("operator_country")
    assert by.loc["unknown", "bytes"] == 100 and by.loc["US", "flows"] == 2


def test_share_leaving_the_eu_by_location_and_by_operator(flows):
    eu = volume.leaving_eu(flows).set_index("basis")
    total = 400 + 1010 + 100 + 10
    loc, op = eu.loc["location"], eu.loc["operator"]
    assert (loc.bytes, loc.bytes_eu_eea, loc.bytes_outside, loc.bytes_unknown) == (total, 400, 1020, 100)
    assert loc.share_outside == pytest.approx(1020 / total) and loc.share_not_eu_eea == pytest.approx(1120 / total)
    assert (op.bytes_eu_eea, op.bytes_outside, op.bytes_unknown) == (10, 1410, 100)   # NO is in the EEA


def test_per_device_is_keyed_by_the_local_address(flows, events):
    dev = volume.per_device(flows, events).set_index("local_ip")
    assert sorted(dev.index) == ["10.0.0.2", "10.0.0.3"]
    assert dev.loc["10.0.0.2", "flows"] == 3 and dev.loc["10.0.0.2", "events"] == 5
    assert dev.loc["10.0.0.2", "services"] == "whatsapp.call,whatsapp.chat,whatsapp.media"


def test_sample_totals_and_summary_agree_with_the_functions(sample_default):
    r = sample_default
    meta = r.flows[r.flows.is_meta]
    for key in ("service", "region", "remote_country", "operator_country", "hour"):
        by = volume.volume_by(r.flows, r.events, key)
        assert by.bytes.sum() == (meta.bytes_orig + meta.bytes_resp).sum()
        assert by.flows.sum() == len(meta) and by.events.sum() == len(r.events)
    md = r.summary["metadata"]
    by = volume.volume_by(r.flows, r.events, "service")
    assert md["bytes_by_service"] == dict(zip(by.service, by.bytes.astype(int)))
    eu = volume.leaving_eu(r.flows).set_index("basis")
    assert md["leaving_eu_eea"]["location"]["bytes_outside"] == eu.loc["location", "bytes_outside"]
    dev = volume.per_device(r.flows, r.events)
    assert set(dev.local_ip) == {"10.215.173.1", "fd00:2:fd00:1::1"} == set(volume.meta_flows(r.flows).local_ip)
    assert md["local_devices"] == 2
    assert volume.volume_by(r.table, r.events_table).equals(by)     # Arrow tables in, the same answer
