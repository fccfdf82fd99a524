"""Severity is stated once: only tiered rules write a ``severity`` column.

A rule with one severity leaves the column out and the engine fills ``default_severity`` (or
the configured override); a literal next to ``default_severity`` would silently win over a
change of the default. Checked on the source: only a tiered rule's module writes ``severity``
(a dict key or a keyword argument), computed with ``severity_of``.
"""

from __future__ import annotations

import ast
import importlib
import inspect

import pytest

from auditor.rules import RULES, Rule

TIERED = {"stale", "cross-type-skew", "token-expiry-risk", "stuck-sync"}


def _writes_severity(tree: ast.AST) -> list[ast.AST]:
    found: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            found += [v for k, v in zip(node.keys, node.values, strict=True)
                      if isinstance(k, ast.Constant) and k.value == "severity"]
        elif isinstance(node, ast.Call):
            found += [kw.value for kw in node.keywords if kw.arg == "severity"]
    return found


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_only_tiered_rules_write_a_severity(rule: Rule) -> None:
    module = importlib.import_module(rule.check.__module__)
    values = _writes_severity(ast.parse(inspect.getsource(module)))
    if rule.name not in TIERED:
        assert values == [], f"{rule.name} writes a severity; leave it to default_severity"
        return
    assert values, f"{rule.name} is tiered but writes no severity"
    assert "severity_of(" in inspect.getsource(module), f"{rule.name}: use severity_of"
