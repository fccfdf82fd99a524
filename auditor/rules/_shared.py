"""Helpers that several rules share (a rule module never imports another rule module).

``failed-after-success`` and ``first-sync-failed`` read the same error rows (non-auth error
statuses, with or without an earlier successful sync) and give the same remedy per status.

Connection lifecycle (``docs/codat-behaviour.md``, "Connection lifecycle"): a company none of
whose connections is other than ``Unlinked`` (or that has none) is **not monitored**
(:func:`unmonitored_companies`); the freshness rules leave its rows out
(:func:`monitored_rows`). :func:`has_tag` matches company tags kept as JSON text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Final

import numpy as np
import pandas as pd

from auditor.constants import FAILED_AFTER_SUCCESS_STATUSES
from auditor.rules._base import STATUS_COLUMNS, RuleContext
from auditor.vectors import isin, map_values, text

__all__ = [
    "REMEDY_BY_STATUS",
    "error_rows",
    "has_tag",
    "monitored_rows",
    "remedy_for",
    "unmonitored_companies",
]

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


def monitored_rows(ctx: RuleContext, frame: pd.DataFrame) -> np.ndarray:
    """A bool mask over ``frame``'s rows: True where the row's company is monitored."""
    unmonitored = unmonitored_companies(ctx.companies)
    if unmonitored.empty or frame.empty:
        return np.ones(len(frame), dtype=bool)
    ids = frame["company_id"]
    if isinstance(ids.dtype, pd.CategoricalDtype):  # status: one look-up per company
        bad = np.append(ids.cat.categories.astype("string").isin(unmonitored), False)
        return ~bad[ids.cat.codes.to_numpy()]  # code -1 (null) takes the trailing False
    return ~isin(ids, unmonitored)


def has_tag(tags: pd.Series, wanted: Mapping[str, Iterable[str]]) -> np.ndarray:
    """A bool mask over ``tags`` (``company_tags`` JSON text, see ``auditor.snapshot.tags_json``):
    True where the company has a tag ``key`` whose value is one of ``wanted[key]``.

    Exact without parsing: in the canonical text a pair ``"k":"v"`` starts right after ``{``
    or ``,``, and a quote inside a key or value is escaped, so a substring cannot match across
    strings."""
    out = np.zeros(len(tags), dtype=bool)
    if not wanted or tags.empty:
        return out
    values = text(tags).fillna("")
    for key, options in wanted.items():
        for value in options:
            pair = json.dumps(key, ensure_ascii=False) + ":" + json.dumps(value, ensure_ascii=False)
            for lead in ("{", ","):
                found = values.str.contains(lead + pair, regex=False)
                out |= found.to_numpy(dtype=bool, na_value=False)
    return out
