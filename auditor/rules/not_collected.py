"""A company's data status could not be collected in this snapshot.

What it flags
    One finding per company in the snapshot's collection-errors frame (its ``dataStatus``, an
    entry of it, or its own sync settings could not be read after retries), saying exactly
    what could not be read, with the HTTP status, the error text, the number of attempts and
    Codat's correlation id. Severity error. A company whose dataStatus was partly read is
    audited with what was read, and the message says so.

    A fleet-wide input that could not be read (the client's sync settings,
    ``GET /profile/syncSettings``) is one fleet-level finding (no company) that names the input
    and says what the audit fell back to: thresholds taken from sync schedules are the rules'
    defaults tonight. The nightly run exits 2 when there is one: the audit is not "all clear".

When it is not raised
    A pull operation that could not be read (``get-pull-operation``, ``list-pull-operations``;
    fetched to time a sync in progress or to quote a sync error) is not "not collected": the
    company's dataStatus was read and it is audited with it (a sync whose request time is
    unknown is not timed, an error is reported without Codat's text).

Why it matters
    Nothing else can be said about the company tonight: its findings from last night may be
    resolved or worse, and the report cannot tell. A company that keeps failing to collect may
    have been deleted, or Codat may be failing for it.

How to fix
    Read the error: 404 means the company no longer exists in Codat (remove it from the fleet);
    401/403 means the API key lacks access to it; 429/5xx are transient, and the next run
    usually succeeds. If it repeats, send Codat support the correlation id.
"""

from __future__ import annotations

import pandas as pd

from auditor.rules._base import Rule, RuleContext, RuleOptions
from auditor.vectors import isin

__all__ = ["RULE", "check"]


#: What each fleet-wide input is, and what the audit does without it.
FLEET_INPUTS: dict[str, tuple[str, str]] = {
    "get-profile-syncSettings": (
        "the client's sync settings (GET /profile/syncSettings)",
        "thresholds that follow each data type's sync schedule fell back to the rules' "
        "defaults, so stale data may go unflagged or be flagged too early",
    ),
    "event-log": (
        "the webhook event log (auditor listen)",
        "validation warnings and connection events since the previous audit are unknown, "
        "and open validation-warning incidents stay open",
    ),
}


def _fleet_inputs(errors: pd.DataFrame) -> pd.DataFrame:
    """One fleet-level finding per fleet-wide input that could not be read."""
    fleet = errors.loc[errors["company_id"].isna()].drop_duplicates("endpoint")
    if fleet.empty:
        return pd.DataFrame()
    endpoint = fleet["endpoint"].astype("string").fillna("unknown")
    what = endpoint.map(lambda e: FLEET_INPUTS.get(str(e), (f"a fleet-wide input ({e})", ""))[0])
    fallback = endpoint.map(lambda e: FLEET_INPUTS.get(str(e), ("", "the audit ran without it"))[1])
    code = fleet["status_code"].astype("string").fillna("no response")
    detail = fleet["error"].astype("string").fillna("unknown error")
    local = (endpoint == "event-log").to_numpy(bool)  # a file in the store, not a request
    http = ("HTTP " + code + " ").where(~local, "")
    message = (
        "Could not read "
        + what.astype("string")
        + " ("
        + http
        + detail
        + "): "
        + fallback.astype("string")
        + ". Tonight's audit is incomplete."
    )
    return pd.DataFrame(
        {
            "message": message,
            "remedy": pd.Series(
                "Re-run the audit once Codat answers (check the API key's access to the "
                "profile and Codat's status page); do not read tonight's report as all clear.",
                index=fleet.index,
            ).where(
                ~local,
                "Repair or move aside the damaged file of STORE/events named in the message "
                "(docs/listen.md), then re-run the audit; do not read tonight's report as all "
                "clear.",
            ),
        },
        index=fleet.index,
    )


#: What each per-company request reads, for the message (by the errors frame's endpoint).
COMPANY_INPUTS: dict[str, str] = {
    "get-company-data-status": "its data status (GET /companies/{id}/dataStatus)",
    "get-company-syncSettings": "its own sync settings (GET /companies/{id}/syncSettings)",
}
#: Requests about one pull operation: the company was audited with its dataStatus.
PULL_OPERATION_ENDPOINTS: frozenset[str] = frozenset(
    {"get-pull-operation", "list-pull-operations"}
)


def check(ctx: RuleContext) -> pd.DataFrame:
    """One finding per company that could not be collected, one per fleet input unread."""
    fleet = _fleet_inputs(ctx.errors)
    errors = ctx.errors.loc[
        ctx.errors["company_id"].notna().to_numpy()
        & ~ctx.errors["endpoint"].astype("string").isin(PULL_OPERATION_ENDPOINTS).to_numpy()
    ]
    if errors.empty:
        return fleet
    counts = errors.groupby("company_id", sort=False).size()
    first = errors.drop_duplicates("company_id", keep="first")
    more = pd.Series(counts.reindex(first["company_id"]).to_numpy() - 1, index=first.index)
    companies = ctx.companies.drop_duplicates("company_id", keep="first")
    company_info = first[["company_id"]].merge(
        companies[["company_id", "company_name", "platform"]], on="company_id", how="left"
    )
    name = first["company_name"].astype("string").fillna(
        pd.Series(company_info["company_name"].to_numpy(), index=first.index, dtype="string")
    )
    code = first["status_code"].astype("string").fillna("no response")
    detail = first["error"].astype("string").fillna("unknown error")
    attempts = first["attempts"].astype("string").fillna("?")
    correlation = first["correlation_id"].astype("string")
    endpoint = first["endpoint"].astype("string")
    what = endpoint.map(lambda e: COMPANY_INPUTS.get(str(e), str(e))).astype("string")
    read = pd.Series(
        isin(first["company_id"], ctx.status["company_id"].dropna().unique()),
        index=first.index,
    )
    message = (
        "Could not collect "
        + what.where(endpoint.notna(), "its data status")
        + ": HTTP "
        + code
        + " "
        + detail
        + " after "
        + attempts
        + pd.Series(" attempts", index=first.index).where(attempts != "1", " attempt")
        + ("; correlation id " + correlation).fillna("")
        + (
            "; and " + more.astype("string") + " more failed request"
            + pd.Series("s", index=first.index).where(more != 1, "")
        ).where(more > 0, "")
        + pd.Series(
            "; what was read of the company is audited as usual.", index=first.index
        ).where(read, ".")
    )
    companies_out = pd.DataFrame(
        {
            "company_id": first["company_id"],
            "company_name": name,
            "platform": pd.Series(company_info["platform"].to_numpy(), index=first.index),
            "message": message,
            "remedy": "404: the company was deleted in Codat, remove it from the fleet; "
            "401/403: check the API key's access; 429/5xx: transient, re-run or wait for the "
            "next night. If it repeats, send Codat support the correlation id.",
        },
        index=first.index,
    )
    return pd.concat([fleet, companies_out], ignore_index=True) if len(fleet) else companies_out


RULE = Rule(
    code="FA402",
    name="not-collected",
    default_severity="error",
    options_model=RuleOptions,
    check=check,
    doc=__doc__ or "",
)
