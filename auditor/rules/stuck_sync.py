"""A sync has been queued or running for too long.

What it flags
    Each company x data type whose ``currentStatus`` is in progress (Initial, Queued, Fetching,
    MapQueued, Mapping, ProcessingQueued, Processing, ValidationQueued, Validating) and whose
    pull operation (``latestSyncId``) was requested more than 6 h before ``as_of`` (warning) or
    24 h (error). Thresholds: ``warn_after``/``error_after``, per platform and per data type as
    for ``stale``. The request time comes from the pull operation the collector fetched; a data
    type whose request time is unknown is not flagged. For an on-premise integration
    (``on_premise_platforms``, matched on the platform name or integration key) the message
    says the connector is probably offline. It is the root cause of the ``stale`` finding of
    the same data type (and of a ``cross-type-skew`` whose oldest member it is): those are left
    out, the message says so, and a warning is raised to error when the stale data it explains
    is an error.

When it is not raised
    For a company that is not monitored (every connection ``Unlinked``, or none): the client
    severed its connections on purpose.

Why it matters
    While a sync is stuck, no new sync of that data type can start: the data ages silently and
    ``stale`` only notices days later.

How to fix
    On-premise platforms: ask the customer to check that the Codat connector on their machine
    is running, online and logged in. Cloud platforms: look at the pull operation in the Codat
    portal; if it has not moved for a day, raise it with Codat support with the dataset id.
"""

from __future__ import annotations

import pandas as pd
from pydantic import Field

from auditor.constants import IN_PROGRESS_STATUSES
from auditor.rules._base import (
    STATUS_COLUMNS,
    Hours,
    Rule,
    RuleContext,
    TieredOptions,
    crossed,
    resolve_thresholds,
    severity_of,
    status_columns,
    tier,
)
from auditor.rules._shared import monitored_rows
from auditor.vectors import fmt_hours, fmt_ts, hours_since, isin, text

__all__ = ["RULE", "StuckSyncOptions", "check"]


class StuckSyncOptions(TieredOptions):
    """``[rules.stuck-sync]``: thresholds and the on-premise integrations."""

    warn_after: Hours | None = Field(
        default=6.0, description="Warning when the sync was requested over this many hours ago."
    )
    error_after: Hours | None = Field(
        default=24.0, description="Error when the sync was requested over this many hours ago."
    )
    on_premise_platforms: list[str] = Field(
        description="Platform names or integration keys of on-premise integrations (the "
        "message then says the connector is probably offline).",
        default_factory=lambda: [
            "QuickBooks Desktop",
            "Sage 50 (UK)",
            "Sage 50 (US)",
            "Sage 200",
            "Sage 300",
            "Sage 100",
            "Xero Practice Manager Desktop",
        ]
    )


def _requested(ctx: RuleContext, rows: pd.DataFrame) -> pd.Series:
    requested = rows["latest_sync_requested"]
    missing = requested.isna() & rows["latest_sync_id"].notna()
    ops = ctx.pull_operations
    if not missing.any() or ops.empty:
        return requested
    ops = ops.loc[ops["requested"].notna(), ["company_id", "dataset_id", "requested"]]
    ops = ops.astype({"company_id": "string", "dataset_id": "string"})
    keys = rows.loc[missing, ["company_id", "latest_sync_id"]].astype("string")
    found = keys.merge(
        ops.drop_duplicates(["company_id", "dataset_id"]),
        left_on=["company_id", "latest_sync_id"],
        right_on=["company_id", "dataset_id"],
        how="left",
    )
    # A merge where no key matched gives an all-missing column of no time dtype: keep UTC times.
    filled = pd.Series(
        pd.DatetimeIndex(pd.to_datetime(found["requested"], utc=True, errors="coerce")),
        index=keys.index,
    )
    return requested.fillna(filled.reindex(requested.index))


def check(ctx: RuleContext) -> pd.DataFrame:
    """In-progress syncs requested too long ago."""
    opts = ctx.opts(StuckSyncOptions)
    status = ctx.status
    columns = [*STATUS_COLUMNS, "integration_key", "latest_sync_id", "latest_sync_requested"]
    rows = status.loc[
        isin(status["current_status"], IN_PROGRESS_STATUSES) & monitored_rows(ctx, status),
        columns,
    ]
    requested = _requested(ctx, rows)
    age = hours_since(requested, ctx.as_of)
    warn, error = resolve_thresholds(rows, opts, float("nan"), float("nan"))
    flagged, is_error = tier(age, warn, error)
    rows, requested, age = rows.loc[flagged], requested[flagged], age[flagged]
    is_error = is_error[flagged]
    threshold = crossed(is_error, warn[flagged], error[flagged])
    on_prem_names = {p.casefold() for p in opts.on_premise_platforms}
    on_prem = text(rows["platform"]).str.casefold().isin(on_prem_names) | text(
        rows["integration_key"]
    ).str.casefold().isin(on_prem_names)
    on_prem = on_prem.fillna(False).astype(bool)
    platform = text(rows["platform"]).fillna("the platform")
    message = (
        text(rows["data_type"])
        + " has been "
        + text(rows["current_status"])
        + " since its sync was requested at "
        + fmt_ts(requested)
        + " ("
        + fmt_hours(age)
        + " h ago)"
        + (
            "; "
            + platform
            + " is an on-premise integration: its connector is probably offline."
        ).where(on_prem, ".")
    )
    remedy = pd.Series(
        "Check the pull operation "
        + text(rows["latest_sync_id"]).fillna("(latestSyncId)")
        + " in the Codat portal; if it has not moved for a day, raise it with Codat support "
        "with the dataset id.",
        index=rows.index,
    ).where(
        ~on_prem,
        "Ask the customer to check that the Codat connector for "
        + platform
        + " is running, online and logged in on their machine.",
    )
    return pd.DataFrame(
        {
            **status_columns(rows),
            "severity": severity_of(is_error, rows.index),
            "age_hours": age,
            "threshold_hours": threshold,
            "message": message,
            "remedy": remedy,
        },
        index=rows.index,
    )


RULE = Rule(
    code="FA203",
    name="stuck-sync",
    default_severity="warning",
    options_model=StuckSyncOptions,
    check=check,
    doc=__doc__ or "",
)
