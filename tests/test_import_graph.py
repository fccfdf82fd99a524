"""The import graph of ``auditor`` has no cycle, and the rules are a leaf of it.

Read from the source with :mod:`ast` (no import is executed): every ``import``/``from ...
import`` of an ``auditor`` module, at module level or inside a function, is an edge. Imports
under ``if TYPE_CHECKING:`` count too, except those of the ``auditor`` package itself: its
``__init__`` is the public facade and names every module for the type checker only.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "auditor"

#: What a rule module may import from ``auditor``: the rule contract, the shared rule helpers,
#: the column helpers and the leaf modules they build on. Never the config, the engine, the
#: report, or another rule.
RULE_MAY_IMPORT = frozenset(
    {
        "auditor.constants",
        "auditor.findings",
        "auditor.links",
        "auditor.rules._base",
        "auditor.rules._shared",
        "auditor.safe_text",
        "auditor.vectors",
    }
)
#: Modules of the rules package that are not rules.
NOT_RULES = frozenset({"auditor.rules", "auditor.rules._base", "auditor.rules._shared",
                       "auditor.rules._docs"})


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _is_type_checking(node: ast.If) -> bool:
    return "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(module: str) -> Iterator[tuple[str, bool]]:
    """(imported auditor module, whether only under TYPE_CHECKING) for each import."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    def walk(nodes: Sequence[ast.AST], typing_only: bool) -> Iterator[tuple[str, bool]]:
        for node in nodes:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if (target := _resolve(alias.name)) is not None:
                        yield target, typing_only
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package
                    for _ in range(node.level - 1):
                        parent = parent.rpartition(".")[0]
                    base = f"{parent}.{base}" if base else parent
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    target = _resolve(full) if full in MODULES else _resolve(base)
                    if target is not None:
                        yield target, typing_only
            for field in ("body", "orelse", "finalbody", "handlers"):
                children = getattr(node, field, None)
                if isinstance(children, list):
                    only = typing_only or (
                        field == "body" and isinstance(node, ast.If) and _is_type_checking(node)
                    )
                    stmts = [c for c in children if isinstance(c, ast.stmt | ast.excepthandler)]
                    yield from walk(stmts, only)

    tree = ast.parse(path.read_text(encoding="utf-8"))
    yield from walk(tree.body, False)


def _graph(*, typing_imports: bool) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module in MODULES:
        edges = set()
        for target, typing_only in _imports(module):
            if typing_only and (not typing_imports or module == "auditor"):
                continue
            if target != module:
                edges.add(target)
        graph[module] = edges
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


@pytest.mark.parametrize("typing_imports", [False, True], ids=["runtime", "with-type-checking"])
def test_the_import_graph_has_no_cycle(typing_imports: bool) -> None:
    assert _cycles(_graph(typing_imports=typing_imports)) == []


def test_the_checker_sees_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_rules_read_only_the_rule_contract_and_helpers() -> None:
    rules = [m for m in MODULES if m.startswith("auditor.rules.") and m not in NOT_RULES]
    assert "auditor.rules.stale" in rules
    for module in [*rules, "auditor.rules._base", "auditor.rules._shared", "auditor.vectors"]:
        imported = {target for target, _ in _imports(module)} - {module}
        allowed = RULE_MAY_IMPORT if module != "auditor.vectors" else frozenset()
        assert imported <= allowed, f"{module} imports {sorted(imported - allowed)}"


# ------------------------------------------------------------------------ layers


def imports_of(module: str, *, type_checking: bool = False) -> set[str]:
    """The ``auditor`` modules ``module`` imports (``type_checking``: annotations too)."""
    return {t for t, only in _imports(module) if type_checking or not only} - {module}


def _packages(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph between packages (``auditor.report``, ...); the root re-exports lazily and is
    nobody's layer."""
    out: dict[str, set[str]] = {}

    def unit(m: str) -> str:
        return ".".join(m.split(".")[:2])

    for module, targets in graph.items():
        a = unit(module)
        out.setdefault(a, set())
        out[a] |= {unit(t) for t in targets if unit(t) not in (a, "auditor") and a != "auditor"}
    return out


@pytest.mark.parametrize("typing_imports", [False, True], ids=["runtime", "with-type-checking"])
def test_no_cycle_between_packages(typing_imports: bool) -> None:
    assert _cycles(_packages(_graph(typing_imports=typing_imports))) == []


def test_config_and_report_do_not_import_each_other() -> None:
    config = imports_of("auditor.config", type_checking=True)
    assert not {m for m in config if m.startswith("auditor.report")}
    report = {m for m in MODULES if m.startswith("auditor.report")}
    assert not {m for r in report for m in imports_of(r) if m.startswith("auditor.config")}


#: Modules that import nothing of ``auditor``: what a leaf may build on.
LEAVES = ("auditor.logs", "auditor.safe_text")


def test_the_email_settings_are_a_leaf() -> None:
    # The findings' severities, secret registration (the SMTP password) and one-line text
    # validation: each a leaf itself, so config and report still meet only here.
    # The route filters (shared with the notifications) are a leaf on the same terms.
    assert imports_of("auditor.email_settings", type_checking=True) == {
        "auditor.findings", "auditor.route_filters", *LEAVES
    }
    for settings in ("auditor.route_filters", "auditor.notify_settings"):
        assert imports_of(settings, type_checking=True) <= {
            "auditor.findings", "auditor.route_filters", *LEAVES
        }, settings
    for leaf in LEAVES:
        assert imports_of(leaf, type_checking=True) == set(), leaf


def test_nothing_the_auditor_runs_imports_the_fakes() -> None:
    product = {m for m in MODULES if not m.startswith("auditor.testing")}
    assert not {
        (m, t) for m in product for t in imports_of(m, type_checking=True)
        if t.startswith("auditor.testing")
    }
