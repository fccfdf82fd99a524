"""A data type is in an error state although it has synced before: old data is being served.

What it flags
    Each company x data type whose ``currentStatus`` is an error other than ``AuthError``
    (FetchError, MapError, InternalError, ProcessingError, ValidationError, RateLimitError,
    PermissionsError, PrerequisiteNotMet) and that has a ``lastSuccessfulSync``. Severity error.
    ``AuthError`` is left to ``needs-relink``; an error with no successful sync ever is
    ``first-sync-failed``. It is the root cause of the ``stale`` finding of the same data
    type and of a ``cross-type-skew`` whose oldest member it is: those are left out and the
    message says so.

Why it matters
    Codat keeps serving the data of the last successful sync, so everything looks normal to
    the people reading it while it silently ages. The message gives the age of what is served.

How to fix
    Read the latest pull operation (``latestSyncId``) for its error message, fix the cause
    (the remedy names the usual one for each status), then queue a new sync of the data type.
"""

from __future__ import annotations

from typing import Final

import pandas as pd

from auditor.constants import FAILED_AFTER_SUCCESS_STATUSES
from auditor.rules._base import (
    STATUS_COLUMNS,
    Rule,
    RuleContext,
    RuleOptions,
    concat,
    fmt_hours,
    fmt_ts,
    hours_since,
    isin,
    map_values,
    status_columns,
    text,
)

__all__ = ["REMEDY_BY_STATUS", "RULE", "check"]

#: What ops should usually do about each error status (then queue a new sync).
REMEDY_BY_STATUS: Final[dict[str, str]] = {
    "FetchError": "The platform refused or failed the fetch: check the platform's status page "
    "and the pull operation's errorMessage, then queue a new sync.",
    "MapError": "Codat could not map the platform's data: raise it with Codat support with the "
    "pull operation id, then queue a new sync.",
    "InternalError": "Codat failed internally: queue a new sync; if it fails again, raise it "
    "with Codat support with the pull operation id.",
    "ProcessingError": "Codat failed to process the data: queue a new sync; if it fails again, "
    "raise it with Codat support with the pull operation id.",
    "ValidationError": "The data failed Codat's validation: read the validation report of the "
    "pull operation, fix the data at source if needed, then queue a new sync.",
    "RateLimitError": "The platform rate-limited the sync: queue a new sync outside peak hours "
    "or spread the company's syncs out.",
    "PermissionsError": "The linked user lacks permissions on the platform: ask the customer to "
    "grant them (or relink with an admin user), then queue a new sync.",
    "PrerequisiteNotMet": "A data type this one depends on has not synced: sync the "
    "prerequisite (e.g. chartOfAccounts, company) first, then this data type.",
}
_DEFAULT_REMEDY: Final = (
    "Read the pull operation's errorMessage, fix the cause, then queue a new sync."
)


def error_rows(ctx: RuleContext, *, synced_before: bool) -> pd.DataFrame:
    """Status rows in a non-auth error state, with or without a successful sync before."""
    status = ctx.status
    has_sync = status["last_successful_sync"].notna().to_numpy()
    mask = isin(status["current_status"], FAILED_AFTER_SUCCESS_STATUSES)
    return status.loc[mask & (has_sync if synced_before else ~has_sync), list(STATUS_COLUMNS)]


def remedy_for(rows: pd.DataFrame) -> pd.Series:
    """The usual remedy for each row's error status."""
    remedies = map_values(rows["current_status"], REMEDY_BY_STATUS, _DEFAULT_REMEDY)
    return remedies.astype("string")


def check(ctx: RuleContext) -> pd.DataFrame:
    """Data types failing after an earlier success."""
    rows = error_rows(ctx, synced_before=True)
    age = hours_since(rows["last_successful_sync"], ctx.as_of)
    message = concat(
        text(rows["data_type"]),
        " is in ",
        text(rows["current_status"]),
        "; the company is served the data of its last successful sync at ",
        fmt_ts(rows["last_successful_sync"]),
        " (",
        fmt_hours(age),
        " h old).",
    )
    return pd.DataFrame(
        {
            **status_columns(rows),
            "severity": "error",
            "age_hours": age,
            "message": message,
            "remedy": remedy_for(rows),
        },
        index=rows.index,
    )


RULE = Rule(
    code="FA201",
    name="failed-after-success",
    default_severity="error",
    options_model=RuleOptions,
    check=check,
    doc=__doc__ or "",
)
