"""The numba cache directory: named by installation and sources; a checkout prunes only its
own earlier caches (and the old one-name layout), never another installation's."""
from __future__ import annotations

from pathlib import Path

from flowscope._jit import _prune, cache_name


def test_cache_name_differs_by_installation_and_by_sources(tmp_path):
    a, b = tmp_path / "a" / "flowscope", tmp_path / "b" / "flowscope"
    assert cache_name(a, "1" * 64) != cache_name(b, "1" * 64)
    assert cache_name(a, "1" * 64) != cache_name(a, "2" * 64)
    assert cache_name(a, "1" * 64) == cache_name(a, "1" * 64 + "ignored")


def test_prune_keeps_other_installations_caches(tmp_path):
    here = tmp_path / "checkout" / "flowscope"
    keep = cache_name(here, "3" * 64)
    mine_old = cache_name(here, "1" * 64)
    other = cache_name(tmp_path / "elsewhere" / "flowscope", "2" * 64)
    old_layout = "numba-0123456789abcdef"
    for name in (keep, mine_old, other, old_layout, "unrelated"):
        (tmp_path / "base" / name).mkdir(parents=True)
    _prune(str(tmp_path / "base"), keep=keep)
    assert sorted(p.name for p in Path(tmp_path / "base").iterdir()) == sorted([keep, other, "unrelated"])


def test_prune_of_a_missing_base_is_quiet(tmp_path):
    _prune(str(tmp_path / "absent"), keep=cache_name(tmp_path, "0" * 64))
