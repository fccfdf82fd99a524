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

When it is not raised
    When its oldest member is ``stale`` (``covered_by``), and, through stale, when the oldest
    member is failing (``failed-after-success``), stuck (``stuck-sync``), or its connection
    needs relinking or is at token-expiry risk: the group is out of step because that member
    stopped syncing, and its own finding (which says it also explains this one) has the remedy.
    A skew whose oldest member is healthy is always raised, whatever its newer members do.
    Never for a company that is not monitored (every connection ``Unlinked``, or none).

Why it matters
    Reports that join these types (aged debtors, cash position, reconciliations) are wrong when
    one side is days older than the other: payments without their invoices, a balance sheet
    that does not match its transactions.

How to fix
    Queue a sync of the oldest member (or of the whole group, in ``syncOrder``) so that all
    members are refreshed together; if the oldest one keeps failing, follow its own finding.
    Groups are configured under ``[rules.cross-type-skew.groups.<name>]``: ``members = [...]``
    adds or changes one, ``members = []`` removes a default one.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from auditor.rules._base import (
    STATUS_COLUMNS,
    Hours,
    Rule,
    RuleContext,
    RuleOptions,
    crossed,
    severity_of,
    tier,
)
from auditor.rules._shared import CONSISTENCY_GROUPS, monitored_rows
from auditor.vectors import concat, fmt_hours, fmt_ts, isin, text

__all__ = ["DEFAULT_GROUPS", "RULE", "SkewGroup", "SkewOptions", "check"]

#: Consistency groups checked unless the config changes them (shared with history-window).
DEFAULT_GROUPS: Final[dict[str, tuple[str, ...]]] = CONSISTENCY_GROUPS


class SkewGroup(BaseModel):
    """``[rules.cross-type-skew.groups.<name>]``: a consistency group and its own thresholds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    members: list[str] = Field(
        default_factory=list,
        description="The data types that belong together (at least two; [] removes the group; "
        "left out, a default group keeps its members).",
    )
    warn_after: Hours | None = Field(
        default=None, description="Warning above this skew for this group (unset: the rule's)."
    )
    error_after: Hours | None = Field(
        default=None, description="Error above this skew for this group (unset: the rule's)."
    )

    @field_validator("members")
    @classmethod
    def _two_distinct_members(cls, value: list[str]) -> list[str]:
        if len(value) == 1:
            raise ValueError("a group needs at least two members (or [] to remove it)")
        if len(set(value)) != len(value):
            raise ValueError("a group lists a member twice")
        return value


def _default_groups() -> dict[str, SkewGroup]:
    return {name: SkewGroup(members=list(members)) for name, members in DEFAULT_GROUPS.items()}


class SkewOptions(RuleOptions):
    """``[rules.cross-type-skew]``: the consistency groups and their skew thresholds.

    ``groups`` starts from :data:`DEFAULT_GROUPS` (unless ``replace_default_groups``): a
    configured group table is merged into the default of the same name, so
    ``[rules.cross-type-skew.groups.cash] warn_after = 12`` keeps the members of ``cash``.
    """

    warn_after: Hours = Field(
        default=6.0, description="Warning when a group's members are further apart (hours)."
    )
    error_after: Hours = Field(
        default=168.0, description="Error when a group's members are further apart (hours)."
    )
    replace_default_groups: bool = Field(
        default=False,
        description="Start from no consistency groups instead of the defaults "
        "(accounts-receivable, accounts-payable, cash).",
    )
    groups: dict[str, SkewGroup] = Field(
        default_factory=_default_groups,
        description="The consistency groups: members, and thresholds that override the rule's "
        "for that group.",
    )

    @model_validator(mode="before")
    @classmethod
    def _merge_default_groups(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        given = data.get("groups", {})
        if not isinstance(given, dict) or data.get("replace_default_groups") is True:
            return data
        merged: dict[str, Any] = {
            name: {"members": list(members)} for name, members in DEFAULT_GROUPS.items()
        }
        for name, table in given.items():
            if isinstance(table, SkewGroup):
                table = table.model_dump(exclude_unset=True)
            base = merged.get(name)
            merged[name] = {**base, **table} if base and isinstance(table, dict) else table
        return {**data, "groups": merged}

    @property
    def consistency_groups(self) -> dict[str, tuple[str, ...]]:
        """The groups the rule checks (name -> members), in configuration order."""
        return {name: tuple(g.members) for name, g in self.groups.items() if g.members}


def _group_findings(
    ctx: RuleContext,
    eligible: np.ndarray,
    synced: np.ndarray,
    name: str,
    members: tuple[str, ...],
    opts: SkewOptions,
) -> pd.DataFrame:
    status = ctx.status
    codes, _ = ctx.company_codes
    positions = np.flatnonzero(eligible & isin(status["data_type"], members))
    if positions.size == 0:
        return pd.DataFrame()
    company, at = codes[positions], synced[positions]
    # Per company: oldest and newest sync (no sort). Ties: the oldest is the first such row,
    # the newest the last one, as a stable sort by (company, time) would give.
    n = int(company.max()) + 1
    count = np.bincount(company, minlength=n)
    low = np.full(n, np.iinfo(np.int64).max)
    high = np.full(n, np.iinfo(np.int64).min)
    np.minimum.at(low, company, at)
    np.maximum.at(high, company, at)
    first = np.full(n, np.iinfo(np.int64).max)
    last = np.full(n, -1)
    is_low, is_high = at == low[company], at == high[company]
    np.minimum.at(first, company[is_low], positions[is_low])
    np.maximum.at(last, company[is_high], positions[is_high])
    several = np.flatnonzero(count >= 2)
    oldest_pos, newest_pos = first[several], last[several]
    skew = pd.Series((synced[newest_pos] - synced[oldest_pos]) / 3.6e12, dtype="float64")
    limits = opts.groups.get(name, SkewGroup())
    warn = limits.warn_after if limits.warn_after is not None else opts.warn_after
    error = limits.error_after if limits.error_after is not None else opts.error_after
    warn_s = pd.Series(warn, index=skew.index, dtype="float64")
    error_s = pd.Series(error, index=skew.index, dtype="float64")
    flagged, is_error = tier(skew, warn_s, error_s)
    if not flagged.any():
        return pd.DataFrame()
    oldest: pd.DataFrame = status[list(STATUS_COLUMNS)].iloc[oldest_pos[flagged]]
    oldest = oldest.reset_index(drop=True)
    newest = status[["data_type", "last_successful_sync"]].iloc[newest_pos[flagged]]
    newest = newest.reset_index(drop=True)
    is_error = is_error[flagged]
    threshold = crossed(is_error, warn_s[flagged], error_s[flagged]).reset_index(drop=True)
    skew = skew[flagged].reset_index(drop=True)
    consistent_at = fmt_ts(oldest["last_successful_sync"])
    oldest_type = text(oldest["data_type"])
    message = concat(
        f"{name} is ",
        fmt_hours(skew),
        " h out of step: oldest ",
        oldest_type,
        " at ",
        consistent_at,
        ", newest ",
        text(newest["data_type"]),
        " at ",
        fmt_ts(newest["last_successful_sync"]),
        "; all members are consistent only as of ",
        consistent_at,
        ".",
    )
    remedy = concat(
        "Queue a sync of ",
        oldest_type,
        f" (or of all {name} members, in syncOrder) so the group is refreshed together.",
    )
    return oldest.assign(
        group=name,
        severity=severity_of(is_error, oldest.index),
        age_hours=skew,
        threshold_hours=threshold,
        message=message,
        remedy=remedy,
    )


def check(ctx: RuleContext) -> pd.DataFrame:
    """One finding per company x consistency group whose members are too far apart."""
    opts = ctx.opts(SkewOptions)
    status = ctx.status
    eligible = (
        status["last_successful_sync"].notna().to_numpy()
        & ~isin(status["current_status"], ["NotSupported"])
        & monitored_rows(ctx, status)
    )
    synced = status["last_successful_sync"].to_numpy(dtype="datetime64[ns]").view("int64")
    parts = [
        _group_findings(ctx, eligible, synced, name, tuple(members), opts)
        for name, members in opts.consistency_groups.items()
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
    covered_by=("stale",),
)
