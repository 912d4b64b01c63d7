"""The package's modules import one another without cycles.

Arrows point from the CLI down to the stages: a lower module never imports an
upper one, not even lazily inside a function. Every ``evalkit`` module is parsed
(nothing is imported), every import statement found anywhere in it becomes an
arrow (``import evalkit.x``, ``from evalkit.x import y``, ``from . import x``,
``from .x import y``), and the graph must have no cycle of any length.
"""

from __future__ import annotations

import ast
from pathlib import Path

import evalkit

PACKAGE_DIR = Path(evalkit.__file__).resolve().parent

#: module -> {imported module: (file, line) of the first import of it}
Graph = dict[str, dict[str, tuple[str, int]]]


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _known(name: str, modules: set[str]) -> str | None:
    """``name`` or the nearest enclosing module of the package (``evalkit.x.f`` -> ``evalkit.x``)."""
    while name not in modules and "." in name:
        name = name.rsplit(".", 1)[0]
    return name if name in modules else None


def import_graph(package_dir: Path = PACKAGE_DIR) -> Graph:
    """Which module of the package imports which, from the source of every ``.py`` file below it."""
    package_dir = Path(package_dir)
    files = {_module_name(path, package_dir): path for path in sorted(package_dir.rglob("*.py"))}
    modules = set(files)
    graph: Graph = {}
    for module, path in files.items():
        arrows = graph.setdefault(module, {})
        here = path.relative_to(package_dir.parent).as_posix()
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            targets: list[str | None] = []
            if isinstance(node, ast.Import):
                targets = [_known(alias.name, modules) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = module if is_package else module.rpartition(".")[0]
                    for _ in range(node.level - 1):
                        base = base.rpartition(".")[0]
                    source = f"{base}.{node.module}" if node.module else base
                else:
                    source = node.module or ""
                # ``from pkg import sub`` imports the submodule ``pkg.sub``; ``from pkg import name``, ``pkg``.
                targets = [_known(f"{source}.{alias.name}", modules) if f"{source}.{alias.name}" in modules
                           else _known(source, modules) for alias in node.names]
            for target in targets:
                if target is not None and target != module:
                    arrows.setdefault(target, (here, node.lineno))
    return graph


def find_cycles(graph: Graph) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) for every group of modules that import one another in a circle.

    The groups are the strongly connected components of the graph (Tarjan); each
    cycle is the shortest way round from the group's first module.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)

    cycles = []
    for group in sorted(groups, key=min):
        start = min(group)
        paths = {start: [start]}
        frontier = [start]
        cycle = None
        while frontier and cycle is None:
            following = []
            for node in frontier:
                for succ in sorted(graph.get(node, ())):
                    if succ == start:
                        cycle = paths[node] + [start]
                        break
                    if succ in group and succ not in paths:
                        paths[succ] = paths[node] + [succ]
                        following.append(succ)
                if cycle is not None:
                    break
            frontier = following
        cycles.append(cycle)
    return cycles


def describe(cycle: list[str], graph: Graph) -> str:
    """``a -> b -> a`` with where each arrow is written."""
    where = ", ".join(f"{a} -> {b} at {graph[a][b][0]}:{graph[a][b][1]}" for a, b in zip(cycle, cycle[1:]))
    return f"{' -> '.join(cycle)}  ({where})"


def test_evalkit_has_no_import_cycle():
    graph = import_graph()
    cycles = find_cycles(graph)
    assert not cycles, ("import cycle(s) in evalkit; move the shared code into a lower module:\n"
                        + "\n".join(describe(cycle, graph) for cycle in cycles))


def test_graph_sees_every_kind_of_import():
    """The graph is built from the real package: top-level, lazy, relative and absolute imports."""
    graph = import_graph()
    assert "evalkit.readers" in graph and "evalkit" in graph
    assert "evalkit.readers" in graph["evalkit.checkreport"]  # from .readers import ... (top level)
    assert "evalkit.pipeline" in graph["evalkit.cli"]  # from .pipeline import run (inside main)
    assert "evalkit.config" in graph["evalkit.simulate"]  # from evalkit.config import ...
    assert "evalkit" in graph["evalkit.pipeline"]  # from . import __version__


def _package(root: Path, files: dict[str, str]) -> Path:
    package = root / "evalkit"
    for name, text in files.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return package


def test_a_cycle_of_any_length_is_found_and_named(tmp_path):
    package = _package(tmp_path, {
        "__init__.py": "",
        "top.py": "from . import middle\n",
        "middle.py": "import os\nfrom .low import f\n",
        "low.py": "def f():\n    import evalkit.bottom.deep\n",
        "bottom/__init__.py": "",
        "bottom/deep.py": "from .. import top\n",
        "side.py": "from evalkit.top import x\n",
    })
    graph = import_graph(package)
    assert graph["evalkit.low"] == {"evalkit.bottom.deep": ("evalkit/low.py", 2)}
    cycles = find_cycles(graph)
    assert cycles == [["evalkit.bottom.deep", "evalkit.top", "evalkit.middle", "evalkit.low",
                       "evalkit.bottom.deep"]]
    assert describe(cycles[0], graph).startswith(
        "evalkit.bottom.deep -> evalkit.top -> evalkit.middle -> evalkit.low -> evalkit.bottom.deep  "
        "(evalkit.bottom.deep -> evalkit.top at evalkit/bottom/deep.py:1,")


def test_no_cycle_in_a_layered_package(tmp_path):
    package = _package(tmp_path, {
        "__init__.py": "__version__ = '1'\n",
        "cli.py": "def main():\n    from .pipeline import run\n",
        "pipeline.py": "from . import __version__\nfrom .stage import step\nimport evalkit.stage\n",
        "stage.py": "from evalkit import __version__\n",
    })
    graph = import_graph(package)
    assert graph["evalkit.pipeline"] == {"evalkit": ("evalkit/pipeline.py", 1),
                                         "evalkit.stage": ("evalkit/pipeline.py", 2)}
    assert find_cycles(graph) == []
