"""Flow table versus nDPI's verdicts on real third-party captures (../shared/corpus/ndpi).

Flows are matched by unordered 5-tuple. With flowscope set up like ndpiReader (no
duplicate suppression, timeouts longer than the captures), packets and frame bytes per
direction must agree exactly. Deliberate differences, each checked below:
- fuzz-2006-06-26-2594.pcap: fuzzed headers; the readers disagree on a few mangled
  packets (nDPI reads protocol 240 as UDP with a port from garbage, for example).
- ip_fragmented_garbage.pcap: nDPI folds IP fragments into one port-0 flow; flowscope
  attributes a first fragment to its TCP ports and counts later fragments as
  `ip-fragment` (undecodable: without reassembly they carry no ports).
- nDPI prints some IPv6 addresses in a non-canonical (and in one case invalid) form;
  addresses are compared canonically, and its invalid "2600:1900:4160:5999::19::" is
  the address flowscope writes as 2600:1900:4160:5999:0:19::.
- With default settings flowscope also suppresses bit-identical repeats within 1 ms
  (mirror-port duplicates; here double RSTs and loopback ICMP seen twice) and splits
  flows idle longer than the timeout: both are checked to explain every difference.
"""
from __future__ import annotations

import ipaddress

import pandas as pd
import pytest

import flowscope

pytestmark = pytest.mark.slow  # not in `make check` (whole analyses, browsers, live capture)

NDPI_LIKE = dict(dedup_window_ms=0, tcp_idle_s=1e9, udp_idle_s=1e9, other_idle_s=1e9, tcp_closed_s=1e9)
NDPI_BAD_IPV6 = {"2600:1900:4160:5999::19::": "2600:1900:4160:5999:0:19::"}
FUZZED = "fuzz-2006-06-26-2594.pcap"
FRAGMENTS = "ip_fragmented_garbage.pcap"


def _ip(text: str) -> str:
    text = NDPI_BAD_IPV6.get(text, text)
    return str(ipaddress.ip_address(text))


def _l4(name) -> str:
    name = str(name).lower()
    return f"ip-{name}" if name.isdigit() else {"icmpv6": "icmp6"}.get(name, name)


def _key(l4, a, ap, b, bp):
    return _l4(l4), frozenset([(_ip(a), int(ap)), (_ip(b), int(bp))])


@pytest.fixture(scope="module")
def truth(corpus):
    return pd.read_csv(corpus / "truth_flows.csv")


def _compare(pcap_path, rows: pd.DataFrame, **settings):
    """Return (matched exactly, missing keys, extra keys, mismatches) against nDPI rows."""
    flows = flowscope.analyze(pcap_path, **settings).flows
    ours: dict = {}
    for f in flows.itertuples():
        ours.setdefault(_key(f.l4, f.orig_ip, f.orig_port, f.resp_ip, f.resp_port), []).append(f)
    theirs = {_key(r.l4, r.src, r.sport, r.dst, r.dport): r for r in rows.itertuples()}
    exact, mismatches = 0, []
    for key, n in theirs.items():
        o = ours.get(key)
        if not o:
            continue
        if len(o) != 1:
            mismatches.append((key, "split", len(o)))
            continue
        o = o[0]
        same_dir = (o.orig_ip, o.orig_port) == (_ip(n.src), n.sport)
        got = ((o.pkts_orig, o.frame_bytes_orig, o.pkts_resp, o.frame_bytes_resp) if same_dir else
               (o.pkts_resp, o.frame_bytes_resp, o.pkts_orig, o.frame_bytes_orig))
        want = (n.c2s_pkts, n.c2s_bytes, n.s2c_pkts, n.s2c_bytes)
        if tuple(map(int, got)) == tuple(map(int, want)):
            exact += 1
        else:
            mismatches.append((key, got, want))
    missing = [k for k in theirs if k not in ours]
    extra = [k for k in ours if k not in theirs]
    return exact, missing, extra, mismatches


def _pcaps(truth):
    return sorted(truth.pcap.unique())


def test_every_capture_reads_without_error(corpus, truth):
    for pcap in sorted(p.name for p in (corpus / "pcap").iterdir()):
        result = flowscope.analyze(corpus / "pcap" / pcap)
        assert result.errors == [], pcap


def test_flows_and_directions_match_ndpi_exactly(corpus, truth):
    for pcap in _pcaps(truth):
        if pcap in (FUZZED, FRAGMENTS):
            continue
        rows = truth[truth.pcap == pcap]
        exact, missing, extra, bad = _compare(corpus / "pcap" / pcap, rows, **NDPI_LIKE)
        assert (missing, extra, bad) == ([], [], []), pcap
        assert exact == len(rows), pcap


def test_fuzzed_capture_mostly_agrees(corpus, truth):
    rows = truth[truth.pcap == FUZZED]
    exact, missing, extra, bad = _compare(corpus / "pcap" / FUZZED, rows, **NDPI_LIKE)
    assert exact >= 0.97 * len(rows)
    assert len(missing) + len(extra) + len(bad) <= 8


def test_fragments_are_counted_not_folded(corpus, truth):
    result = flowscope.analyze(corpus / "pcap" / FRAGMENTS, **NDPI_LIKE)
    cap = result.summary["captures"][0]
    rows = truth[truth.pcap == FRAGMENTS]
    assert list(rows.sport) == [0]  # nDPI's single port-0 flow
    assert cap["ip_fragments"] == cap["packets_read"] == 1252
    assert cap["packets_undecodable"] == {"ip-fragment": 1248, "bad-l4-header": 2}
    assert len(result.flows) == 2  # the two first fragments with a sound TCP header, by their ports


def test_default_settings_differ_only_by_duplicates_and_idle_splits(corpus, truth):
    for pcap in _pcaps(truth):
        if pcap in (FUZZED, FRAGMENTS):
            continue
        rows = truth[truth.pcap == pcap]
        default = flowscope.analyze(corpus / "pcap" / pcap).flows
        _, missing, extra, bad = _compare(corpus / "pcap" / pcap, rows)
        assert (missing, extra) == ([], []), pcap
        keys = default.apply(lambda f: _key(f.l4, f.orig_ip, f.orig_port, f.resp_ip, f.resp_port), axis=1)
        for key, got, want in bad:
            mine = default[keys == key].sort_values("ts_start")
            if got == "split":  # every gap between the pieces exceeds the idle timeout
                start = mine.ts_start.dt.tz_convert(None).to_numpy()
                end = mine.ts_end.dt.tz_convert(None).to_numpy()
                gaps = (start[1:] - end[:-1]) / pd.Timedelta(seconds=1)
                timeout = flowscope.Settings().udp_idle_s if key[0] == "udp" else flowscope.Settings().tcp_idle_s
                assert len(mine) > 1 and (gaps > timeout).all(), (pcap, key)
                continue
            fewer = sum(want[0::2]) - sum(got[0::2])
            assert fewer == mine.duplicates.sum() > 0, (pcap, key, got, want)
