"""Chat connections already open when the capture began: the real chat captures of the
corpus cut after their prologue, and streams that must never lock (negatives)."""
from __future__ import annotations

import random
import struct

import pytest
from conftest import pcap_records, write_records

import flowscope
from flowscope.testing import ethernet, ipv4, tcp, write_pcap

pytestmark = pytest.mark.slow  # not in `make check` (whole analyses, browsers, live capture)

CHAT = ["whatsapp_login_chat.pcap", "whatsapp.pcap", "wa_voice.pcap", "whatsapp_login_call.pcap"]
NEGATIVES = ["signal.pcap", "telegram.pcap", "jabber.pcap", "zoom.pcap", "threema.pcap", "instagram.pcap",
             "facebook.pcap", "quic-mvfst-27.pcapng", "whatsappfiles.pcap"]
CUTS = 12


def _conn(row) -> tuple:
    return (row.orig_ip, row.orig_port, row.resp_ip, row.resp_port)


def _frames_by_conn(result) -> dict:
    f = result.flows.set_index("flow_id")
    out: dict = {}
    for r in result.frames.itertuples():
        out.setdefault(_conn(f.loc[r.flow_id]), []).append((r.direction, r.frame_bytes, r.ts_first.value))
    return out


def _first_walked_start(records, result) -> int:
    """Index of the first record of the first walked flow (its SYN)."""
    first = int(result.flows[result.flows.frame_sync == "prologue"].ts_start.min().value)
    return next(k for k, rec in enumerate(records)
                if (lambda sec, usec: sec * 10**9 + usec * 1000)(*struct.unpack_from("<II", rec, 0)) >= first)


@pytest.mark.corpus
@pytest.mark.parametrize("name", CHAT)
def test_cut_after_the_prologue_the_frames_found_are_real_and_most_are_found(corpus, name, tmp_path):
    path = corpus / "pcap" / name
    whole = flowscope.analyze(path)
    truth = _frames_by_conn(whole)
    header, records = pcap_records(path)
    first = _first_walked_start(records, whole) + 4  # past the handshake and prologue of the first walked flow
    step = max(1, (len(records) - first) // CUTS)
    wanted = found = resync_flows = 0
    for cut in range(first, len(records) - 2, step):
        cut_ts = struct.unpack_from("<II", records[cut], 0)
        t0 = cut_ts[0] * 10**9 + cut_ts[1] * 1000
        got = flowscope.analyze(write_records(tmp_path / f"cut{cut}.pcap", header, records[cut:]))
        ours = _frames_by_conn(got)
        for conn, frames in ours.items():
            assert conn in truth, (name, cut, conn)
            assert set(frames) <= set(truth[conn]), (name, cut, conn, sorted(set(frames) - set(truth[conn]))[:3])
        for conn, frames in truth.items():
            after = {fr for fr in frames if fr[2] >= t0}
            wanted += len(after)
            found += len(after & set(ours.get(conn, ())))
        resync = got.flows[got.flows.frame_sync == "resync"]
        assert set(resync.service) <= {"whatsapp.chat"} and set(resync.evidence) <= {"wa-frames"}
        resync_flows += len(resync)
    assert wanted > 0 and resync_flows > 0
    print(f"{name}: {found}/{wanted} frames after the cuts found, {resync_flows} resynchronised flows")
    assert found / wanted >= 0.9, (name, found, wanted)


@pytest.mark.corpus
@pytest.mark.parametrize("name", NEGATIVES)
def test_other_traffic_never_resynchronises(corpus, name):
    result = flowscope.analyze(corpus / "pcap" / name)
    assert (result.flows.frame_sync == "resync").sum() == 0
    assert result.summary["metadata"]["frames"].get("flows_resync", 0) == 0


# --- crafted streams towards a WhatsApp/Meta address, already open ---------------------

PHONE, META = "10.0.0.2", "157.240.20.53"   # 157.240.0.0/16: Meta (catalog)
T0 = 1_700_000_000_000_000_000
MS = 1_000_000


def _open_connection(chunks_up, chunks_down, port=443, sport=40000, gap_ms=40):
    """Segments of a connection whose handshake (and prologue) the capture missed."""
    c, s, t, pkts = 7_000_000, 9_000_000, T0, []
    for k in range(max(len(chunks_up), len(chunks_down))):
        for data, up in ((chunks_up[k] if k < len(chunks_up) else None, True),
                         (chunks_down[k] if k < len(chunks_down) else None, False)):
            if data is None:
                continue
            seg = (tcp(sport, port, flags="PA", seq=c, ack=s, payload=data) if up
                   else tcp(port, sport, flags="PA", seq=s, ack=c, payload=data))
            pkts.append((t, ethernet(ipv4(PHONE, META, 6, seg) if up else ipv4(META, PHONE, 6, seg))))
            if up:
                c += len(data)
            else:
                s += len(data)
            t += gap_ms * MS
    return pkts


def _noise_frames(rng, sizes):
    return [len(b).to_bytes(3, "big") + b for b in (rng.randbytes(n) for n in sizes)]


def _tls_records(rng, sizes):
    return [bytes([23, 3, 3]) + struct.pack("!H", n) + rng.randbytes(n) for n in sizes]


def test_a_chat_connection_already_open_is_walked_from_its_frames(tmp_path):
    rng = random.Random(7)
    up = _noise_frames(rng, [36, 151, 36, 381, 60, 36])
    down = _noise_frames(rng, [36, 52, 36, 46, 2468, 36])
    path = write_pcap(tmp_path / "open.pcap", _open_connection(up, down, port=5222))
    f = flowscope.analyze(path).flows.iloc[0]
    assert (f.service, f.evidence, f.frame_sync) == ("whatsapp.chat", "wa-frames", "resync")
    assert (f.frames_up, f.frames_down, f.frame_gaps) == (6, 6, 0)


@pytest.mark.parametrize("port", [443, 5222, 80])
def test_random_and_tls_streams_never_lock(tmp_path, port):
    rng = random.Random(port)
    randoms = [rng.randbytes(rng.choice([1400, 1400, 700, 90, 37])) for _ in range(400)]
    tls_up = _tls_records(rng, [rng.randrange(20, 1400) for _ in range(200)])
    tls_down = _tls_records(rng, [rng.randrange(20, 16000) for _ in range(100)])
    pkts = (_open_connection(randoms[:200], randoms[200:], port=port, sport=41000)
            + _open_connection(tls_up, tls_down, port=port, sport=41001))
    result = flowscope.analyze(write_pcap(tmp_path / "neg.pcap", sorted(pkts, key=lambda p: p[0])))
    assert (result.flows.frame_sync == "resync").sum() == 0
    assert result.frames.empty


def test_a_lost_segment_is_a_gap_and_the_walk_finds_its_step_again(tmp_path):
    rng = random.Random(3)
    up = _noise_frames(rng, [36, 151, 36, 381, 60, 36, 40, 200, 36, 36])
    pkts = _open_connection(up, [], port=5222)
    del pkts[4]  # the 60-byte frame: its header and its body are lost
    result = flowscope.analyze(write_pcap(tmp_path / "lost.pcap", pkts))
    f = result.flows.iloc[0]
    assert f.frame_sync == "resync" and f.frame_gaps == 1
    assert result.frames.frame_bytes.tolist() == [36, 151, 36, 381, 36, 40, 200, 36, 36]  # all but the lost one
