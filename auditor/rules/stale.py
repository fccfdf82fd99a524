"""A data type's last successful sync is older than its freshness threshold.

What it flags
    Each company x data type whose ``lastSuccessfulSync`` is older than the warning threshold
    (warning) or the error threshold (error). Ages exactly at a threshold are not flagged.
    Data types that are ``NotSupported`` or have never synced are not stale (see
    ``never-synced``). Companies that are not monitored (every connection ``Unlinked``, or
    none) are left out.

Thresholds
    Configured thresholds win, most specific first (``docs/audit.md``, "Per-tenant
    thresholds"): ``[rules.stale.tags.<tag>.<value>.data_types.<type>]`` (the companies whose
    Codat tag ``<tag>`` is ``<value>``), ``[rules.stale.data_types.<type>]``,
    ``[rules.stale.tags.<tag>.<value>.platforms.<platform>]``,
    ``[rules.stale.platforms.<platform>]``, ``[rules.stale.tags.<tag>.<value>]`` (e.g.
    ``[rules.stale.tags.tier.gold] warn_after = "12h"``), then ``warn_after``/``error_after``
    of ``[rules.stale]``; two tags of a company at the same level: the lower threshold. Where
    none is configured they follow the sync settings: with Codat's
    ``syncSchedule`` S hours for that data type (the company's own setting wins over the
    client's), warning after ``schedule_warn_factor`` x S (2 x S) and error after
    ``schedule_error_factor`` x S (4 x S); with no schedule, S = 168 h (Codat's recommended
    weekly sync; ``default_schedule_hours``). A data type whose sync frequency is None
    (``syncSchedule`` 0 or empty in its setting) is measured the same way against the default,
    and the message says that Codat does not refresh it by itself
    (docs.codat.io/core-concepts/data-type-settings: None disables the synchronization).

When it is not raised
    A stale data type whose staleness another finding explains is left out, and that finding
    says how many stale findings it explains (``covered_by``): ``failed-after-success`` or
    ``stuck-sync`` on the same company x connection x data type (the type is failing or stuck:
    that is why it is old), ``needs-relink`` or ``token-expiry-risk`` on the same company x
    connection (nothing syncs through the connection: every type it serves ages). The covering
    finding takes the highest severity of what it explains, so a stale error is never shown as
    a warning. When the covering rule is disabled, not selected or finds nothing, stale is
    raised as usual.

Why it matters
    Lenders and analysts read this data as if it were current. A data type that stopped
    syncing silently shows last month's invoices and balances as today's.

How to fix
    Queue a sync of the data type (``POST /companies/{id}/data/queue/{dataType}``) and watch its
    pull operation. If the data type is also in an error state, follow that finding's remedy
    first; if syncs are simply not scheduled (schedule None), set a sync schedule in the Codat
    portal or queue the syncs yourself.
"""

from __future__ import annotations

import pandas as pd
from pydantic import Field

from auditor.rules._base import (
    STATUS_COLUMNS,
    Hours,
    Rule,
    RuleContext,
    TieredOptions,
    crossed,
    resolve_thresholds,
    severity_of,
    tier,
)
from auditor.rules._shared import monitored_rows
from auditor.vectors import concat, fmt_hours, fmt_ts, hours_since, isin, text

__all__ = ["RULE", "StaleOptions", "check"]


class StaleOptions(TieredOptions):
    """``[rules.stale]``: thresholds, and how they follow the sync schedule by default."""

    schedule_warn_factor: float = Field(
        default=2.0,
        gt=0,
        description="Without configured thresholds: warning after this many sync schedules.",
    )
    schedule_error_factor: float = Field(
        default=4.0,
        gt=0,
        description="Without configured thresholds: error after this many sync schedules.",
    )
    default_schedule_hours: Hours = Field(
        default=168.0,
        description="The sync schedule assumed for a data type that has none (hours).",
    )


def check(ctx: RuleContext) -> pd.DataFrame:
    """Stale data types of the partition."""
    opts = ctx.opts(StaleOptions)
    status = ctx.status
    candidate = (
        status["last_successful_sync"].notna().to_numpy()
        & ~isin(status["current_status"], ["NotSupported"])
        & monitored_rows(ctx, status)
    )
    age = hours_since(status["last_successful_sync"], ctx.as_of)
    schedule = ctx.setting(status, "sync_schedule_hours").astype("float64")
    # Codat's sync frequency "None" (syncSchedule 0 or null on a data type that has a
    # setting): Codat never queues it by itself.
    has_setting = isin(status["data_type"], ctx.sync_settings["data_type"].dropna().unique())
    unscheduled = has_setting & ~(schedule > 0).fillna(False).to_numpy(dtype=bool)
    schedule = schedule.where(schedule > 0).fillna(opts.default_schedule_hours)
    warn, error = resolve_thresholds(
        status,
        opts,
        schedule * opts.schedule_warn_factor,
        schedule * opts.schedule_error_factor,
        tags=ctx.tags,
    )
    flagged, is_error = tier(age, warn, error)
    flagged &= candidate
    rows = status.loc[flagged, list(STATUS_COLUMNS)]
    is_error = is_error[flagged]
    age = age[flagged]
    threshold = crossed(is_error, warn[flagged], error[flagged])
    no_schedule = pd.Series(unscheduled[flagged], index=rows.index)
    severity = severity_of(is_error, rows.index)
    data_type = text(rows["data_type"])
    message = concat(
        data_type,
        " last synced successfully at ",
        fmt_ts(rows["last_successful_sync"]),
        ", ",
        fmt_hours(age),
        " h ago (",
        text(severity),
        " after ",
        fmt_hours(threshold),
        " h).",
    ) + pd.Series(
        " Its sync schedule is None: Codat does not refresh it by itself (measured against the "
        f"default schedule of {opts.default_schedule_hours:g} h).",
        index=rows.index,
        dtype="string",
    ).where(no_schedule, "")
    remedy = concat(
        "Queue a sync of ",
        data_type,
        " (POST /companies/",
        text(rows["company_id"]),
        "/data/queue/",
        data_type,
        ") and check its pull operation; if it keeps failing, fix the error it reports.",
    )
    remedy = remedy.where(
        ~no_schedule,
        concat(
            "Set a sync schedule (sync frequency) for ",
            data_type,
            " in the Codat portal, or queue its syncs yourself (POST /companies/",
            text(rows["company_id"]),
            "/data/queue/",
            data_type,
            "): with none, Codat never refreshes it.",
        ),
    )
    return rows.assign(
        severity=severity,
        age_hours=age,
        threshold_hours=threshold,
        message=message,
        remedy=remedy,
    )


RULE = Rule(
    code="FA101",
    name="stale",
    default_severity="warning",
    options_model=StaleOptions,
    check=check,
    doc=__doc__ or "",
    covered_by=("failed-after-success", "stuck-sync", "needs-relink", "token-expiry-risk"),
)
