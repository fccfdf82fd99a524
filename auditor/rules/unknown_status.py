"""A data type reports a status Codat does not document, or a field that could not be read.

What it flags
    Each company x data type whose ``currentStatus`` is present but outside the statuses of
    Codat's ``PullOperation.status`` enum (Initial, Queued, Fetching, MapQueued, Mapping,
    Complete, FetchError, MapError, InternalError, ProcessingQueued, Processing,
    ProcessingError, ValidationQueued, Validating, ValidationError, AuthError, Cancelled,
    NotSupported, RateLimitError, PermissionsError, PrerequisiteNotMet). Warning.

    Also each company x data type with a field Codat sent that could not be read (the status
    frame's ``unreadable_fields``): the message names the field (and quotes the raw text of
    an unreadable ``lastSuccessfulSync``, e.g. ``"yesterday"``). Such a row is audited with
    what was read: an unreadable ``lastSuccessfulSync`` is neither "never synced" nor stale.

Why it matters
    The other rules cannot tell whether an unknown status is healthy, running or failing, so
    this data type is effectively unaudited until someone looks. A sync time that cannot be
    read would otherwise look like "never synced" (a false alarm) or hide stale data.

How to fix
    Look the data type up in the Codat portal and in Codat's changelog. If Codat added a
    status, add it to ``auditor.constants`` (in the right set: error, in progress or
    neutral) so that the other rules handle it. For an unreadable field, look at the data type
    in the Codat portal and report the value to Codat support with the company id.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from auditor.constants import ALL_STATUSES
from auditor.rules._base import Rule, RuleContext, RuleOptions, status_columns
from auditor.vectors import concat, isin, text

__all__ = ["RULE", "check"]


def check(ctx: RuleContext) -> pd.DataFrame:
    """Data types with a status outside the known 21, or a field that could not be read."""
    status = ctx.status
    known = isin(status["current_status"], ALL_STATUSES)
    odd_status = status["current_status"].notna().to_numpy() & ~known
    unreadable = (
        status["unreadable_fields"].notna().to_numpy()
        if "unreadable_fields" in status.columns
        else np.zeros(len(status), dtype=bool)
    )
    rows = status.loc[odd_status | unreadable]
    odd = pd.Series(odd_status[odd_status | unreadable], index=rows.index)
    status_part = concat(
        text(rows["data_type"]),
        " reports status '",
        text(rows["current_status"]),
        "', which is not one of Codat's documented statuses.",
    ).where(odd, "").fillna("")
    fields_part = _unreadable_message(rows)
    both = odd & (fields_part != "")
    message = status_part + pd.Series(" ", index=rows.index, dtype="string").where(both, "")
    message = message + fields_part
    remedy = pd.Series(
        "Check the data type in the Codat portal and Codat's changelog; if the status is new, "
        "add it to auditor.constants so the other rules understand it.",
        index=rows.index,
        dtype="string",
    ).where(
        odd,
        "Look at the data type in the Codat portal and report the unreadable value to Codat "
        "support with the company id; queue a sync to see whether it reads correctly again.",
    )
    return pd.DataFrame(
        {
            **status_columns(rows),
            "message": message,
            "remedy": remedy,
        },
        index=rows.index,
    )


def _unreadable_message(rows: pd.DataFrame) -> pd.Series:
    """What could not be read, per row; empty where every field was read."""
    if "unreadable_fields" not in rows.columns:
        return pd.Series("", index=rows.index, dtype="string")
    fields = text(rows["unreadable_fields"]).str.replace(",", ", ", regex=False)
    raw = text(rows["last_successful_sync_raw"]) if "last_successful_sync_raw" in rows else None
    quoted = (" (Codat sent '" + raw + "')").fillna("") if raw is not None else ""
    lss = fields.str.contains("lastSuccessfulSync", regex=False).fillna(False)
    tail = pd.Series(
        "; the other fields were audited.", index=rows.index, dtype="string"
    ).where(
        ~lss,
        "; its last successful sync is unknown tonight, neither never synced nor stale, and "
        "the other fields were audited.",
    )
    message = concat(
        text(rows["data_type"]), ": Codat sent a value that could not be read in ", fields
    )
    message = message + quoted + tail
    return message.fillna("").astype("string")


RULE = Rule(
    code="FA401",
    name="unknown-status",
    default_severity="warning",
    options_model=RuleOptions,
    check=check,
    doc=__doc__ or "",
)
