"""Where numba keeps compiled code, keyed by a hash of flowscope's own sources.

numba's on-disk cache is checked per source file, so a walk loop compiled together with
an edited decoder in another file would be reused stale. Keying the cache directory by
all sources avoids that, and keeps compiled code out of (possibly read-only) site-packages.
Set FLOWSCOPE_CACHE_DIR to move it; the default is $XDG_CACHE_HOME/flowscope or ~/.cache/flowscope.

The directory is also named by where the package is installed: a checkout prunes the
caches of its own earlier sources only, so two checkouts (or a CI clone beside a
development tree) sharing the default base no longer delete each other's compiled code
(which cost a recompile, ~20 s of CPU and ~500 MiB, on the next run of the other).
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
    name = cache_name(root, digest.hexdigest())
    _prune(base, keep=name)
    numba.config.CACHE_DIR = os.path.join(base, name)
    _configured = True


def cache_name(package_dir: Path, sources_digest: str) -> str:
    """numba-<where the package is, 8 hex>-<its compiled sources, 16 hex>."""
    where = hashlib.sha256(str(package_dir.resolve()).encode()).hexdigest()[:8]
    return f"numba-{where}-{sources_digest[:16]}"


def _prune(base: str, keep: str) -> None:
    """Drop caches compiled from other versions of this installation's sources, and those of
    the earlier one-name-for-all layout (numba-<16 hex>); other installations' stay."""
    import shutil
    mine = keep.rsplit("-", 1)[0] + "-"
    try:
        for entry in os.scandir(base):
            old_layout = entry.name.startswith("numba-") and entry.name.count("-") == 1
            if entry.name != keep and (entry.name.startswith(mine) or old_layout):
                shutil.rmtree(entry.path, ignore_errors=True)
    except OSError:
        pass
