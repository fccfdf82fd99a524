"""codat-freshness-auditor: audit the data freshness of a fleet of Codat companies.

Data flows one way: Codat API (or the sandbox) -> :mod:`auditor.codat` client ->
:mod:`auditor.collector` -> :mod:`auditor.store` -> :mod:`auditor.rules` -> findings ->
:mod:`auditor.report`.

The public API is what this package exports (:data:`__all__`); ``docs/api.md`` has a tour::

    import auditor

    snap = auditor.load_snapshot("reports/demo/store")        # a stored night (Snapshot)
    findings = auditor.load_findings("reports/demo/store")    # its audit (findings table)
    result = auditor.audit(snap, as_of=snap.snapshot_at)      # audit in memory
    auditor.history("reports/demo/store", days=30)            # findings per night x severity

Reading the store, auditing and analysing: :func:`load_snapshot`, :func:`load_findings`,
:func:`list_snapshots`, :func:`audit`, :func:`history`, :func:`findings_history`,
:func:`snapshot_history`, :func:`group_consistency`. Every CLI command has a function:
``auditor snapshot`` -> :func:`collect_to_store`; ``auditor audit`` -> :func:`audit_store`;
``auditor run`` -> :func:`run_nightly`; ``auditor demo`` -> :func:`run_demo`;
``auditor refresh`` -> :func:`plan_refreshes` / :func:`apply_refreshes` /
:func:`write_refreshes`; ``auditor rules`` -> :data:`RULES` / :func:`get_rule`;
``auditor sandbox`` -> :class:`SandboxServer` / :func:`generate_fleet`; pruning the store ->
:func:`prune`.

Names are imported on first use (module ``__getattr__``), so ``import auditor`` stays cheap
(it does not import pandas).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Final

__version__ = "0.1.0"

if TYPE_CHECKING:
    from auditor.api import (
        CONSISTENCY_COLUMNS,
        FindingsNotFoundError,
        audit,
        findings_history,
        group_consistency,
        history,
        load_findings,
        load_snapshot,
        snapshot_history,
    )
    from auditor.codat import CodatClient, RateLimitPolicy
    from auditor.collector import collect, collect_to_store
    from auditor.config import AuditConfig, ConfigError, load_config
    from auditor.demo import run_demo
    from auditor.findings import FINDINGS_COLUMNS
    from auditor.listen import ListenerServer, load_events
    from auditor.nightly import RunFailedError, crosses_fail_level, run_nightly
    from auditor.pipeline import AuditRun, audit_store
    from auditor.remediation import apply_refreshes, plan_refreshes
    from auditor.report import build_digest, deliver_digests, write_reports
    from auditor.result import AuditResult
    from auditor.rules import RULES, Rule, get_rule
    from auditor.sandbox import SandboxServer, generate_fleet, load_fleet
    from auditor.snapshot import Snapshot
    from auditor.snoozes import Snooze, load_snoozes
    from auditor.store import SnapshotNotFoundError, list_snapshots, prune, write_refreshes

#: Public name -> the module that defines it (imported on first access).
_EXPORTS: Final[dict[str, str]] = {
    # reading the store and analysing
    "load_snapshot": "auditor.api",
    "load_findings": "auditor.api",
    "list_snapshots": "auditor.store",
    "history": "auditor.api",
    "findings_history": "auditor.api",
    "snapshot_history": "auditor.api",
    "group_consistency": "auditor.api",
    "CONSISTENCY_COLUMNS": "auditor.api",
    "FindingsNotFoundError": "auditor.api",
    "SnapshotNotFoundError": "auditor.store",
    "prune": "auditor.store",
    # auditing
    "audit": "auditor.api",
    "audit_store": "auditor.pipeline",
    "AuditRun": "auditor.pipeline",
    "Snapshot": "auditor.snapshot",
    "AuditResult": "auditor.result",
    "FINDINGS_COLUMNS": "auditor.findings",
    "AuditConfig": "auditor.config",
    "ConfigError": "auditor.config",
    "load_config": "auditor.config",
    "RULES": "auditor.rules",
    "Rule": "auditor.rules",
    "get_rule": "auditor.rules",
    "Snooze": "auditor.snoozes",
    "load_snoozes": "auditor.snoozes",
    # collecting
    "CodatClient": "auditor.codat",
    "RateLimitPolicy": "auditor.codat",
    "collect": "auditor.collector",
    "collect_to_store": "auditor.collector",
    # reports, the nightly job, remediation, demo and sandbox
    "write_reports": "auditor.report",
    "build_digest": "auditor.report",
    "deliver_digests": "auditor.report",
    "run_nightly": "auditor.nightly",
    "RunFailedError": "auditor.nightly",
    "crosses_fail_level": "auditor.nightly",
    "plan_refreshes": "auditor.remediation",
    "apply_refreshes": "auditor.remediation",
    "write_refreshes": "auditor.store",
    "run_demo": "auditor.demo",
    "SandboxServer": "auditor.sandbox",
    "generate_fleet": "auditor.sandbox",
    "load_fleet": "auditor.sandbox",
    # webhooks
    "ListenerServer": "auditor.listen",
    "load_events": "auditor.listen",
}

__all__ = [
    "CONSISTENCY_COLUMNS",
    "FINDINGS_COLUMNS",
    "RULES",
    "AuditConfig",
    "AuditResult",
    "AuditRun",
    "CodatClient",
    "ConfigError",
    "FindingsNotFoundError",
    "ListenerServer",
    "RateLimitPolicy",
    "Rule",
    "RunFailedError",
    "SandboxServer",
    "Snapshot",
    "SnapshotNotFoundError",
    "Snooze",
    "__version__",
    "apply_refreshes",
    "audit",
    "audit_store",
    "build_digest",
    "collect",
    "collect_to_store",
    "crosses_fail_level",
    "deliver_digests",
    "findings_history",
    "generate_fleet",
    "get_rule",
    "group_consistency",
    "history",
    "list_snapshots",
    "load_config",
    "load_events",
    "load_findings",
    "load_fleet",
    "load_snapshot",
    "load_snoozes",
    "plan_refreshes",
    "prune",
    "run_demo",
    "run_nightly",
    "snapshot_history",
    "write_refreshes",
    "write_reports",
]


def __getattr__(name: str) -> Any:
    """Import a public name on first use and cache it in the package namespace."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'auditor' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
