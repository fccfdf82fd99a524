"""Helpers that several rules share (a rule module never imports another rule module).

``failed-after-success`` and ``first-sync-failed`` read the same error rows (non-auth error
statuses, with or without an earlier successful sync), give the same remedy per status and
quote the same pull operation error text; ``stuck-sync`` reads the pull operations too.
``cross-type-skew`` and ``history-window`` start from the same consistency groups.

Connection lifecycle (``docs/codat-behaviour.md``, "Connection lifecycle"): a company none of
whose connections is other than ``Unlinked`` (or that has none) is **not monitored**
(:func:`unmonitored_companies`); the freshness rules leave its rows out
(:func:`monitored_rows`). :func:`has_tag` matches company tags kept as JSON text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import pandas as pd

from auditor.constants import FAILED_AFTER_SUCCESS_STATUSES
from auditor.rules._base import STATUS_COLUMNS, Monitoring, RuleContext, has_tag
from auditor.vectors import isin, map_values, text

__all__ = [
    "CONSISTENCY_GROUPS",
    "REMEDY_BY_STATUS",
    "error_rows",
    "error_text",
    "expected_deauthorized",
    "has_tag",
    "monitored_rows",
    "nonblank",
    "pull_operation_of",
    "remedy_for",
    "unmonitored_companies",
    "unreadable_sync_time",
]

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


def unmonitored_companies(companies: pd.DataFrame) -> pd.Index:
    """Ids of the companies of a ``companies`` frame that are not monitored: every connection
    is ``Unlinked`` (the client severed it on purpose), or there is none. A connection whose
    status could not be read counts as monitored; a company absent from the frame is not
    listed (nothing says it is not monitored)."""
    if companies.empty:
        return pd.Index([], dtype="string")
    codes, uniques = pd.factorize(text(companies["company_id"]), use_na_sentinel=True)
    active = companies["connection_id"].notna().to_numpy() & ~isin(
        companies["connection_status"], ["Unlinked"]
    )
    known = codes >= 0
    has_active = np.bincount(codes[known & active], minlength=len(uniques)) > 0
    out: pd.Index = pd.Index(uniques[~has_active], dtype="string")
    return out


def expected_deauthorized(monitoring: Monitoring, companies: pd.DataFrame) -> np.ndarray:
    """For each row of a companies frame: a connection Deauthorized by design (its platform
    or integration key, or its company's tags, are in ``[monitoring]``)."""
    deauth = isin(companies["connection_status"], ["Deauthorized"])
    out = np.zeros(len(companies), dtype=bool)
    if not deauth.any():
        return out
    if monitoring.expected_deauthorized_platforms:
        names = {p.casefold() for p in monitoring.expected_deauthorized_platforms}
        for column in ("platform", "integration_key"):
            found = text(companies[column]).str.casefold().isin(names)
            out |= found.to_numpy(dtype=bool, na_value=False)
    if monitoring.expected_deauthorized_tags and "company_tags" in companies.columns:
        out |= has_tag(companies["company_tags"], monitoring.expected_deauthorized_tags)
    return np.asarray(out & deauth, dtype=bool)


def monitored_rows(ctx: RuleContext, frame: pd.DataFrame) -> np.ndarray:
    """A bool mask over ``frame``'s rows: True where the row's company is monitored, and its
    connection (when the frame names one) is not Deauthorized by design (``[monitoring]``)."""
    out = np.ones(len(frame), dtype=bool)
    if frame.empty:
        return out
    unmonitored = unmonitored_companies(ctx.companies)
    if not unmonitored.empty:
        ids = frame["company_id"]
        if isinstance(ids.dtype, pd.CategoricalDtype):  # status: one look-up per company
            bad = np.append(ids.cat.categories.astype("string").isin(unmonitored), False)
            out &= ~bad[ids.cat.codes.to_numpy()]  # code -1 (null) takes the trailing False
        else:
            out &= ~isin(ids, unmonitored)
    companies = ctx.companies
    if "connection_id" in frame.columns and not companies.empty:
        expected = expected_deauthorized(ctx.monitoring, companies)
        if expected.any():
            keys = text(companies["company_id"], "") + "|" + text(companies["connection_id"], "")
            rows = text(frame["company_id"], "") + "|" + text(frame["connection_id"], "")
            out &= ~isin(rows, keys[expected])
    return out
