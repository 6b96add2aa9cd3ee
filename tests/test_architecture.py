"""The layers of the package, checked on its source: imports run one way.

Every import inside ``kaudit/`` counts, function-level ones included, and so does an import of
the package's own front door (``from . import load``). Two rules:

1. no import circle among kaudit's modules;
2. each module imports only from its own layer or the layers below it (docs/development.md):
   leaves < storage < keras < checkpoint < readers < core < report < front (cli, testing, ...).
"""

from __future__ import annotations

import ast
from pathlib import Path

from .conftest import ROOT

PKG = ROOT / "kaudit"

#: Modules that import nothing of kaudit but each other (the vocabulary everybody shares).
LEAVES = {
    "kaudit.errors",
    "kaudit.paths",
    "kaudit.schema",
    "kaudit.progress",
    "kaudit._version",
    "kaudit.views",
    "kaudit._io",
    "kaudit._gc",
}
#: The front door and the command line sit above everything.
FRONT = {"kaudit", "kaudit.__main__", "kaudit.cli", "kaudit.testing", "kaudit._watchdog"}

RANKS = {"leaf": 0, "storage": 1, "keras": 2, "checkpoint": 3, "readers": 4, "core": 5, "report": 6, "front": 7}


def layer(mod: str) -> str:
    if mod in LEAVES:
        return "leaf"
    if mod in FRONT:
        return "front"
    if mod == "kaudit.checkpoint":
        return "checkpoint"
    parts = mod.split(".")
    if len(parts) > 2 and parts[1] in ("storage", "keras", "readers", "report"):
        return parts[1]
    if mod in ("kaudit.storage", "kaudit.keras", "kaudit.readers", "kaudit.report"):
        return parts[1]
    return "core"


def modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        name = ".".join(p.relative_to(ROOT).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = p
    return out


def imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the kaudit modules it imports anywhere in its source."""
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        package = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                stem = base + (node.module.split(".") if node.module else [])
                names = [".".join([*stem, a.name]) for a in node.names] + [".".join(stem)]
                names = [n for n in names if n in mods][:1] or [".".join(stem)]
            else:
                continue
            for name in names:
                while name and name not in mods and "." in name:
                    name = name.rsplit(".", 1)[0]
                if name in mods and name != mod:
                    graph[mod].add(name)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    x = stack.pop()
                    on.discard(x)
                    comp.append(x)
                    if x == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_the_checker_sees_a_circle_and_a_function_level_import(tmp_path):
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []
    mods = {"kaudit": tmp_path / "__init__.py", "kaudit.x": tmp_path / "x.py", "kaudit.y": tmp_path / "y.py"}
    mods["kaudit"].write_text("")
    mods["kaudit.x"].write_text("def f():\n    from . import y\n")
    mods["kaudit.y"].write_text("from . import load\n")
    assert imports(mods) == {"kaudit": set(), "kaudit.x": {"kaudit.y"}, "kaudit.y": {"kaudit"}}


def test_no_import_circle_inside_kaudit():
    found = circles(imports(modules()))
    assert found == [], "import circles: " + "; ".join(" <-> ".join(c) for c in found)


def test_imports_run_down_the_layers():
    graph = imports(modules())
    upward = sorted(
        f"{m} ({layer(m)}) imports {t} ({layer(t)})"
        for m, ts in graph.items()
        for t in ts
        if RANKS[layer(t)] > RANKS[layer(m)]
    )
    assert upward == []


def test_reports_never_touch_files():
    """Renderers take results: no reader, no storage, no file-reading core module below them."""
    graph = imports(modules())
    readers_of_files = {m for m in graph if layer(m) in ("storage", "readers")} | {"kaudit.montages"}
    bad = sorted(f"{m} -> {t}" for m, ts in graph.items() if layer(m) == "report" for t in ts if t in readers_of_files)
    assert bad == []
