"""Shared fixtures: where the sample and the third-party corpus live, and pcap surgery."""
from __future__ import annotations

import struct
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "captures" / "sample_session.pcap"
SAMPLE_TRUTH = ROOT / "captures" / "sample_session.truth.json"
CORPUS = ROOT.parent / "shared" / "corpus" / "ndpi"


@pytest.fixture(scope="session", autouse=True)
def _pseudonym_key_home(tmp_path_factory):
    """Writing an analysis creates the default pseudonym key under $XDG_CONFIG_HOME: point
    it (for this process and the CLI subprocesses) at a temporary directory, never at ~."""
    import os
    old = os.environ.get("XDG_CONFIG_HOME")
    os.environ["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("config"))
    yield
    if old is None:
        os.environ.pop("XDG_CONFIG_HOME", None)
    else:
        os.environ["XDG_CONFIG_HOME"] = old


@pytest.fixture(scope="session")
def truth() -> dict:
    """The sample's generator ground truth (captures/make_sample.py)."""
    import json
    return json.loads(SAMPLE_TRUTH.read_text())


@pytest.fixture(scope="session")
def corpus() -> Path:
    if not (CORPUS / "truth_flows.csv").exists():
        pytest.skip(f"third-party corpus not found at {CORPUS} (it lives beside the project, never in it)")
    return CORPUS


def pcap_records(path: Path) -> tuple[bytes, list[bytes]]:
    """Split a little-endian classic pcap into its global header and raw records."""
    data = Path(path).read_bytes()
    assert data[:4] == b"\xd4\xc3\xb2\xa1", "helper handles little-endian microsecond pcaps"
    header, pos, records = data[:24], 24, []
    while pos < len(data):
        incl = struct.unpack_from("<I", data, pos + 8)[0]
        records.append(data[pos:pos + 16 + incl])
        pos += 16 + incl
    return header, records


def write_records(path: Path, header: bytes, records: list[bytes]) -> Path:
    path.write_bytes(header + b"".join(records))
    return path


def split_pcap(path: Path, cuts: list[int], out_dir: Path) -> list[Path]:
    """Write the records of `path` into consecutive files cut before the given record indices."""
    header, records = pcap_records(path)
    bounds = [0, *cuts, len(records)]
    return [write_records(out_dir / f"part{k}.pcap", header, records[a:b])
            for k, (a, b) in enumerate(zip(bounds, bounds[1:]))]


def l4_payloads(path: Path) -> dict[int, tuple[str, bytes]]:
    """Frame number -> ("udp" | "tcp", payload) over Ethernet (VLAN too), via dpkt."""
    import dpkt
    out = {}
    with open(path, "rb") as fh:
        try:
            reader = dpkt.pcap.Reader(fh)
        except ValueError:
            fh.seek(0)
            reader = dpkt.pcapng.Reader(fh)
        for number, (_ts, frame) in enumerate(reader, 1):
            try:
                l4 = dpkt.ethernet.Ethernet(frame).data.data
            except Exception:  # noqa: BLE001 - the corpus holds deliberately broken frames
                continue
            if isinstance(l4, dpkt.udp.UDP):
                out[number] = ("udp", bytes(l4.data))
            elif isinstance(l4, dpkt.tcp.TCP) and l4.data:
                out[number] = ("tcp", bytes(l4.data))
    return out


def corpus_ip_packets(path: Path, with_ts: bool = False):
    """Yield dpkt IP (v4/v6) packets (with_ts: (ts, packet)) from a pcap or pcapng with
    Ethernet/PPP/SLL/raw links."""
    import dpkt
    with open(path, "rb") as fh:
        magic = fh.read(4)
        fh.seek(0)
        reader = dpkt.pcapng.Reader(fh) if magic == b"\x0a\x0d\x0d\x0a" else dpkt.pcap.Reader(fh)
        link = reader.datalink()
        for ts, frame in reader:
            try:
                if link == dpkt.pcap.DLT_EN10MB:
                    ip = dpkt.ethernet.Ethernet(frame).data
                elif link == dpkt.pcap.DLT_PPP:
                    proto = struct.unpack(">H", frame[2:4] if frame[:2] == b"\xff\x03" else frame[:2])[0]
                    body = frame[4:] if frame[:2] == b"\xff\x03" else frame[2:]
                    ip = dpkt.ip.IP(body) if proto == 0x21 else dpkt.ip6.IP6(body)
                elif link == dpkt.pcap.DLT_LINUX_SLL:
                    ip = dpkt.sll.SLL(frame).data
                else:
                    ip = dpkt.ip.IP(frame) if frame[0] >> 4 == 4 else dpkt.ip6.IP6(frame)
            except (dpkt.UnpackError, IndexError, struct.error):
                continue
            if isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)):
                yield (ts, ip) if with_ts else ip


@pytest.fixture(scope="session")
def tshark_corpus(corpus) -> Path:
    """The corpus captures, for cross-checks that also need tshark."""
    import shutil
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed: cannot cross-check against real captures")
    return corpus / "pcap"


# --- report: the sample analysed once and its evidence directory written once ----------------

@pytest.fixture(scope="session")
def sample_default():
    """The sample capture analysed with the default settings, once a session (read only)."""
    import flowscope
    return flowscope.analyze(SAMPLE)


@pytest.fixture(scope="session")
def sample_result():
    """The sample capture analysed with a vantage point (the physical check runs)."""
    import flowscope
    return flowscope.analyze(SAMPLE, vantage="MXP")


@pytest.fixture(scope="session")
def key_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("key") / "pseudonym.key"
    path.write_text("11" * 32 + "\n")
    return path


@pytest.fixture(scope="session")
def written_dir(tmp_path_factory, sample_result, key_file):
    """The sample with synthetic events and frames written once: tables, charts, report, manifest."""
    from reportkit import with_metadata
    out = tmp_path_factory.mktemp("evidence") / "out"
    with_metadata(sample_result).write(out, pseudonym_key=key_file)
    return out


@pytest.fixture()
def evidence_copy(tmp_path, written_dir):
    """A private copy of the written directory, for tests that modify it."""
    import shutil
    out = tmp_path / "out"
    shutil.copytree(written_dir, out)
    return out
