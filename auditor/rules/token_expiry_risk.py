"""A Linked connection has not synced successfully for weeks: its access token may expire.

What it flags
    Each company x ``Linked`` connection whose newest ``lastSuccessfulSync`` over all the data
    types it serves is older than 25 days (warning, ``warn_after = 600`` h) or 30 days (error,
    ``error_after = 720`` h; per platform under ``[rules.token-expiry-risk.platforms.<name>]``).
    The message gives the date by which a sync must succeed (newest sync +
    ``token_lifetime_hours``, 30 days). Connections with no successful sync at all are left to
    ``never-synced``.

Why it matters
    Codat's access to the platform lapses when a connection goes about a month without a
    successful sync; then the customer has to relink, which many never do.

How to fix
    Queue a sync of the company's data now (``POST /companies/{id}/data/all``) and check that
    at least one data type completes. If it fails with ``AuthError``, send the customer the link
    URL to relink (see ``needs-relink``).
"""

from __future__ import annotations

import pandas as pd
from pydantic import Field

from auditor.rules._base import (
    HOUR,
    Hours,
    Rule,
    RuleContext,
    RuleOptions,
    Thresholds,
    fmt_ts,
    hours_since,
    map_values,
    tier,
)

__all__ = ["RULE", "TokenExpiryOptions", "check"]


class TokenExpiryOptions(RuleOptions):
    """``[rules.token-expiry-risk]``: thresholds (hours), per platform, and the token lifetime."""

    warn_after: Hours = 600.0
    error_after: Hours = 720.0
    token_lifetime_hours: Hours = 720.0
    platforms: dict[str, Thresholds] = Field(default_factory=dict)


def check(ctx: RuleContext) -> pd.DataFrame:
    """Linked connections whose newest successful sync is too old."""
    opts = ctx.opts(TokenExpiryOptions)
    status = ctx.status
    linked = status.loc[
        (status["connection_status"] == "Linked").fillna(False).astype(bool)
        & status["last_successful_sync"].notna()
    ]
    if linked.empty:
        return pd.DataFrame()
    newest_at = linked.groupby(["company_id", "connection_id"], sort=False, observed=True)[
        "last_successful_sync"
    ].idxmax()
    rows = linked.loc[newest_at.to_numpy()]
    age = hours_since(rows["last_successful_sync"], ctx.as_of)
    warn = pd.Series(opts.warn_after, index=rows.index, dtype="float64")
    error = pd.Series(opts.error_after, index=rows.index, dtype="float64")
    if opts.platforms:
        for attr, series in (("warn_after", warn), ("error_after", error)):
            mapping = {k: getattr(v, attr) for k, v in opts.platforms.items()}
            mapping = {k: v for k, v in mapping.items() if v is not None}
            override = map_values(rows["platform"], mapping)
            series.update(override.astype("float64").dropna())
    flagged, severity, threshold = tier(age, warn, error)
    rows, age = rows.loc[flagged], age[flagged]
    deadline = rows["last_successful_sync"] + opts.token_lifetime_hours * HOUR
    days = (age / 24).round(0).astype("Int64").astype("string")
    platform = rows["platform"].astype("string").fillna("the platform")
    message = (
        "Newest successful sync on this connection was at "
        + fmt_ts(rows["last_successful_sync"])
        + " ("
        + days
        + " days ago); access to "
        + platform
        + " may lapse without a successful sync: one must succeed by "
        + fmt_ts(deadline)
        + "."
    )
    remedy = (
        "Queue a sync now (POST /companies/"
        + rows["company_id"].astype("string")
        + "/data/all) and check one data type completes; if it fails with AuthError, "
        "send the customer the link URL to relink."
    )
    return pd.DataFrame(
        {
            "company_id": rows["company_id"],
            "company_name": rows["company_name"],
            "platform": rows["platform"],
            "connection_id": rows["connection_id"],
            "last_successful_sync": rows["last_successful_sync"],
            "severity": severity[flagged],
            "age_hours": age,
            "threshold_hours": threshold[flagged],
            "message": message,
            "remedy": remedy,
        },
        index=rows.index,
    )

RULE = Rule(
    code="FA103",
    name="token-expiry-risk",
    default_severity="warning",
    options_model=TokenExpiryOptions,
    check=check,
    doc=__doc__ or "",
)
