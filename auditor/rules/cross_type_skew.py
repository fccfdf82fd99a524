"""Data types that belong together were synced at very different times.

What it flags
    For each consistency group (e.g. ``accounts-receivable``: invoices, creditNotes, payments,
    accountTransactions, customers, balanceSheet), the skew of a company is newest minus oldest
    ``lastSuccessfulSync`` among the group's members that have one (``NotSupported`` members
    and members never synced are left out; at least two members are needed). Warning when the
    skew is above 6 h, error above 168 h (``warn_after``/``error_after``, per group under
    ``[rules.cross-type-skew.groups.<name>]``). One finding per company x group: its
    ``data_type`` is the member with the oldest sync, ``group`` the group name, ``age_hours``
    the skew, and the message says the time as of which all members are consistent.

Why it matters
    Reports that join these types (aged debtors, cash position, reconciliations) are wrong when
    one side is days older than the other: payments without their invoices, a balance sheet
    that does not match its transactions.

How to fix
    Queue a sync of the oldest member (or of the whole group, in ``syncOrder``) so that all
    members are refreshed together; if the oldest one keeps failing, follow its own finding.
    Groups are configured in ``[groups]`` (add, change, or remove one with an empty list).
"""

from __future__ import annotations

from typing import Final

import pandas as pd
from pydantic import Field

from auditor.rules._base import (
    Hours,
    Rule,
    RuleContext,
    RuleOptions,
    Thresholds,
    fmt_hours,
    fmt_ts,
    tier,
)

__all__ = ["DEFAULT_GROUPS", "RULE", "SkewOptions", "check"]

#: Consistency groups checked unless the config changes them.
DEFAULT_GROUPS: Final[dict[str, tuple[str, ...]]] = {
    "accounts-receivable": (
        "invoices",
        "creditNotes",
        "payments",
        "accountTransactions",
        "customers",
        "balanceSheet",
    ),
    "accounts-payable": (
        "bills",
        "billCreditNotes",
        "billPayments",
        "suppliers",
        "accountTransactions",
        "balanceSheet",
    ),
    "cash": ("bankAccounts", "bankTransactions", "balanceSheet", "cashFlowStatement"),
}


class SkewOptions(RuleOptions):
    """``[rules.cross-type-skew]``: skew thresholds, overridable per group."""

    warn_after: Hours = 6.0
    error_after: Hours = 168.0
    groups: dict[str, Thresholds] = Field(default_factory=dict)


def _group_findings(
    eligible: pd.DataFrame, name: str, members: tuple[str, ...], opts: SkewOptions
) -> pd.DataFrame:
    rows = eligible.loc[eligible["data_type"].isin(members).fillna(False).astype(bool)]
    if rows.empty:
        return pd.DataFrame()
    by_company = rows.groupby("company_id", sort=False, observed=True)["last_successful_sync"]
    summary = pd.DataFrame(
        {
            "count": by_company.count(),
            "oldest_at": by_company.idxmin(),
            "newest_at": by_company.idxmax(),
        }
    )
    summary = summary.loc[summary["count"] >= 2]
    oldest = rows.loc[summary["oldest_at"].to_numpy()]
    newest = rows.loc[summary["newest_at"].to_numpy()]
    skew = pd.Series(
        (
            newest["last_successful_sync"].to_numpy() - oldest["last_successful_sync"].to_numpy()
        )
        / pd.Timedelta(hours=1),
        index=oldest.index,
        dtype="float64",
    )
    limits = opts.groups.get(name, Thresholds())
    warn = limits.warn_after if limits.warn_after is not None else opts.warn_after
    error = limits.error_after if limits.error_after is not None else opts.error_after
    flagged, severity, threshold = tier(
        skew,
        pd.Series(warn, index=skew.index, dtype="float64"),
        pd.Series(error, index=skew.index, dtype="float64"),
    )
    oldest, skew, severity, threshold = (
        oldest.loc[flagged],
        skew[flagged],
        severity[flagged],
        threshold[flagged],
    )
    newest_type = pd.Series(
        newest.loc[flagged.to_numpy(), "data_type"].astype("string").to_numpy(), index=oldest.index
    )
    newest_at = pd.Series(
        newest.loc[flagged.to_numpy(), "last_successful_sync"].to_numpy(), index=oldest.index
    )
    consistent_at = fmt_ts(oldest["last_successful_sync"])
    message = (
        name
        + " is "
        + fmt_hours(skew)
        + " h out of step: oldest "
        + oldest["data_type"].astype("string")
        + " at "
        + consistent_at
        + ", newest "
        + newest_type
        + " at "
        + fmt_ts(newest_at)
        + "; all members are consistent only as of "
        + consistent_at
        + "."
    )
    remedy = (
        "Queue a sync of "
        + oldest["data_type"].astype("string")
        + " (or of all "
        + name
        + " members, in syncOrder) so the group is refreshed together."
    )
    return pd.DataFrame(
        {
            "company_id": oldest["company_id"],
            "company_name": oldest["company_name"],
            "platform": oldest["platform"],
            "connection_id": oldest["connection_id"],
            "data_type": oldest["data_type"],
            "group": name,
            "current_status": oldest["current_status"],
            "last_successful_sync": oldest["last_successful_sync"],
            "severity": severity,
            "age_hours": skew,
            "threshold_hours": threshold,
            "message": message,
            "remedy": remedy,
        }
    )


def check(ctx: RuleContext) -> pd.DataFrame:
    """One finding per company x consistency group whose members are too far apart."""
    opts = ctx.opts(SkewOptions)
    status = ctx.status
    eligible = status.loc[
        status["last_successful_sync"].notna()
        & (status["current_status"] != "NotSupported").fillna(True).astype(bool)
    ]
    parts = [
        _group_findings(eligible, name, tuple(members), opts)
        for name, members in ctx.config.consistency_groups.items()
        if len(members) >= 2
    ]
    parts = [p for p in parts if not p.empty]
    if not parts:
        return pd.DataFrame()
    return pd.concat(parts, ignore_index=True)


RULE = Rule(
    code="FA102",
    name="cross-type-skew",
    default_severity="warning",
    options_model=SkewOptions,
    check=check,
    doc=__doc__ or "",
)
