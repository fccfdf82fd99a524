"""A data type reports a current status that is not one of Codat's 21 known statuses.

What it flags
    Each company x data type whose ``currentStatus`` is present but outside the statuses of
    Codat's ``PullOperation.status`` enum (Initial, Queued, Fetching, MapQueued, Mapping,
    Complete, FetchError, MapError, InternalError, ProcessingQueued, Processing,
    ProcessingError, ValidationQueued, Validating, ValidationError, AuthError, Cancelled,
    NotSupported, RateLimitError, PermissionsError, PrerequisiteNotMet). Warning.

Why it matters
    The other rules cannot tell whether an unknown status is healthy, running or failing, so
    this data type is effectively unaudited until someone looks.

How to fix
    Look the data type up in the Codat portal and in Codat's changelog. If Codat added a
    status, add it to ``auditor.constants`` (in the right set: error, in progress or
    neutral) so that the other rules handle it.
"""

from __future__ import annotations

import pandas as pd

from auditor.constants import ALL_STATUSES
from auditor.rules._base import STATUS_COLUMNS, Rule, RuleContext, RuleOptions, status_columns
from auditor.vectors import isin

__all__ = ["RULE", "check"]


def check(ctx: RuleContext) -> pd.DataFrame:
    """Data types with a status outside the known 21."""
    status = ctx.status
    known = isin(status["current_status"], ALL_STATUSES)
    rows = status.loc[status["current_status"].notna().to_numpy() & ~known, list(STATUS_COLUMNS)]
    message = (
        rows["data_type"].astype("string")
        + " reports status '"
        + rows["current_status"].astype("string")
        + "', which is not one of Codat's documented statuses."
    )
    return pd.DataFrame(
        {
            **status_columns(rows),
            "message": message,
            "remedy": "Check the data type in the Codat portal and Codat's changelog; if the "
            "status is new, add it to auditor.constants so the other rules understand it.",
        },
        index=rows.index,
    )


RULE = Rule(
    code="FA401",
    name="unknown-status",
    default_severity="warning",
    options_model=RuleOptions,
    check=check,
    doc=__doc__ or "",
)
