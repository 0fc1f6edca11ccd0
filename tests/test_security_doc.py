"""docs/security.md names the test of each protection: those tests exist, and the README's
privacy paragraph links to the threat model."""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "security.md"


def named_tests() -> set[tuple[str, str]]:
    return set(re.findall(r"(tests/[\w/]+\.py)::(\w+)", DOC.read_text()))


def test_every_test_the_threat_model_names_exists():
    named = named_tests()
    assert len(named) >= 30
    missing = []
    for path, name in sorted(named):
        tree = ast.parse((ROOT / path).read_text())
        if name not in {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}:
            missing.append(f"{path}::{name}")
    assert missing == []


def test_the_readme_privacy_paragraph_links_the_threat_model():
    readme = (ROOT / "README.md").read_text()
    privacy = readme[readme.index("**Privacy of our own processing**"):]
    privacy = privacy[:privacy.index("\n- **")]
    assert "docs/security.md" in privacy
