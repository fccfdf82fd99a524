"""Helpers that several rules share (a rule module never imports another rule module).

``failed-after-success`` and ``first-sync-failed`` read the same error rows (non-auth error
statuses, with or without an earlier successful sync) and give the same remedy per status.
``cross-type-skew`` and ``history-window`` start from the same consistency groups.
"""

from __future__ import annotations

from typing import Final

import pandas as pd

from auditor.constants import FAILED_AFTER_SUCCESS_STATUSES
from auditor.rules._base import STATUS_COLUMNS, RuleContext
from auditor.vectors import isin, map_values

__all__ = ["CONSISTENCY_GROUPS", "REMEDY_BY_STATUS", "error_rows", "remedy_for"]

#: Data types that belong together (reports join them), checked unless the config changes
#: them: the default groups of ``cross-type-skew`` and ``history-window``.
CONSISTENCY_GROUPS: Final[dict[str, tuple[str, ...]]] = {
    "accounts-receivable": (
        "invoices",
        "creditNotes",
        "payments",
        "accountTransactions",
        "customers",
        "balanceSheet",
    ),
    "accounts-payable": (
        "bills",
        "billCreditNotes",
        "billPayments",
        "suppliers",
        "accountTransactions",
        "balanceSheet",
    ),
    "cash": ("bankAccounts", "bankTransactions", "balanceSheet", "cashFlowStatement"),
}

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
