"""The package's import structure: leaves stay leaves and no two modules import each other.

An import inside a function body that closes a circle only hides it (the circle is still
there, and breaks whichever side is imported first once someone hoists the import), so the
graph below counts imports at any depth; only `if TYPE_CHECKING:` blocks are left out.
"""
from __future__ import annotations

import ast
import json
import subprocess
import sys

from conftest import ROOT

PACKAGE = ROOT / "flowscope"


def _modules() -> dict[str, ast.Module]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = ast.parse(path.read_text(), str(path))
    return out


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imported(tree: ast.Module, known: set[str]) -> set[str]:
    """Package modules `tree` imports anywhere but under `if TYPE_CHECKING:`; `from a import b`
    names module a.b when that is a module, else a."""
    def module_of(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    found: set[str] = set()
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if _is_type_checking(child):
                stack.extend(child.orelse)
                continue
            if isinstance(child, ast.ImportFrom) and child.level == 0 and (child.module or "").startswith("flowscope"):
                found.update(module_of(f"{child.module}.{a.name}") for a in child.names)
            elif isinstance(child, ast.Import):
                found.update(module_of(a.name) for a in child.names if a.name.startswith("flowscope"))
            stack.append(child)
    found.discard(None)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, edges = work[-1]
            w = next(edges, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_the_cycle_finder_finds_a_cycle_hidden_in_a_function():
    tree_a = ast.parse("def f():\n    from flowscope.b import x\n")
    tree_b = ast.parse("from flowscope.a import y\nfrom typing import TYPE_CHECKING\n"
                       "if TYPE_CHECKING:\n    from flowscope.c import z\n")
    tree_c = ast.parse("from flowscope.b import w\n")
    known = {"flowscope.a", "flowscope.b", "flowscope.c"}
    graph = {name: _imported(t, known) - {name} for name, t in
             (("flowscope.a", tree_a), ("flowscope.b", tree_b), ("flowscope.c", tree_c))}
    assert graph["flowscope.b"] == {"flowscope.a"}  # the TYPE_CHECKING import does not count
    assert _cycles(graph) == [["flowscope.a", "flowscope.b"]]


def test_no_module_imports_one_that_imports_it_back():
    modules = _modules()
    known = set(modules)
    graph = {name: _imported(tree, known) - {name} for name, tree in modules.items()}
    assert len(graph) > 80 and graph["flowscope.pipeline"]  # the walk found the package
    assert _cycles(graph) == []


def _loaded_after(statement: str) -> list[str]:
    code = f"import sys, json; {statement}; print(json.dumps(sorted(m for m in sys.modules if m.startswith('flowscope'))))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(r.stdout)


def test_settings_and_version_are_leaves():
    """Settings and __version__ import nothing from the stages (flows, geo, report...), and
    neither does the package root: `import flowscope` stays cheap, the stages load on use."""
    leaves = ["flowscope", "flowscope._version", "flowscope.errors", "flowscope.progress", "flowscope.settings"]
    assert _loaded_after("import flowscope.settings") == leaves
    assert _loaded_after("import flowscope") == leaves
    assert _loaded_after("import flowscope._version") == leaves  # the package root comes first
