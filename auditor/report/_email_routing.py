"""Email routing: which findings each audience of the digest sees.

The ``[email]`` table (:class:`~auditor.email_settings.EmailSettings`) names recipients: ``to``
for everything, shorthand routes per severity or platform, general routes with several filters.
:func:`plan_deliveries` turns them into one :class:`Delivery` per distinct audience, each with
the :class:`Scope` (union of its routes) that cuts the audit down to its part.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pandas as pd

from auditor.email_settings import EmailRoute, EmailSettings
from auditor.result import AuditResult

from ._view import unsnoozed

__all__ = ["Clause", "Delivery", "Scope", "plan_deliveries"]

#: One clause of a scope: (severities, platforms, rules), ``None`` = any.
Clause = tuple[frozenset[str] | None, frozenset[str] | None, frozenset[str] | None]


@dataclass(frozen=True)
class Scope:
    """Which findings an audience sees: the union of its routes' clauses; no clause = all."""

    clauses: tuple[Clause, ...] = ()

    @property
    def everything(self) -> bool:
        return not self.clauses or any(c == (None, None, None) for c in self.clauses)

    def mask(self, frame: pd.DataFrame) -> pd.Series:
        if self.everything:
            return pd.Series(True, index=frame.index)
        out = pd.Series(False, index=frame.index)
        for clause in self.clauses:
            part = pd.Series(True, index=frame.index)
            for column, allowed in zip(("severity", "platform", "rule"), clause, strict=True):
                if allowed is not None:
                    col = frame[column].astype("string")
                    part &= col.isin(sorted(allowed)).fillna(False).astype(bool)
            out |= part
        return out

    def label(self) -> str | None:
        """People's words for the scope (``None`` for everything)."""
        if self.everything:
            return None
        parts = []
        for sev, plat, rules in self.clauses:
            bits = [
                f"{name} {', '.join(sorted(vals))}"
                for name, vals in (("severity", sev), ("platform", plat), ("rule", rules))
                if vals is not None
            ]
            parts.append(" & ".join(bits))
        return " or ".join(parts)

    def apply(self, result: AuditResult) -> AuditResult:
        """``result`` cut down to this scope."""
        if self.everything:
            return result
        return replace(
            result,
            findings=result.findings.loc[self.mask(result.findings)].reset_index(drop=True),
            resolved=result.resolved.loc[self.mask(result.resolved)].reset_index(drop=True),
        )


@dataclass(frozen=True)
class Delivery:
    """One message to send: who receives it and what part of the audit it covers."""

    recipients: tuple[str, ...]
    scope: Scope = field(default_factory=Scope)


def _clause(route: EmailRoute) -> Clause:
    def fs(values: list[str] | None) -> frozenset[str] | None:
        return None if values is None else frozenset(values)

    return (
        fs(list(route.severities) if route.severities is not None else None),
        fs(route.platforms),
        fs(route.rules),
    )


def plan_deliveries(result: AuditResult, settings: EmailSettings) -> list[Delivery]:
    """One :class:`Delivery` per distinct audience. Each address gets one message covering the
    union of its routes; a scoped audience with nothing new, regressed, resolved or open in its
    scope gets nothing. Snoozed findings never count."""
    if not settings.enabled:
        return []
    by_address: dict[str, set[Clause]] = {}
    for route in settings.all_routes():
        for address in route.to:
            by_address.setdefault(address.strip(), set()).add(_clause(route))
    by_scope: dict[Scope, list[str]] = {}
    for address, clauses in by_address.items():
        if not address:
            continue
        scope = Scope(tuple(sorted(clauses, key=repr)))
        if scope.everything:
            scope = Scope()
        by_scope.setdefault(scope, []).append(address)
    out = []
    for scope, addresses in by_scope.items():
        if not scope.everything:
            scoped = scope.apply(result)
            if scoped.active.empty and unsnoozed(scoped.resolved).empty:
                continue
        out.append(Delivery(tuple(addresses), scope))
    return out
