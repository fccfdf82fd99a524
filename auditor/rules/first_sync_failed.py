"""A data type's first sync failed: the company has no data of this type at all.

What it flags
    Each company x data type whose ``currentStatus`` is an error other than ``AuthError``
    and that has no ``lastSuccessfulSync``. Severity error. (``AuthError`` is
    ``needs-relink``; errors after an earlier success are ``failed-after-success``.) The
    message quotes the ``errorMessage`` (else ``statusDescription``) of the data type's latest
    pull operation when the collector has it, as ``failed-after-success`` does.

When it is not raised
    A ``lastSuccessfulSync`` that was sent but could not be read (``"yesterday"``) is not
    "never synced": that row is left to ``unknown-status``.

Why it matters
    Nothing of this type can be read for the company: a lending decision or a report that
    needs it is blocked, usually since the day the company linked.

How to fix
    Read the pull operation's error (``latestSyncId``) and fix the cause (the remedy names the
    usual one per status); first syncs often fail on permissions or prerequisites
    (``chartOfAccounts``, ``company``). Then queue the sync again, except after a
    ``RateLimitError``: Codat retries that on its own (``auditor refresh`` does not queue it).
"""

from __future__ import annotations

import pandas as pd

from auditor.rules._base import Rule, RuleContext, RuleOptions, status_columns
from auditor.rules._shared import error_rows, error_text, remedy_for

__all__ = ["RULE", "check"]


def check(ctx: RuleContext) -> pd.DataFrame:
    """Data types whose first sync failed."""
    rows = error_rows(ctx, synced_before=False)
    message = (
        rows["data_type"].astype("string")
        + " is in "
        + rows["current_status"].astype("string")
        + " and has never synced successfully: the company has no "
        + rows["data_type"].astype("string")
        + " data."
        + error_text(ctx, rows)
    )
    return pd.DataFrame(
        {
            **status_columns(rows),
            "message": message,
            "remedy": remedy_for(rows),
        },
        index=rows.index,
    )


RULE = Rule(
    code="FA202",
    name="first-sync-failed",
    default_severity="error",
    options_model=RuleOptions,
    check=check,
    doc=__doc__ or "",
)
