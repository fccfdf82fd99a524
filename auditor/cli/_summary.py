"""A short plain-text summary of an audit for the terminal."""

from __future__ import annotations

from auditor.cli._echo import echo
from auditor.pipeline import AuditRun
from auditor.result import AuditResult

__all__ = ["echo_refreshes", "echo_summary"]


def echo_summary(result: AuditResult) -> None:
    """Counts by severity, state and rule (snoozed findings left out)."""
    active = result.active
    sev = active["severity"].astype("string").value_counts()
    state = active["state"].astype("string").value_counts()
    snoozed = len(result.findings) - len(active)
    echo(
        f"findings: {int(sev.get('error', 0))} errors, {int(sev.get('warning', 0))} warnings"
        f" ({int(state.get('new', 0))} new, {int(state.get('regressed', 0))} regressed,"
        f" {len(result.resolved)} resolved; {snoozed} snoozed)"
    )
    by_rule = active.groupby(["rule", "severity"], observed=True).size().reset_index(name="n")
    for rule, severity, n in by_rule.itertuples(index=False):
        echo(f"  {rule!s:<22} {severity!s:<8} {n:>7}")


def echo_refreshes(run: AuditRun) -> None:
    """Whether the refreshes queued after the previous audit worked (when there were any)."""
    if run.refreshes is None:
        return
    counts = run.refreshes["result"].value_counts()
    echo(
        f"refreshes queued last night: {int(counts.get('worked', 0))} worked, "
        f"{int(counts.get('failed', 0))} failed, {int(counts.get('running', 0))} still running"
    )
