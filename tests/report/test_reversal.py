"""Pseudonyms that hold: no written column gives a local address back to a brute force.

The attack of issue 16: flows.parquet keeps the remote address and both ports in clear, so a
clear Community ID (a SHA-1 of the 5-tuple) names the local address among the private
ranges. We run that attack on every written flow, first against a table whose Community IDs
were left clear (it must succeed: the attack is real), then against the evidence directory
as flowscope writes it (it must find nothing in any written string)."""
from __future__ import annotations

import ipaddress
import json
import random

import pyarrow.parquet as pq

from flowscope.flows.finalize import community_id
from flowscope.report import pseudonym as ps

PROTOS = {"tcp": 6, "udp": 17}
SAMPLE_LOCAL = ("10.215.173.1", "fd00:2:fd00:1::1")  # the sample's device addresses (VPN side)


def candidates(seed: int = 16, per_range: int = 2000) -> list[str]:
    """The private address space an attacker tries: the /24 (v4) or /120 (v6) around each real
    local address of the sample in full, plus a random sample of 10/8, 172.16/12 and
    192.168/16 (the full ranges take 24 s a flow; the neighbourhood holds the answer)."""
    rng = random.Random(seed)
    out = []
    for local in SAMPLE_LOCAL:
        net = ipaddress.ip_network(f"{local}/{24 if ':' not in local else 120}", strict=False)
        out += [str(a) for a in net]
    for net in map(ipaddress.ip_network, ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")):
        out += [str(net[rng.randrange(net.num_addresses)]) for _ in range(per_range)]
    return out


def _packed(ip: str) -> bytes:
    return ipaddress.ip_address(ip).packed


def recovered(rows: list[dict], written: set[str], tries: list[str]) -> dict[int, str]:
    """Flow index -> the local address whose clear Community ID appears among `written`."""
    found = {}
    for k, row in enumerate(rows):
        proto = PROTOS.get(row["l4"])
        pseudo = [side for side in ("orig", "resp") if str(row[f"{side}_ip"]).startswith(("local-", "peer-"))]
        if proto is None or len(pseudo) != 1:
            continue
        hidden = pseudo[0]
        known = "resp" if hidden == "orig" else "orig"
        remote = _packed(row[f"{known}_ip"])
        for ip in tries:
            if (":" in ip) != (len(remote) == 16):
                continue
            ends = ((_packed(ip), row[f"{hidden}_port"]), (remote, row[f"{known}_port"]))
            (a, pa_), (b, pb) = ends if hidden == "orig" else ends[::-1]
            if community_id(proto, a, pa_, b, pb) in written:
                found[k] = ip
                break
    return found


def written_strings(out) -> set[str]:
    """Every string value in every table and JSON file of an output directory."""
    strings: set[str] = set()

    def walk(value):
        if isinstance(value, str):
            strings.add(value)
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(k)
                walk(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v)
    for path in out.rglob("*"):
        if path.suffix == ".parquet":
            walk(pq.read_table(path).to_pylist())
        elif path.suffix == ".json":
            walk(json.loads(path.read_text()))
    return strings


def test_the_attack_recovers_local_addresses_from_a_clear_community_id(sample_result):
    """Control: pseudonymised addresses beside a clear Community ID fall to the brute force."""
    scrub = ps.Pseudonymizer(b"k" * 32, peers=ps.call_peers(sample_result.table))
    table = scrub.table(sample_result.table, keep=("community_id",))
    rows = table.to_pylist()
    found = recovered(rows, set(table["community_id"].drop_null().to_pylist()), candidates())
    assert "10.215.173.1" in found.values() and len(found) >= 10


def test_no_written_column_gives_a_local_address_back(written_dir):
    rows = pq.read_table(written_dir / "flows.parquet").to_pylist()
    hidden = [r for r in rows if str(r["orig_ip"]).startswith("local-") and r["l4"] in PROTOS]
    assert len(hidden) >= 10  # the attack had something to try
    assert all(r["community_id"].startswith("cid-") for r in hidden)
    assert recovered(rows, written_strings(written_dir), candidates()) == {}
