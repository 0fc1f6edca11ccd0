"""Which end is remote: one rule (flowscope/sides.py), read by geo, metadata and privacy."""
import pyarrow as pa

from flowscope.sides import local_is_orig_columns, remote_ips, remote_is_orig

ORIG = ["10.0.0.2", "157.240.0.1", "10.0.0.2"]
RESP = ["157.240.0.1", "10.0.0.2", "10.0.0.3"]


def test_the_responder_unless_the_flow_came_in():
    assert remote_is_orig(ORIG, RESP) == [False, True, False]  # inbound: a private responder
    assert remote_ips(ORIG, RESP) == ["157.240.0.1", "157.240.0.1", "10.0.0.3"]


def test_the_arrow_version_reads_remote_ip_and_agrees_without_it():
    for remote in (["157.240.0.1", "157.240.0.1", "10.0.0.3"], [None, None, None], ["157.240.0.1", None, "10.0.0.3"]):
        t = pa.table({"orig_ip": ORIG, "resp_ip": RESP, "remote_ip": pa.array(remote, pa.string())})
        assert local_is_orig_columns(t).tolist() == [True, False, True]
