"""Which end is remote: one rule (flowscope/sides.py), read by geo, metadata and privacy."""
import pyarrow as pa

from flowscope.sides import local_is_orig_columns, remote_endpoints, remote_ips, remote_is_orig

ORIG = ["10.0.0.2", "157.240.0.1", "10.0.0.2"]
RESP = ["157.240.0.1", "10.0.0.2", "10.0.0.3"]


def test_the_responder_unless_the_flow_came_in():
    assert remote_is_orig(ORIG, RESP) == [False, True, False]  # inbound: a private responder
    assert remote_ips(ORIG, RESP) == ["157.240.0.1", "157.240.0.1", "10.0.0.3"]


def test_the_arrow_version_reads_remote_ip_and_agrees_without_it():
    for remote in (["157.240.0.1", "157.240.0.1", "10.0.0.3"], [None, None, None], ["157.240.0.1", None, "10.0.0.3"]):
        t = pa.table({"orig_ip": ORIG, "resp_ip": RESP, "remote_ip": pa.array(remote, pa.string())})
        assert local_is_orig_columns(t).tolist() == [True, False, True]


def test_remote_endpoints_name_the_remote_port():
    t = pa.table({"orig_ip": ORIG, "resp_ip": RESP, "orig_port": [40000, 443, 5000], "resp_port": [443, 40001, 53]})
    assert remote_endpoints(t).to_pylist() == ["157.240.0.1:443", "157.240.0.1:443", "10.0.0.3:53"]
