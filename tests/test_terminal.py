"""Capture strings printed to a terminal: control characters and rich markup are escaped.

Hostile strings reach the terminal through names in captures, file names (an evidence
directory or a capture folder someone else filled), catalogs and manifests. An ESC sequence
printed raw rewrites the screen (``\\x1b[2J`` clears it, ``\\x1b]0;…\\x07`` retitles the window);
rich would read ``[bold]`` or ``[link=…]`` in the live view as markup."""
from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

import flowscope
from flowscope import testing as t
from flowscope.terminal import markup, printable

pytestmark = pytest.mark.slow  # not in `make check` (whole analyses, browsers, live capture)

ESC = "\x1b"
HOSTILE = "evil\x1b[2J\x1b]0;pwned\x07[bold]x\x9b31m\u202e"
TS = 1_700_000_000_000_000_000


def _cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flowscope.cli", *map(str, args)], capture_output=True, text=True)


def test_printable_and_markup():
    assert printable(HOSTILE) == "evil\\x1b[2J\\x1b]0;pwned\\x07[bold]x\\x9b31m\\u202e"
    assert printable("a\tb\nc") == "a\\x09b\\x0ac" and printable("a\tb", keep="\t") == "a\tb"
    assert markup("[bold]x[/bold]") == "\\[bold]x\\[/bold]" and ESC not in markup(HOSTILE)
    assert printable("g.whatsapp.net 2026-11-28 ü") == "g.whatsapp.net 2026-11-28 ü"  # text itself untouched


def test_capture_names_with_escape_sequences_arrive_as_visible_text(tmp_path):
    """A crafted SNI and DNS name holding ESC sequences and markup: the dissectors write the
    control bytes as \\xNN text, so no table, report or terminal line carries a raw ESC."""
    sni = b"a\x1b[2Jb[bold].example.org"
    label = b"q\x1b]0;pwn\x07[b]\x07"
    query = bytes([len(label)]) + label + b"\x07example\x03org\x00"
    dns = b"\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + query + b"\x00\x01\x00\x01"
    c, s = "192.168.1.2", "93.184.216.34"
    packets = [(TS, t.ethernet(t.ipv4(c, s, 6, t.tcp(40000, 443, flags="S")))),
               (TS + 1000, t.ethernet(t.ipv4(s, c, 6, t.tcp(443, 40000, flags="SA", ack=1)))),
               (TS + 2000, t.ethernet(t.ipv4(c, s, 6, t.tcp(40000, 443, flags="PA", seq=1, ack=1,
                                                            payload=t.tls_client_hello(sni))))),
               (TS + 3000, t.ethernet(t.ipv4(c, "192.168.1.1", 17, t.udp(40001, 53, dns))))]
    path = t.write_pcap(tmp_path / "names.pcap", packets)
    flows = flowscope.analyze(path, geo=False).flows
    assert flows["sni"].dropna().tolist() == ["a\\x1b[2jb[bold].example.org"]
    assert [q for qs in flows["dns_queries"] for q in qs] == ["q\\x1b]0;pwn\\x07[b]\\x07.example.org"]
    r = _cli("analyze", path, "--out", tmp_path / "out", "--no-geo", "--no-pseudonymize")
    assert r.returncode == 0 and ESC not in r.stdout + r.stderr
    assert ESC not in (tmp_path / "out" / "report.html").read_text()


def test_cli_error_line_with_a_hostile_file_name(tmp_path):
    bad = tmp_path / f"{HOSTILE}.pcap"
    bad.write_bytes(b"not a capture at all")
    r = _cli("analyze", bad, "--out", tmp_path / "out", "--no-report")
    assert r.returncode == 1
    assert ESC not in r.stderr and "\x07" not in r.stderr and "\x9b" not in r.stderr
    assert "evil\\x1b[2J\\x1b]0;pwned\\x07[bold]x" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def _toml_escaped(text: str) -> str:
    return "".join(f"\\u{ord(c):04x}" if ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f else c for c in text)


def test_catalog_listing_escapes_a_hostile_catalog(tmp_path):
    user = tmp_path / "hostile.toml"
    user.write_text('[[host]]\npattern = "x.example.test"\nservice = "meta.other"\n'
                    f'source = "{_toml_escaped(HOSTILE)}"\ndate = "2026-11-28"\n')
    r = _cli("catalog", "--catalog", user)
    assert r.returncode == 0, r.stderr
    line = next(x for x in r.stdout.splitlines() if "x.example.test" in x)
    assert ESC not in r.stdout and "\\x1b[2J" in line and "\t" in line  # tabs of the listing stay


def test_verify_escapes_file_names_from_the_evidence_directory(written_dir, tmp_path):
    import shutil
    out = tmp_path / "out"
    shutil.copytree(written_dir, out)
    (out / f"{HOSTILE}.txt").write_text("planted")
    r = _cli("verify", out, "--outputs-only")
    assert r.returncode == 1 and ESC not in r.stdout and "\\x1b[2J" in r.stdout


def test_live_view_shows_markup_and_controls_as_text():
    from rich.console import Console

    from flowscope.live.view import LiveView
    console = Console(file=io.StringIO(), force_terminal=False, width=300)
    view = LiveView(f"eth{HOSTILE}", Path("out"), console=console)
    view.stats = {"flows": 1, "bytes": 2, "meta_flows": 1, "meta_bytes": 2, "by": "service",
                  "breakdown": [(f"meta.{HOSTILE}", 1, 2)], "devices": 0}

    class Engine:
        label, packets_seen, kernel_drops = "dumpcap", 3, 0
    console.print(view.render(1.0, Engine()))
    shown = console.file.getvalue()
    assert ESC not in shown and "\x07" not in shown
    assert shown.count("[bold]x") == 2  # the markup is shown as text, not applied


@pytest.mark.parametrize("value", ["\x00", "\x1b", "\x7f", "\x85", "\u2066"])
def test_every_unsafe_character_class_is_escaped(value):
    assert printable(value).startswith("\\") and len(printable(value)) > 1
