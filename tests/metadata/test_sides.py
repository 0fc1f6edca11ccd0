"""The local end of a flow is the end that is not remote_ip (the geo stage's rule)."""
from flowscope.metadata.sides import local_is_orig


def test_with_and_without_the_geo_column():
    orig = ["10.0.0.2", "157.240.0.1", "10.0.0.2"]
    resp = ["157.240.0.1", "10.0.0.2", "10.0.0.3"]
    assert local_is_orig(orig, resp, ["157.240.0.1", "157.240.0.1", "10.0.0.3"]) == [True, False, True]
    assert local_is_orig(orig, resp, None) == [True, False, True]       # inbound: private responder
    assert local_is_orig(orig, resp, [None, None, None]) == [True, False, True]


def test_the_arrow_version_agrees():
    import pyarrow as pa

    from flowscope.metadata.sides import local_is_orig_columns
    orig = ["10.0.0.2", "157.240.0.1", "10.0.0.2"]
    resp = ["157.240.0.1", "10.0.0.2", "10.0.0.3"]
    for remote in (["157.240.0.1", "157.240.0.1", "10.0.0.3"], [None, None, None], ["157.240.0.1", None, "10.0.0.3"]):
        t = pa.table({"orig_ip": orig, "resp_ip": resp, "remote_ip": pa.array(remote, pa.string())})
        assert local_is_orig_columns(t).tolist() == local_is_orig(orig, resp, remote)
