"""Keyed pseudonyms: local, MAC and call-peer addresses never reach the output directory."""
from __future__ import annotations

import json
import stat

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flowscope import schema
from flowscope.errors import UsageError
from flowscope.report import pseudonym as ps

KEY_A, KEY_B = b"a" * 32, b"b" * 32
# In the sample: the phone's VPN-side addresses, the VPN's DNS resolver, the call peer and
# the phone's public address as STUN reported it.
SAMPLE_PRIVATE = ("10.215.173.1", "10.215.173.2", "fd00:2:fd00:1::1", "198.51.100.23", "203.0.113.7")


def test_same_key_same_pseudonyms_other_key_other_pseudonyms():
    a1, a2, b = ps.Pseudonymizer(KEY_A), ps.Pseudonymizer(KEY_A), ps.Pseudonymizer(KEY_B)
    for ip in ("10.0.0.5", "fd12::1", "100.64.1.2", "169.254.3.4"):
        assert a1.address(ip) == a2.address(ip) and a1.address(ip).startswith("local-")
        assert a1.address(ip) != b.address(ip)
    assert len(a1.address("10.0.0.5")) == len("local-") + 8
    assert a1.address("157.240.20.53") is None  # a Meta server is not personal data


def test_text_with_ports_reverse_names_macs_and_peers():
    p = ps.Pseudonymizer(KEY_A, peers=["198.51.100.23"], own=["203.0.113.7"])
    local = p.address("10.215.173.1")
    assert p.text("same UDP socket 10.215.173.1:40001 as flow 3") == f"same UDP socket {local}:40001 as flow 3"
    assert p.text("1.173.215.10.in-addr.arpa") == f"{local}.reverse-dns"
    assert p.text("[fe80::1]:80") == f"[{p.address('fe80::1')}]:80"
    assert p.endpoint("198.51.100.23:51234").startswith("peer-")
    assert p.endpoint("203.0.113.7:40001").startswith("local-")
    assert p.text("seen from aa:bb:cc:dd:ee:ff and AA-BB-CC-DD-EE-FF") == \
        f"seen from {p.token('mac', 'aa:bb:cc:dd:ee:ff')} and {p.token('mac', 'aa:bb:cc:dd:ee:ff')}"
    for kept in ("157.240.20.53:443", "2a03:2880:f208:c5:face:b00c:0:167", "09:05:30", "2026-03-02T09:05:30Z"):
        assert p.text(kept) == kept


def test_local_nets_of_a_live_capture_count_as_local():
    p = ps.Pseudonymizer(KEY_A, local_nets=ps.local_nets_of({"captures": [{"local_nets": ["81.2.69.0/24"]}]}))
    assert p.address("81.2.69.160").startswith("local-") and p.address("81.2.70.1") is None


def test_key_file_is_created_private_and_kept_outside_the_output(tmp_path):
    key_path = tmp_path / "cfg" / "flowscope" / "pseudonym.key"
    key = ps.load_key(key_path, out_dir=tmp_path / "out")
    assert len(key) == 32 and stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert ps.load_key(key_path) == key  # read again, not replaced
    with pytest.raises(UsageError, match="outside the output directory"):
        ps.load_key(tmp_path / "out" / "k.key", out_dir=tmp_path / "out")
    bad = tmp_path / "bad.key"
    bad.write_text("not hex")
    with pytest.raises(UsageError, match="not a readable pseudonym key"):
        ps.load_key(bad)


def test_table_scrub_keeps_the_schema_and_keys_every_community_id():
    rows = [{c.name: None for c in schema.FLOWS} | {"orig_ip": "10.0.0.2", "resp_ip": "198.51.100.23",
             "community_id": "1:abc", "catalog_rule": "... (peer-to-peer call leg)", "remote_role": "peer", "stun_mapped": ["198.51.100.23:5000"]},
            {c.name: None for c in schema.FLOWS} | {"orig_ip": "10.0.0.2", "resp_ip": "157.240.0.1",
             "community_id": "1:def", "stun_mapped": []}]
    table = pa.Table.from_pylist(rows, schema=schema.arrow_schema())
    p = ps.Pseudonymizer(KEY_A, peers=ps.call_peers(table))
    out = p.table(table)
    assert out.schema == table.schema
    assert out["resp_ip"].to_pylist() == [p.address("198.51.100.23"), "157.240.0.1"]
    assert out["community_id"].to_pylist() == [p.community_id("1:abc"), p.community_id("1:def")]
    assert out["community_id"].to_pylist()[0].startswith("cid-") and len(p.community_id("1:abc")) == 4 + 16
    assert ps.Pseudonymizer(KEY_B).community_id("1:abc") != p.community_id("1:abc")
    assert out["stun_mapped"].to_pylist()[0][0].startswith("peer-")


def test_community_ids_of_a_column_are_the_keyed_tokens():
    """The column form (one HMAC a flow, no call a value) gives the same tokens as every
    other keyed value of kind "cid"; nulls and empty strings stay as they are."""
    p = ps.Pseudonymizer(KEY_A)
    values = ["1:abc", None, "", "1:D6Qmlr/u9/VzGjogANNhBNJqci8=", "1:déf", "1:abc"]
    assert p.community_ids(values) == [p.token("cid", v, ps.CID_HEX) if v else v for v in values]
    assert p.community_ids(values)[1:3] == [None, ""]
    assert [p.community_id(v) for v in values] == p.community_ids(values)


def _everything_written(out) -> str:
    """All text an output directory holds: tables dumped, JSON, HTML, the PDF's text."""
    import pypdf
    parts = []
    for path in sorted(out.rglob("*")):
        if path.suffix == ".parquet":
            parts.append(json.dumps(pq.read_table(path).to_pylist(), default=str))
        elif path.suffix in (".json", ".html"):
            parts.append(path.read_text())
        elif path.suffix == ".pdf":
            parts.append(" ".join(page.extract_text() for page in pypdf.PdfReader(path).pages))
    return "\n".join(parts)


def test_no_local_or_peer_address_in_any_output(written_dir):
    text = _everything_written(written_dir)
    for ip in SAMPLE_PRIVATE:
        assert ip not in text, ip
    assert "local-" in text and "peer-" in text
    flows = pq.read_table(written_dir / "flows.parquet").to_pandas()
    assert flows["orig_ip"].str.startswith("local-").all()
    peer_rows = flows[flows["resp_ip"].str.startswith("peer-")]
    assert len(peer_rows) == 1 and peer_rows["community_id"].iloc[0].startswith("cid-")
    assert not flows["community_id"].dropna().str.startswith("1:").any()


def test_the_same_key_gives_the_same_pseudonyms_across_runs(tmp_path, sample_result, key_file, written_dir):
    sample_result.write(tmp_path / "again", report=False, pseudonym_key=key_file)
    a = pq.read_table(written_dir / "flows.parquet").to_pandas()
    b = pq.read_table(tmp_path / "again" / "flows.parquet").to_pandas()
    assert a["orig_ip"].tolist() == b["orig_ip"].tolist() and a["resp_ip"].tolist() == b["resp_ip"].tolist()
    other = tmp_path / "other.key"
    other.write_text("22" * 32)
    sample_result.write(tmp_path / "other", report=False, pseudonym_key=other)
    c = pq.read_table(tmp_path / "other" / "flows.parquet").to_pandas()
    assert c["orig_ip"].iloc[0] != a["orig_ip"].iloc[0]


def test_no_pseudonymize_writes_addresses_in_clear(tmp_path, sample_result):
    sample_result.write(tmp_path / "clear", report=False, pseudonymize=False)
    flows = pq.read_table(tmp_path / "clear" / "flows.parquet").to_pandas()
    assert "10.215.173.1" in set(flows["orig_ip"]) and "198.51.100.23" in set(flows["resp_ip"])
    assert flows["community_id"].dropna().str.startswith("1:").all()  # clear: finds the flow in Zeek
    manifest = json.loads((tmp_path / "clear" / "manifest.json").read_text())
    assert manifest["settings"]["report"]["pseudonymized"] is False
