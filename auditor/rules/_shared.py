"""Helpers that several rules share (a rule module never imports another rule module).

``failed-after-success`` and ``first-sync-failed`` read the same error rows (non-auth error
statuses, with or without an earlier successful sync), give the same remedy per status and
quote the same pull operation error text; ``stuck-sync`` reads the pull operations too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import pandas as pd

from auditor.constants import FAILED_AFTER_SUCCESS_STATUSES
from auditor.rules._base import STATUS_COLUMNS, RuleContext
from auditor.vectors import isin, map_values, text

__all__ = [
    "REMEDY_BY_STATUS",
    "error_rows",
    "error_text",
    "nonblank",
    "pull_operation_of",
    "remedy_for",
    "unreadable_sync_time",
]

#: What ops should usually do about each error status (most then queue a new sync; not
#: ``RateLimitError``, which Codat retries itself and ``auditor refresh`` never queues).
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
    "RateLimitError": "The source platform rate-limited Codat's sync: Codat retries on its own, "
    "so wait for its next attempt rather than queueing more syncs; if it keeps failing, spread "
    "the company's sync schedule out (fewer or less frequent data types).",
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
    mask = mask & (has_sync if synced_before else ~has_sync & ~unreadable_sync_time(status))
    columns = [*STATUS_COLUMNS, "latest_sync_id"]
    return status.loc[mask, list(dict.fromkeys(columns))]


def unreadable_sync_time(status: pd.DataFrame) -> np.ndarray:
    """Rows whose ``lastSuccessfulSync`` was sent but could not be read: not "never synced"
    (``unknown-status`` flags them)."""
    if "last_successful_sync_raw" not in status.columns:
        return np.zeros(len(status), dtype=bool)
    return (
        status["last_successful_sync"].isna().to_numpy()
        & status["last_successful_sync_raw"].notna().to_numpy()
    )


def remedy_for(rows: pd.DataFrame) -> pd.Series:
    """The usual remedy for each row's error status."""
    remedies = map_values(rows["current_status"], REMEDY_BY_STATUS, _DEFAULT_REMEDY)
    return remedies.astype("string")


def pull_operation_of(
    ctx: RuleContext, rows: pd.DataFrame, columns: Sequence[str], *, by_data_type: bool = False
) -> pd.DataFrame:
    """For each row, ``columns`` of its latest pull operation (``latest_sync_id``) in the
    pull operations frame, aligned on ``rows.index`` (all missing where there is none).

    ``by_data_type``: a row whose ``latestSyncId`` is not in the frame takes the newest
    pull operation of the same company x data type instead (the collector carries the
    error pull operation of an incident still open from night to night, while Codat may
    have started and failed another sync since).
    """
    out = pd.DataFrame(index=rows.index, columns=list(columns), dtype="object")
    ops = ctx.pull_operations
    if ops.empty or rows.empty:
        return out
    cols = list(dict.fromkeys(["company_id", "dataset_id", "data_type", "requested", *columns]))
    ops = ops[cols].astype({"company_id": "string", "dataset_id": "string"})
    keys = pd.DataFrame(
        {
            "company_id": text(rows["company_id"]).to_numpy(),
            "dataset_id": text(rows["latest_sync_id"]).to_numpy(),
        }
    )
    by_id = keys.merge(
        ops.drop_duplicates(["company_id", "dataset_id"])[
            ["company_id", "dataset_id", *columns]
        ],
        on=["company_id", "dataset_id"],
        how="left",
    )
    found = by_id[list(columns)].set_axis(rows.index)
    if by_data_type:
        missing = found.isna().all(axis=1).to_numpy()
        if missing.any():
            newest = ops.assign(data_type=text(ops["data_type"])).sort_values(
                "requested", na_position="first", kind="stable"
            )
            newest = newest.drop_duplicates(["company_id", "data_type"], keep="last")
            alt = pd.DataFrame(
                {
                    "company_id": text(rows["company_id"]).to_numpy()[missing],
                    "data_type": text(rows["data_type"]).to_numpy()[missing],
                }
            ).merge(newest[["company_id", "data_type", *columns]], how="left")
            found.loc[missing, list(columns)] = alt[list(columns)].to_numpy()
    return found


def error_text(ctx: RuleContext, rows: pd.DataFrame) -> pd.Series:
    """The pull operation's ``errorMessage`` (else ``statusDescription``) for each error row,
    as `` Codat says: "..."`` ready to append to a message; empty where unknown."""
    found = pull_operation_of(ctx, rows, ["error_message", "status_description"], by_data_type=True)
    said = nonblank(found["error_message"]).fillna(nonblank(found["status_description"]))
    said = said.str.slice(0, _QUOTE_LIMIT)
    quoted: pd.Series = (' Codat says: "' + said + '".').fillna("").astype("string")
    return quoted


def nonblank(values: pd.Series) -> pd.Series:
    """``values`` as stripped text, blank text as missing."""
    stripped = text(values).str.strip()
    return stripped.where(stripped.str.len() > 0)


_QUOTE_LIMIT: Final = 300
