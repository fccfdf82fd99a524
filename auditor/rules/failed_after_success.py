"""A data type is in an error state although it has synced before: old data is being served.

What it flags
    Each company x data type whose ``currentStatus`` is an error other than ``AuthError``
    (FetchError, MapError, InternalError, ProcessingError, ValidationError, RateLimitError,
    PermissionsError, PrerequisiteNotMet) and that has a ``lastSuccessfulSync``. Severity error.
    ``AuthError`` is left to ``needs-relink``; an error with no successful sync ever is
    ``first-sync-failed``. It is the root cause of the ``stale`` finding of the same data
    type and of a ``cross-type-skew`` whose oldest member it is: those are left out and the
    message says so. The message quotes what Codat said about the failed sync: the
    ``errorMessage`` (else ``statusDescription``) of the data type's latest pull operation,
    when the collector has it (it fetches it for incidents new tonight, within a nightly
    budget, and carries it while the incident stays open; see docs/collector.md).

Why it matters
    Codat keeps serving the data of the last successful sync, so everything looks normal to
    the people reading it while it silently ages. The message gives the age of what is served.

How to fix
    Read the quoted error (or the latest pull operation, ``latestSyncId``, when none is
    quoted), fix the cause
    (the remedy names the usual one for each status), then queue a new sync of the data type.
    Not for ``RateLimitError``: the source platform is rate-limiting Codat, which retries on
    its own; wait for its next attempt (``auditor refresh`` does not queue it).
"""

from __future__ import annotations

import pandas as pd

from auditor.rules._base import Rule, RuleContext, RuleOptions, status_columns
from auditor.rules._shared import error_rows, error_text, remedy_for
from auditor.vectors import concat, fmt_hours, fmt_ts, hours_since, text

__all__ = ["RULE", "check"]

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
        error_text(ctx, rows),
    )
    return pd.DataFrame(
        {
            **status_columns(rows),
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
