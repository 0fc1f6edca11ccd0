"""What the remote end of a flow is (remote_role): decided once, in the classify stage."""
from __future__ import annotations

from flowscope.classify.catalog import load_catalog
from flowscope.classify.classifier import Label
from flowscope.classify.stage import _remote_roles
from flowscope.dissect.evidence import Evidence

CALL = Label("whatsapp.call", True, "", "stun", "high", "")
WEB = Label("meta.other", True, "", "ip-prefix", "low", "")


def _roles(rows):
    """rows: (orig_ip, orig_port, resp_ip, resp_port, l4, label, evidence, same-socket leg)."""
    cols = {k: [r[i] for r in rows] for i, k in enumerate(("orig_ip", "orig_port", "resp_ip", "resp_port", "l4"))}
    legs = {i for i, r in enumerate(rows) if r[7]}
    return _remote_roles(cols, [r[5] for r in rows], [r[6] for r in rows], legs, load_catalog(()))


def test_relays_peers_and_servers():
    wa_stun = Evidence(stun=True, stun_whatsapp=True)
    echo = Evidence(stun=True, stun_mapped=("198.51.100.23:51234",))
    rows = [
        ("10.0.0.2", 40000, "157.240.20.100", 3478, "udp", CALL, Evidence(stun=True), False),  # relay port
        ("10.0.0.2", 40000, "198.51.100.9", 40002, "udp", CALL, wa_stun, False),               # WhatsApp STUN
        ("10.0.0.2", 40000, "157.240.20.101", 40003, "udp", CALL, Evidence(), False),          # a Meta address
        ("10.0.0.2", 40000, "198.51.100.23", 51234, "udp", CALL, echo, False),                 # echoed back: peer
        ("10.0.0.2", 40000, "203.0.113.5", 50000, "udp", CALL, Evidence(), False),             # no relay sign
        ("10.0.0.2", 40000, "203.0.113.6", 50001, "udp", WEB, Evidence(), True),               # same socket
        ("10.0.0.2", 40001, "157.240.20.53", 443, "tcp", WEB, Evidence(), False),              # a server
        ("198.51.100.23", 51234, "10.0.0.2", 40000, "udp", CALL, Evidence(), False),           # a peer calling in
    ]
    assert _roles(rows) == ["relay", "relay", "relay", "peer", "peer", "peer", "server", "peer"]


def test_label_columns_read_shared_and_distinct_labels_alike():
    """The label columns are taken from the distinct Label objects by code: every flow
    must still get its own label's fields, whether it shares the object or not."""
    from flowscope.classify.stage import _label_columns
    other = Label("whatsapp.call", True, "", "stun", "high", "")  # equal to CALL, another object
    labels = [CALL, WEB, CALL, other, WEB, Label("other", False, "x.example", "", "low", "r")]
    cols = _label_columns(labels)
    assert cols["service"].to_pylist() == [lb.service for lb in labels]
    assert cols["is_meta"].to_pylist() == [lb.is_meta for lb in labels]
    assert cols["hostname"].to_pylist() == [lb.hostname for lb in labels]
    assert cols["catalog_rule"].to_pylist() == [lb.rule for lb in labels]
    assert _label_columns([])["service"].to_pylist() == []
