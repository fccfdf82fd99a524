"""A Linked connection has not synced successfully for weeks: its access token may expire.

What it flags
    Each company x ``Linked`` connection whose newest ``lastSuccessfulSync`` over all the data
    types it serves is older than 25 days (warning, ``warn_after = 600`` h) or 30 days (error,
    ``error_after = 720`` h; per platform under ``[rules.token-expiry-risk.platforms.<name>]``).
    The message gives the date by which a sync must succeed (newest sync +
    ``token_lifetime_hours``, 30 days, per platform under the same ``platforms`` table:
    Codat says some platforms revoke access after 60 to 100 days without a sync,
    docs.codat.io/configure/portal/companies); once that date has passed, it says the token has
    probably expired and since when (never a deadline in the past). Connections with no
    successful sync at all are left to
    ``never-synced``.

When it is not raised
    When the same connection has a ``needs-relink`` finding (``covered_by``): the token has
    already been rejected (a data type in ``AuthError``), so the risk has come true. A
    token-expiry-risk finding covers the ``stale`` findings of its connection's data types
    (one connection that stopped syncing, not 25 stale types) and is raised to error when any
    of them is an error; its message says how many it explains. Never for a company that is
    not monitored (every connection ``Unlinked``, or none).

Why it matters
    Codat's access to the platform lapses when a connection goes too long without a
    successful sync (Codat recommends syncing at least one data type monthly so that the token
    does not expire, docs.codat.io/using-the-api/queueing-data-syncs); then the customer has
    to relink, which many never do.

How to fix
    Queue a sync of the company's data now (``POST /companies/{id}/data/all``) and check that
    at least one data type completes. If it fails with ``AuthError``, send the customer the link
    URL to relink (see ``needs-relink``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import Field

from auditor.rules._base import (
    Hours,
    Rule,
    RuleContext,
    RuleOptions,
    Thresholds,
    crossed,
    severity_of,
    tier,
)
from auditor.rules._shared import monitored_rows
from auditor.vectors import fmt_hours, fmt_ts, hours_since, isin, map_values, text

__all__ = ["RULE", "PlatformTokenOptions", "TokenExpiryOptions", "check"]


class PlatformTokenOptions(Thresholds):
    """``[rules.token-expiry-risk.platforms.<name>]``: thresholds and token lifetime of one
    platform (Codat: some platforms revoke access after 60 to 100 days without a sync)."""

    token_lifetime_hours: Hours | None = Field(
        default=None,
        description="How long this platform's token lasts without a successful sync (unset: "
        "the rule's token_lifetime_hours).",
    )


class TokenExpiryOptions(RuleOptions):
    """``[rules.token-expiry-risk]``: thresholds (hours), per platform, and the token lifetime."""

    warn_after: Hours = Field(
        default=600.0,
        description="Warning when the connection's newest successful sync is older than this.",
    )
    error_after: Hours = Field(
        default=720.0,
        description="Error when the connection's newest successful sync is older than this.",
    )
    token_lifetime_hours: Hours = Field(
        default=720.0,
        description="How long a token lasts without a successful sync (gives the deadline).",
    )
    platforms: dict[str, PlatformTokenOptions] = Field(
        default_factory=dict,
        description="Thresholds and token lifetime per platform (by platform name), one table "
        "per platform.",
    )


def check(ctx: RuleContext) -> pd.DataFrame:
    """Linked connections whose newest successful sync is too old."""
    opts = ctx.opts(TokenExpiryOptions)
    status = ctx.status
    age_all = hours_since(status["last_successful_sync"], ctx.as_of)
    linked = (
        isin(status["connection_status"], ["Linked"])
        & age_all.notna().to_numpy()
        & monitored_rows(ctx, status)
    )
    levels = [opts.warn_after, opts.error_after]
    for limits in opts.platforms.values():
        levels += [v for v in (limits.warn_after, limits.error_after) if v is not None]
    lowest = min(levels)
    # A connection is at risk only if all its synced rows are old: look at the companies with
    # an old row only, then at all their linked rows.
    codes, _ = ctx.company_codes
    old = linked & (age_all.to_numpy() > lowest)
    if not old.any():
        return pd.DataFrame()
    suspect_company = np.zeros(codes.max() + 2, dtype=bool)
    suspect_company[codes[old]] = True
    suspects = linked & suspect_company[codes]
    columns = ["company_id", "company_name", "platform", "connection_id", "last_successful_sync"]
    rows: pd.DataFrame = status.loc[suspects, columns]
    newest_at = rows.groupby(
        [codes[suspects], text(rows["connection_id"]).fillna("").to_numpy()], sort=False
    )["last_successful_sync"].idxmax()
    rows = rows.loc[newest_at.to_numpy()]
    age = hours_since(rows["last_successful_sync"], ctx.as_of)
    warn = pd.Series(opts.warn_after, index=rows.index, dtype="float64")
    error = pd.Series(opts.error_after, index=rows.index, dtype="float64")
    for attr, series in (("warn_after", warn), ("error_after", error)):
        mapping = {k: getattr(v, attr) for k, v in opts.platforms.items()}
        mapping = {k: v for k, v in mapping.items() if v is not None}
        if mapping:
            override = map_values(rows["platform"], mapping)
            series.update(override.astype("float64").dropna())
    flagged, is_error = tier(age, warn, error)
    rows, age, is_error = rows.loc[flagged], age[flagged], is_error[flagged]
    threshold = crossed(is_error, warn[flagged], error[flagged])
    lifetime = pd.Series(opts.token_lifetime_hours, index=rows.index, dtype="float64")
    per_platform = {
        k: v.token_lifetime_hours
        for k, v in opts.platforms.items()
        if v.token_lifetime_hours is not None
    }
    if per_platform:
        lifetime.update(map_values(rows["platform"], per_platform).astype("float64").dropna())
    deadline = rows["last_successful_sync"] + pd.to_timedelta(lifetime, unit="h")
    passed = (deadline <= ctx.as_of).to_numpy(dtype=bool)
    days = fmt_hours(age / 24)
    platform = text(rows["platform"]).fillna("the platform")
    message = (
        "Newest successful sync on this connection was at "
        + fmt_ts(rows["last_successful_sync"])
        + " ("
        + days
        + " days ago); "
        + pd.Series(
            "access to "
            + platform
            + " may lapse without a successful sync: one must succeed by "
            + fmt_ts(deadline)
            + ".",
            index=rows.index,
        ).where(
            ~passed,
            "the token for "
            + platform
            + " has probably expired, since about "
            + fmt_ts(deadline)
            + " ("
            + fmt_hours(lifetime / 24)
            + " days without a successful sync); a sync now tells whether access remains.",
        )
    )
    remedy = (
        "Queue a sync now (POST /companies/"
        + text(rows["company_id"])
        + "/data/all) and check one data type completes; if it fails with AuthError, "
        "send the customer the link URL to relink."
    )
    return rows.assign(
        severity=severity_of(is_error, rows.index),
        age_hours=age,
        threshold_hours=threshold,
        message=message,
        remedy=remedy,
    )


RULE = Rule(
    code="FA103",
    name="token-expiry-risk",
    default_severity="warning",
    options_model=TokenExpiryOptions,
    check=check,
    doc=__doc__ or "",
    covered_by=("needs-relink",),
)
