"""A capture is attacker-controlled text: a crafted server name must stay text in the report,
and the report must open in a real browser without an error or a single network request."""
from __future__ import annotations

from html.parser import HTMLParser

import pytest

import flowscope
from flowscope import testing as t
from reportkit import browse, chromium_or_skip, network_requests

pytestmark = pytest.mark.slow  # not in `make check` (whole analyses, browsers, live capture)

CLIENT, META = "10.0.0.2", "157.240.20.53"  # a Meta prefix: the flows land in the report's tables
CRAFTED = (b"<script>alert(1)</script>.facebook.com",
           b'"><img src=x onerror=alert(2)>.whatsapp.net',
           b"</td></table><style>*{display:none}</style><a href=//evil.example>x</a>.fbcdn.net",
           b"$\\frac{1}{0}$.instagram.com")
ALLOWED_TAGS = {"html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "h3", "p", "section", "table",
                "thead", "tbody", "tr", "th", "td", "figure", "img", "figcaption", "code", "ul", "li", "footer", "a"}


def crafted_pcap(path):
    packets, ts = [], 1_772_442_000_000_000_000

    def add(ip):
        nonlocal ts
        ts += 3_000_000
        packets.append((ts, t.ethernet(ip)))
    for k, sni in enumerate(CRAFTED):
        port, hello = 40000 + k, t.tls_client_hello(sni)
        add(t.ipv4(CLIENT, META, 6, t.tcp(port, 443, flags="S", seq=100)))
        add(t.ipv4(META, CLIENT, 6, t.tcp(443, port, flags="SA", seq=500, ack=101)))
        add(t.ipv4(CLIENT, META, 6, t.tcp(port, 443, flags="A", seq=101, ack=501)))
        add(t.ipv4(CLIENT, META, 6, t.tcp(port, 443, flags="PA", seq=101, ack=501, payload=hello)))
        add(t.ipv4(META, CLIENT, 6, t.tcp(443, port, flags="A", seq=501, ack=101 + len(hello))))
    return t.write_pcap(path, packets)


class Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.handlers, self.links = set(), [], []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.handlers += [name for name, _ in attrs if name.startswith("on")]
        self.links += [value for name, value in attrs if name in ("href", "src") and value]


@pytest.fixture(scope="module")
def crafted_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("crafted")
    result = flowscope.analyze(crafted_pcap(base / "crafted.pcap"))
    assert any("<script>" in (h or "") for h in result.flows["hostname"]), "the crafted SNI reached the flows"
    out = base / "out"
    result.write(out)
    return out


def test_crafted_server_names_stay_text_in_the_html(crafted_dir):
    html = (crafted_dir / "report.html").read_text()
    parsed = Tags()
    parsed.feed(html)
    assert parsed.tags <= ALLOWED_TAGS, parsed.tags - ALLOWED_TAGS
    assert parsed.handlers == []
    assert all(link.startswith("data:image/png;base64,") or link == "https://db-ip.com" for link in parsed.links)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.facebook.com" in html
    assert "&lt;/td&gt;&lt;/table&gt;&lt;style&gt;" in html
    assert html.lower().count("<script") == 0 and html.count("<style>") == 1


def test_crafted_report_opens_without_errors_or_requests(crafted_dir):
    seen = browse(crafted_dir / "report.html")
    assert seen["errors"] == []
    assert network_requests(seen, crafted_dir / "report.html") == []
    assert seen["title"] == "flowscope report: crafted.pcap"


def test_crafted_names_are_printed_as_text_in_the_pdf(crafted_dir):
    import pypdf
    chromium_or_skip()
    text = " ".join(p.extract_text() for p in pypdf.PdfReader(crafted_dir / "report.pdf").pages)
    assert "<script>alert(1)</script>.facebook.com" in text.replace("\n", "")
