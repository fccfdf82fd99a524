"""The package's import graph: no cycles, config and report apart, fakes out of the product.

Read from the source with :mod:`ast` (nothing is imported): every ``import`` of an ``auditor``
module, at module level or inside a function (a lazy import is still an edge), except those
under ``if TYPE_CHECKING:`` (annotations only, never run).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "auditor"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in ROOT.rglob("*.py")}


def _imports(node: ast.AST, package: str, *, type_checking: bool) -> Iterator[str]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            if type_checking:
                yield from _imports(child, package, type_checking=type_checking)
            else:
                for stmt in child.orelse:
                    yield from _imports(ast.Module([stmt], []), package, type_checking=False)
            continue
        if isinstance(child, ast.Import):
            yield from (a.name for a in child.names if a.name.startswith("auditor"))
        elif isinstance(child, ast.ImportFrom):
            if child.level:
                base = package.split(".")[: len(package.split(".")) - child.level + 1]
                target = ".".join([*base, *([child.module] if child.module else [])])
            else:
                target = child.module or ""
            if target.startswith("auditor"):
                for alias in child.names:
                    full = f"{target}.{alias.name}"
                    yield full if full in MODULES else target
        else:
            yield from _imports(child, package, type_checking=type_checking)


def imports_of(module: str, *, type_checking: bool = False) -> set[str]:
    """The ``auditor`` modules that ``module`` imports."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return set(_imports(tree, package, type_checking=type_checking))


def _unit(module: str, depth: int) -> str:
    return ".".join(module.split(".")[:depth])


def _cycles(depth: int, *, type_checking: bool = False) -> list[list[str]]:
    """Strongly connected components (more than one unit) of the graph of units."""
    graph: dict[str, set[str]] = {}
    for module in MODULES:
        a = _unit(module, depth)
        for target in imports_of(module, type_checking=type_checking):
            b = _unit(target, depth)
            # The package root re-exports lazily (module __getattr__); it is nobody's layer.
            if a != b and "auditor" not in (a, b):
                graph.setdefault(a, set()).add(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


@pytest.mark.parametrize("depth", [2, 3], ids=["packages", "modules"])
def test_the_import_graph_has_no_cycle(depth: int) -> None:
    assert _cycles(depth) == []


def test_no_cycle_through_the_reports_even_in_annotations() -> None:
    # The config <-> rules edge that is left (rules annotate with AuditConfig) is the rules'
    # part of issue 11; the reports are in no cycle, not even for the type checker.
    for depth in (2, 3):
        for component in _cycles(depth, type_checking=True):
            assert not [m for m in component if m.startswith("auditor.report")], component


def test_config_and_report_do_not_import_each_other() -> None:
    config = imports_of("auditor.config", type_checking=True)
    assert not {m for m in config if m.startswith("auditor.report")}
    report = {m for m in MODULES if m.startswith("auditor.report")}
    assert not {m for r in report for m in imports_of(r) if m.startswith("auditor.config")}


#: Modules that import nothing of ``auditor`` but the snapshot schema: what a leaf may use.
LEAVES = ("auditor.logs", "auditor.safe_text")


def test_the_email_settings_are_a_leaf() -> None:
    # The findings' severities, secret registration (the SMTP password) and one-line text
    # validation: each a leaf itself, so config and report still meet only here.
    assert imports_of("auditor.email_settings", type_checking=True) == {
        "auditor.findings", *LEAVES
    }
    for leaf in LEAVES:
        assert imports_of(leaf, type_checking=True) == set(), leaf


def test_nothing_the_auditor_runs_imports_the_fakes() -> None:
    product = {m for m in MODULES if not m.startswith("auditor.testing")}
    assert not {
        (m, t) for m in product for t in imports_of(m, type_checking=True)
        if t.startswith("auditor.testing")
    }
