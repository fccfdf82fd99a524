"""Email routing: which findings each audience of the digest sees.

The ``[email]`` table (:class:`~auditor.email_settings.EmailSettings`) names recipients: ``to``
for everything, shorthand routes per severity or platform, general routes with several filters.
:func:`plan_deliveries` turns them into one :class:`Delivery` per distinct audience, each with
the :class:`~auditor.routing.Scope` (union of its routes) that cuts the audit down to its
part. The filters and the scope are :mod:`auditor.routing`'s, shared with the notifications.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from auditor.email_settings import EmailSettings
from auditor.result import AuditResult
from auditor.routing import Clause, Scope

from ._view import unsnoozed

__all__ = ["Clause", "Delivery", "Scope", "plan_deliveries"]


@dataclass(frozen=True)
class Delivery:
    """One message to send: who receives it and what part of the audit it covers."""

    recipients: tuple[str, ...]
    scope: Scope = field(default_factory=Scope)


def plan_deliveries(result: AuditResult, settings: EmailSettings) -> list[Delivery]:
    """One :class:`Delivery` per distinct audience. Each address gets one message covering the
    union of its routes; a scoped audience with nothing new, regressed, resolved or open in its
    scope gets nothing. Snoozed findings never count."""
    if not settings.enabled:
        return []
    by_address: dict[str, set[Clause]] = {}
    for route in settings.all_routes():
        for address in route.to:
            by_address.setdefault(address.strip(), set()).add(route.clause())
    by_scope: dict[Scope, list[str]] = {}
    for address, clauses in by_address.items():
        if not address:
            continue
        scope = Scope(tuple(sorted(clauses, key=repr)))
        scope = Scope() if scope.everything else scope
        by_scope.setdefault(scope, []).append(address)
    out = []
    for scope, addresses in by_scope.items():
        if not scope.everything:
            scoped = scope.apply(result)
            if scoped.active.empty and unsnoozed(scoped.resolved).empty:
                continue
        out.append(Delivery(tuple(addresses), scope))
    return out
