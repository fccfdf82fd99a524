"""The audit rules: one module per rule, registered explicitly in :data:`RULES`.

Each rule has a stable code (``FA101``) and a readable name (``stale``); users may select
rules by either. The registry refuses a duplicate code or name. A rule's module docstring is
its documentation (``auditor rules NAME`` prints it, with its options as TOML; ``docs/rules.md``
is generated from the registry by :mod:`auditor.rules._docs`). A rule reads only its own
options; helpers two rules share are in :mod:`auditor.rules._shared`, column helpers in
:mod:`auditor.vectors`.

Codes: ``FA1xx`` freshness, ``FA2xx`` syncs failing, ``FA3xx`` connections,
``FA4xx`` collection and data, ``FA5xx`` fleet-wide.
"""

from __future__ import annotations

from collections.abc import Iterable

from auditor.rules import (
    cross_type_skew,
    failed_after_success,
    first_sync_failed,
    history_window,
    needs_relink,
    never_linked,
    never_synced,
    not_collected,
    provider_incident,
    stale,
    stuck_sync,
    token_expiry_risk,
    unknown_status,
    validation_warning,
)
from auditor.rules._base import Rule, RuleContext, RuleOptions, Thresholds, TieredOptions

__all__ = [
    "RULES",
    "Rule",
    "RuleContext",
    "RuleOptions",
    "Thresholds",
    "TieredOptions",
    "get_rule",
    "make_registry",
]


def _check_coverage(rules: tuple[Rule, ...]) -> None:
    """Refuse a ``covered_by`` naming an unknown or fleet rule, or a cycle of coverage."""
    by_name = {r.name: r for r in rules}
    for rule in rules:
        for name in rule.covered_by:
            other = by_name.get(name)
            if other is None:
                raise ValueError(f"rule {rule.name} is covered by an unknown rule {name!r}")
            if "fleet" in (rule.scope, other.scope):
                raise ValueError(f"coverage is between partition rules: {rule.name} / {name}")
    state: dict[str, int] = {}  # 1: being visited, 2: done

    def visit(name: str, path: tuple[str, ...]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise ValueError("rules cover each other in a cycle: " + " <- ".join((*path, name)))
        state[name] = 1
        for other in by_name[name].covered_by:
            visit(other, (*path, name))
        state[name] = 2

    for rule in rules:
        visit(rule.name, ())


def make_registry(rules: Iterable[Rule]) -> tuple[Rule, ...]:
    """The rules as a tuple.

    Raises ``ValueError`` on a duplicate code or name, and on a ``covered_by`` that names an
    unknown rule or a fleet rule or that makes a cycle (rules covering each other would hide
    both findings).
    """
    seen: dict[str, Rule] = {}
    out = []
    for rule in rules:
        for key in (rule.code, rule.name):
            if key in seen:
                raise ValueError(f"duplicate rule {key!r}: {seen[key].name} and {rule.name}")
            seen[key] = rule
        out.append(rule)
    registry = tuple(out)
    _check_coverage(registry)
    return registry


RULES: tuple[Rule, ...] = make_registry(
    (
        stale.RULE,
        cross_type_skew.RULE,
        token_expiry_risk.RULE,
        history_window.RULE,
        failed_after_success.RULE,
        first_sync_failed.RULE,
        stuck_sync.RULE,
        never_synced.RULE,
        needs_relink.RULE,
        never_linked.RULE,
        unknown_status.RULE,
        not_collected.RULE,
        validation_warning.RULE,
        provider_incident.RULE,
    )
)

_BY_KEY: dict[str, Rule] = {k: r for r in RULES for k in (r.code, r.code.lower(), r.name)}


def get_rule(name_or_code: str) -> Rule:
    """The rule named ``name_or_code`` (a name such as ``stale`` or a code such as ``FA101``)."""
    key = name_or_code.strip()
    rule = _BY_KEY.get(key) or _BY_KEY.get(key.lower()) or _BY_KEY.get(key.replace("_", "-"))
    if rule is None:
        raise KeyError(name_or_code)
    return rule
