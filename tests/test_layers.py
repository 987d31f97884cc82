"""A house without circles: the package's layers, checked from the source.

Every module under ``src/p3m`` is parsed with :mod:`ast` (nothing is imported), and
every import of a p3m module is collected, those inside functions included and those
under ``if TYPE_CHECKING:`` left out. The nodes are the entries of ``LAYERS`` (mostly
the top-level packages and modules of p3m); each module belongs to the longest entry
that names it or a package above it. The tests assert that no import reaches a higher
layer, that the nodes form no cycle, and that ``p3m.options`` (from which every command
line parser is built) and the two base modules it consults, ``p3m.architectures`` and
``p3m.colours``, import neither numpy nor torch when they are imported.

The layers and the reason for each are drawn in docs/architecture.md ("Package layers").

Two rules of attribution:
- a package's lazy name table (``_EXPORTS = {"name": "module"}``, served by
  :func:`p3m.utils.lazy.lazy_attributes`) is strings, not imports; but
  ``from p3m import open_engine`` (or ``import p3m`` then ``p3m.open_engine``) is
  counted as an import of the module the table names for it;
- ``from p3m.x import y`` counts as an import of ``p3m.x.y`` when that is a module.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

#: Lowest first. A module may import modules of its own layer or of lower layers only.
LAYERS: tuple[tuple[str, ...], ...] = (
    # 0: base. No numpy or torch where options.py reaches at import time.
    ("p3m", "p3m.errors", "p3m.options", "p3m.utils", "p3m.render", "p3m.architectures", "p3m.colours"),
    # 1: files, networks and data the inference builds on.
    ("p3m.io", "p3m.models", "p3m.reference", "p3m.evaluation", "p3m.data", "p3m.weights", "p3m.export"),
    ("p3m.inference",),
    ("p3m.privacy",),
    ("p3m.pipeline",),
    ("p3m.video", "p3m.cluster", "p3m.training"),
    ("p3m.jobs",),
    ("p3m.api", "p3m.serve", "p3m.demo", "p3m.doctor"),
    ("p3m.cli", "p3m.__main__"),
)
LAYER = {node: number for number, nodes in enumerate(LAYERS) for node in nodes}

#: What p3m.options (and the base modules it consults) must not import at import time.
HEAVY = ("numpy", "torch")


class Import(NamedTuple):
    source: str     # the importing module, e.g. "p3m.jobs.matte"
    path: str       # its file, relative to the repository root
    line: int
    target: str     # the imported module, e.g. "p3m.pipeline"
    at_import: bool  # runs when the importing module is imported (not inside a function)

    def where(self) -> str:
        return f"{self.path}:{self.line}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


@lru_cache(maxsize=None)
def _sources() -> dict[str, tuple[Path, ast.Module]]:
    """Every p3m module: name -> (file, parsed tree)."""
    return {_module_name(path): (path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
            for path in sorted((SRC / "p3m").rglob("*.py"))}


@lru_cache(maxsize=None)
def _lazy_tables() -> dict[str, dict[str, str]]:
    """package -> its ``_EXPORTS`` table (name -> module), for the packages that have one."""
    tables = {}
    for name, (path, tree) in _sources().items():
        if path.name != "__init__.py":
            continue
        for node in tree.body:
            if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict)
                    and any(isinstance(t, ast.Name) and t.id == "_EXPORTS" for t in node.targets)):
                tables[name] = {k.value: v.value for k, v in zip(node.value.keys, node.value.values)
                                if isinstance(k, ast.Constant) and isinstance(v, ast.Constant)}
    return tables


def _resolve(package: str, name: str) -> str:
    """What ``from package import name`` (or ``package.name``) imports."""
    if f"{package}.{name}" in _sources():
        return f"{package}.{name}"
    return _lazy_tables().get(package, {}).get(name, package)


def _imports_of(module: str, path: Path, tree: ast.Module) -> list[Import]:
    found: list[Import] = []
    here = module if path.name == "__init__.py" else module.rpartition(".")[0]
    relative = str(path.relative_to(SRC.parent))
    binds_p3m = False  # `import p3m` or `import p3m.x` binds the name p3m

    def add(line: int, target: str, at_import: bool) -> None:
        if target == "p3m" or target.startswith("p3m."):
            found.append(Import(module, relative, line, target, at_import))

    def visit(node: ast.AST, at_import: bool) -> None:
        for child in ast.iter_child_nodes(node):
            visit_statement(child, at_import)

    def visit_statement(node: ast.AST, at_import: bool) -> None:
        nonlocal binds_p3m
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(node.lineno, alias.name, at_import)
                binds_p3m |= alias.asname is None and alias.name.split(".")[0] == "p3m"
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")[: len(here.split(".")) - node.level + 1]
                package = ".".join(base + ([node.module] if node.module else []))
            else:
                package = node.module or ""
            for alias in node.names:
                add(node.lineno, package if alias.name == "*" else _resolve(package, alias.name), at_import)
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            for stmt in node.orelse:
                visit_statement(stmt, at_import)
        else:
            inner = at_import and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            visit(node, inner)

    visit(tree, True)
    if binds_p3m:  # p3m.open_engine: the module p3m's lazy table names for it
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id == "p3m" and _resolve("p3m", node.attr) != "p3m"):
                add(node.lineno, _resolve("p3m", node.attr), False)
    return found


@lru_cache(maxsize=None)
def all_imports() -> tuple[Import, ...]:
    """Each import once (``from p3m.errors import A, B`` is one)."""
    found = (imp for name, (path, tree) in _sources().items() for imp in _imports_of(name, path, tree))
    return tuple(dict.fromkeys(found))


def node_of(module: str) -> str | None:
    """The entry of LAYERS that module belongs to (the longest that names it or a parent)."""
    if module == "p3m":
        return "p3m"
    names = [n for n in LAYER if n != "p3m" and (module == n or module.startswith(n + "."))]
    return max(names, key=len) if names else None


def _crossings() -> list[tuple[str, str, Import]]:
    """(importer's node, imported node, import) for imports between different nodes."""
    pairs = []
    for imp in all_imports():
        source, target = node_of(imp.source), node_of(imp.target)
        if source and target and source != target:
            pairs.append((source, target, imp))
    return pairs


def _strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the strongly connected components of the graph."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            components.append(sorted(component))

    for v in sorted(set(edges) | {w for ws in edges.values() for w in ws}):
        if v not in index:
            connect(v)
    return components


def _shortest_cycle(component: list[str], edges: dict[str, set[str]]) -> list[str]:
    """A shortest closed path through the component: [a, b, ..., a]."""
    inside = set(component)
    best: list[str] = []
    for start in component:
        paths = {start: [start]}
        todo = [start]
        while todo and not (best and len(paths[todo[0]]) >= len(best)):
            v = todo.pop(0)
            for w in sorted(edges[v] & inside):
                if w == start:
                    if not best or len(paths[v]) + 1 < len(best):
                        best = paths[v] + [start]
                elif w not in paths:
                    paths[w] = paths[v] + [w]
                    todo.append(w)
    return best


def test_every_module_has_a_layer():
    unplaced = sorted({m for m in _sources() if node_of(m) is None}
                      | {f"{imp.target} (imported at {imp.where()})" for imp in all_imports() if node_of(imp.target) is None})
    assert not unplaced, ("modules that belong to no entry of LAYERS in tests/test_layers.py (add them, and to "
                          "docs/architecture.md):\n  " + "\n  ".join(unplaced))


def test_no_module_imports_a_higher_layer():
    offences = sorted(
        f"{imp.where()}: {imp.source} (layer {LAYER[source]}, {source}) imports {imp.target} "
        f"(layer {LAYER[target]}, {target}){'' if imp.at_import else ', inside a function'}"
        for source, target, imp in _crossings() if LAYER[target] > LAYER[source])
    assert not offences, (f"{len(offences)} import(s) reach a higher layer (see LAYERS; a module may import its own "
                          "layer or lower ones):\n  " + "\n  ".join(offences))


def test_no_import_cycle_between_packages():
    edges: dict[str, set[str]] = defaultdict(set)
    where: dict[tuple[str, str], list[Import]] = defaultdict(list)
    for source, target, imp in _crossings():
        edges[source].add(target)
        where[source, target].append(imp)
    tangles = [c for c in _strongly_connected(edges) if len(c) > 1]
    report = []
    for tangle in tangles:
        cycle = _shortest_cycle(tangle, edges)
        report.append(" -> ".join(cycle) + (f" (the tangle also holds {', '.join(sorted(set(tangle) - set(cycle)))})"
                                            if set(tangle) - set(cycle) else ""))
        for a, b in zip(cycle, cycle[1:]):
            report += [f"    {imp.where()}: {imp.source} imports {imp.target}" for imp in where[a, b]]
    assert not tangles, "the packages import each other in a circle:\n  " + "\n  ".join(report)


def _imported_at_import_time(start: str) -> dict[str, str]:
    """Every p3m module that importing ``start`` runs (parent packages included), with
    how it was reached."""
    by_source: dict[str, list[Import]] = defaultdict(list)
    for imp in all_imports():
        if imp.at_import:
            by_source[imp.source].append(imp)
    reached = {start: "start"}
    todo = [start]
    while todo:
        module = todo.pop()
        parts = module.split(".")
        following = [(".".join(parts[:i]), f"parent package of {module}") for i in range(1, len(parts))]
        for imp in by_source.get(module, ()):
            # a module named by a lazy table may not exist as written; fall back to its package
            target = imp.target
            while target not in _sources() and "." in target:
                target = target.rpartition(".")[0]
            following.append((target, f"{imp.where()}"))
        for target, how in following:
            if target in _sources() and target not in reached:
                reached[target] = how
                todo.append(target)
    return reached


def _heavy_imports_at_import_time(module: str) -> list[str]:
    path, tree = _sources()[module]
    relative = path.relative_to(SRC.parent)
    found = []

    def visit(nodes) -> None:
        for node in nodes:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(node, ast.If) and _is_type_checking(node.test):
                visit(node.orelse)
                continue
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            found.extend(f"{relative}:{node.lineno}: import {name}" for name in names if name.split(".")[0] in HEAVY)
            visit(ast.iter_child_nodes(node))

    visit(tree.body)
    return found


# p3m.options: every command line parser is built from it. It checks colours with
# p3m.colours and architecture
# names with p3m.architectures, while a command line is parsed.
@pytest.mark.parametrize("start", ["p3m.options", "p3m.colours", "p3m.architectures"])
def test_options_import_neither_numpy_nor_torch(start):
    reached = _imported_at_import_time(start)
    offences = [f"{line}  ({start} reaches {module} by: {reached[module]})"
                for module in sorted(reached) for line in _heavy_imports_at_import_time(module)]
    assert not offences, (f"importing {start} (p3m --help and every parser need it) would import "
                          f"{' or '.join(HEAVY)}:\n  " + "\n  ".join(offences))
