"""Text from captures and from files others hand the auditor, made safe to print.

A capture (or a catalog, a manifest, a file name in an evidence directory) is hostile input:
an ESC sequence in a name printed raw can move the cursor, rewrite earlier lines, retitle the
window or hide a warning; in the live view, rich would also read ``[bold]`` or ``[link=…]``
as markup. So every such string printed is passed through `printable` (C0 and C1 controls,
DEL and the bidirectional overrides become visible ``\\xNN`` / ``\\uNNNN`` escapes) and, where
rich renders it, `markup` (rich's own escaping on top).
"""
from __future__ import annotations

import re

# C0 (tab and newline included: one message is one line), DEL, C1, and the Unicode
# bidirectional embeddings, overrides and isolates ("Trojan Source", CVE-2021-42574).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _visible(m: re.Match) -> str:
    c = ord(m.group(0))
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def printable(text: object, keep: str = "") -> str:
    """`text` with every control character written as a visible escape (`keep`: ones to leave,
    such as the tabs of a tab-separated listing)."""
    s = str(text)
    if keep:
        return "".join(ch if ch in keep else _UNSAFE.sub(_visible, ch) for ch in s)
    return _UNSAFE.sub(_visible, s)


def markup(text: object) -> str:
    """`printable(text)`, then escaped for rich markup (``[bold]`` stays literal text)."""
    from rich.markup import escape
    return escape(printable(text))
