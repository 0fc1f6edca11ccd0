"""Where numba keeps compiled code, keyed by a hash of flowscope's own sources.

numba's on-disk cache is checked per source file, so a walk loop compiled together with
an edited decoder in another file would be reused stale. Keying the cache directory by
all sources avoids that, and keeps compiled code out of (possibly read-only) site-packages.
Set FLOWSCOPE_CACHE_DIR to move it; the default is $XDG_CACHE_HOME/flowscope or ~/.cache/flowscope.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

_configured = False


def configure_cache() -> None:
    global _configured
    if _configured:
        return
    import numba
    root = Path(__file__).parent
    digest = hashlib.sha256()
    compiled = [p for d in ("decode", "sources", "flows") for p in (root / d).rglob("*.py")]
    compiled += [root / "metadata" / "framesearch.py", root / "dissect" / "tlsfast.py"]
    for path in sorted(compiled + [Path(__file__)]):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    base = os.environ.get("FLOWSCOPE_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "flowscope")
    name = "numba-" + digest.hexdigest()[:16]
    _prune(base, keep=name)
    numba.config.CACHE_DIR = os.path.join(base, name)
    _configured = True


def _prune(base: str, keep: str) -> None:
    """Drop caches compiled from other versions of the sources."""
    import shutil
    try:
        for entry in os.scandir(base):
            if entry.name.startswith("numba-") and entry.name != keep:
                shutil.rmtree(entry.path, ignore_errors=True)
    except OSError:
        pass
