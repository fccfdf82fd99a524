"""A sync has been queued or running for too long.

What it flags
    Each company x data type whose ``currentStatus`` is in progress (Initial, Queued, Fetching,
    MapQueued, Mapping, ProcessingQueued, Processing, ValidationQueued, Validating) and whose
    pull operation (``latestSyncId``) was requested more than 12 h before ``as_of`` (warning) or
    24 h (error). Thresholds: ``warn_after``/``error_after``, per platform, per data type and
    per company tag as for ``stale``. The warning waits 12 h because Codat retries a failing
    sync up to 10 times over 12 hours before it flags an error (docs.codat.io,
    enterprise/tech-implementation/multiple-use-cases): a sync younger than that may be retrying
    normally. The request time comes from the pull operation the collector fetched; a data type
    whose request time is unknown is not flagged. The message quotes the pull operation's
    ``statusDescription`` when there is one. For an on-premise integration
    (``on_premise_platforms``, matched on the platform name or integration key) the message says
    the connector is probably offline, but only when nothing else explains the wait: the sync is
    still waiting on the platform (Initial, Queued, Fetching) and Codat gave no
    ``statusDescription``. It is the root cause of the ``stale`` finding of the same data type
    (and of a ``cross-type-skew`` whose oldest member it is): those are left out, the message
    says so, and a warning is raised to error when the stale data it explains is an error.

When it is not raised
    A pull operation whose ``statusDescription`` says it is paused until a time (``Paused
    until 2022-10-23T00:00:00.000Z``, the spec's example) is not stuck before that time;
    after it, it is timed from its request as usual and the message says when the pause ended.

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
from auditor.rules._shared import monitored_rows, nonblank, pull_operation_of
from auditor.vectors import fmt_hours, fmt_ts, hours_since, isin, text

__all__ = ["RULE", "StuckSyncOptions", "check"]


class StuckSyncOptions(TieredOptions):
    """``[rules.stuck-sync]``: thresholds and the on-premise integrations."""

    warn_after: Hours | None = Field(
        default=12.0,
        description="Warning when the sync was requested over this many hours ago (Codat "
        "retries a failing sync up to 10 times over 12 hours before it errors).",
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


#: Statuses in which a sync waits on the platform (for an on-premise integration: on the
#: connector on the customer's machine). Later stages run at Codat, with the data fetched.
_WAITING_ON_PLATFORM = ("Initial", "Queued", "Fetching")
_PAUSED_UNTIL = r"(?i)\bpaused until\s+(\S+)"


def _utc(values: pd.Series, index: pd.Index, *, iso: bool = False) -> pd.Series:
    # A merge where no key matched gives an all-missing column of no time dtype: keep UTC times.
    parsed = pd.to_datetime(
        values.to_numpy(), utc=True, errors="coerce", format="ISO8601" if iso else None
    )
    return pd.Series(pd.DatetimeIndex(parsed), index=index)


def _paused_until(description: pd.Series) -> pd.Series:
    """The time in a ``statusDescription`` such as ``Paused until 2022-10-23T00:00:00.000Z``
    (NaT where there is none or it cannot be read)."""
    found = text(description).str.extract(_PAUSED_UNTIL, expand=False)
    return _utc(found.str.rstrip(".,;"), description.index, iso=True)


def check(ctx: RuleContext) -> pd.DataFrame:
    """In-progress syncs requested too long ago."""
    opts = ctx.opts(StuckSyncOptions)
    status = ctx.status
    columns = [*STATUS_COLUMNS, "integration_key", "latest_sync_id", "latest_sync_requested"]
    rows = status.loc[
        isin(status["current_status"], IN_PROGRESS_STATUSES) & monitored_rows(ctx, status),
        columns,
    ]
    op = pull_operation_of(ctx, rows, ["requested", "status_description"])
    requested = rows["latest_sync_requested"].fillna(_utc(op["requested"], rows.index))
    description = nonblank(op["status_description"])
    paused_until = _paused_until(description)
    age = hours_since(requested, ctx.as_of)
    warn, error = resolve_thresholds(rows, opts, float("nan"), float("nan"), tags=ctx.tags)
    flagged, is_error = tier(age, warn, error)
    flagged &= ~(paused_until > ctx.as_of).fillna(False).to_numpy(dtype=bool)
    rows, requested, age = rows.loc[flagged], requested[flagged], age[flagged]
    description, paused_until = description[flagged], paused_until[flagged]
    is_error = is_error[flagged]
    threshold = crossed(is_error, warn[flagged], error[flagged])
    on_prem_names = {p.casefold() for p in opts.on_premise_platforms}
    on_prem = text(rows["platform"]).str.casefold().isin(on_prem_names) | text(
        rows["integration_key"]
    ).str.casefold().isin(on_prem_names)
    # The connector is the likely cause only while the sync waits on the platform and nothing
    # Codat said explains the wait.
    on_prem = (
        on_prem.fillna(False).astype(bool)
        & isin(rows["current_status"], _WAITING_ON_PLATFORM)
        & description.isna().to_numpy()
    )
    platform = text(rows["platform"]).fillna("the platform")
    said = ('; Codat says: "' + description.str.slice(0, 300) + '"').fillna("")
    said = said + ("; the pause ended at " + fmt_ts(paused_until)).where(
        paused_until.notna(), ""
    )
    message = (
        text(rows["data_type"])
        + " has been "
        + text(rows["current_status"])
        + " since its sync was requested at "
        + fmt_ts(requested)
        + " ("
        + fmt_hours(age)
        + " h ago)"
        + said
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
