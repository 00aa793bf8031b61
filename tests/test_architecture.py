"""The import graph of pydelta: arrows point down only (docs/ARCHITECTURE.md).

Walks every module of the package with ``ast`` (imports inside functions
count too) and fails on an import circle, on an import of the package root
from inside the package, and on an arrow pointing the wrong way between the
layers (formats and backends never reach up into the drivers, sync or the
CLI; the model store never imports sync).
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set

ROOT = Path(__file__).resolve().parent.parent / "pydelta"
PKG = "pydelta"


def _modules() -> Dict[str, Path]:
    mods = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        mods[".".join(parts)] = path
    return mods


MODULES = _modules()
#: The compiled C core (built from csrc/, not a .py file): a leaf.
COMPILED = {"pydelta._core"}


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _resolve(importer: str, level: int, module: str) -> str:
    if not level:
        return module
    base = importer.split(".")
    if not _is_package(importer):
        base = base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def _explicit(name: str) -> Set[str]:
    """The pydelta modules ``name`` imports, as written."""
    tree = ast.parse(MODULES[name].read_text(), str(MODULES[name]))
    out: Set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(name, node.level, node.module or "")
            # "from pkg import sub" imports the submodule pkg.sub
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names
            ]
        else:
            continue
        for t in targets:
            if t in COMPILED:
                continue
            while t and t not in MODULES and "." in t:
                t = t.rsplit(".", 1)[0]
            if t in MODULES or t == PKG:
                out.add(t)
    out.discard(name)
    return out


def _graph() -> Dict[str, Set[str]]:
    """Explicit imports, plus the packages they load on the way (importing
    pydelta.a.b runs pydelta/a/__init__ first), except the importer's own."""
    graph = {}
    for name in MODULES:
        edges = set()
        for t in _explicit(name):
            edges.add(t)
            parts = t.split(".")
            for i in range(2, len(parts)):
                parent = ".".join(parts[:i])
                if not (name == parent or name.startswith(parent + ".")):
                    edges.add(parent)
        edges.discard(PKG)  # the root is checked on its own, below
        graph[name] = edges
    return graph


def _cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on: Set[str] = set()
    found: List[List[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_modules_found():
    assert {"pydelta", "pydelta.cli", "pydelta.formats.native", "pydelta.sync.client"} <= set(
        MODULES
    )


def test_no_import_circle():
    assert _cycles(_graph()) == []


def test_nothing_imports_the_package_root():
    offenders = sorted(n for n in MODULES if n != PKG and PKG in _explicit(n))
    assert offenders == []


def _reaches(name: str, prefixes: tuple) -> List[str]:
    return sorted(t for t in _explicit(name) if t in prefixes or t.startswith(prefixes))


LOWER = ("pydelta.formats", "pydelta.backends")
UPPER = (
    "pydelta.cli",
    "pydelta.sync",
    "pydelta.store",
    "pydelta.signature",
    "pydelta.delta",
    "pydelta.patch",
    "pydelta.info",
    "pydelta._io",
)


def test_arrows_point_down():
    wrong = {
        n: _reaches(n, tuple(p + "." for p in UPPER) + UPPER)
        for n in MODULES
        if n.startswith(LOWER)
    }
    assert {n: t for n, t in wrong.items() if t} == {}


def test_store_never_imports_sync():
    wrong = {
        n: _reaches(n, ("pydelta.sync", "pydelta.sync."))
        for n in MODULES
        if n.startswith("pydelta.store")
    }
    assert {n: t for n, t in wrong.items() if t} == {}


def test_the_checker_sees_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
