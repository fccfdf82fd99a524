"""Remediation: queue Codat refreshes for what the audit flagged (``auditor refresh``).

Three steps, each usable on its own from a notebook:

1. :func:`plan_refreshes` (pure, vectorised): findings + snapshot -> one row per request to send.
   One ``POST /companies/{id}/data/queue/{dataType}?connectionId=`` per company x data type x
   connection, or one ``POST /companies/{id}/data/all`` when what that request queues (the
   fetchOnFirstLink types of the company's Linked connections) covers every flagged type and
   most of it is flagged. Only types served by a ``Linked`` connection are queued: types in
   ``AuthError`` and ``Deauthorized`` connections need a relink (rule ``needs-relink``),
   ``Unlinked`` or ``PendingAuth`` connections have nothing to refresh, and ``RateLimitError``
   is Codat's to retry. Each request records the types it queues (``queued_types``).
2. :func:`apply_refreshes` (async): sends the plan through the rate-limited client. A
   ``DatasetAlreadyInProgressException`` counts as ``already-running``, not as an error.
3. :func:`refresh_outcomes` (pure): joins what was queued with a later snapshot to say whether
   each queued type worked (a successful sync after the request), failed, or is still running;
   only the types a request queued are judged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Final

import numpy as np
import pandas as pd

from auditor.codat import (
    CodatClient,
    CodatError,
    CodatQuotaExhaustedError,
    DatasetAlreadyInProgressError,
)
from auditor.constants import ALL_DATA_TYPES, ERROR_STATUSES, IN_PROGRESS_STATUSES, source_type_of
from auditor.snapshot import Snapshot

__all__ = [
    "DEFAULT_REFRESH_RULES",
    "NOT_QUEUED_STATUSES",
    "OUTCOME_COLUMNS",
    "PLAN_COLUMNS",
    "REFRESH_OUTCOME_COLUMNS",
    "apply_refreshes",
    "data_all_types",
    "plan_refreshes",
    "refresh_outcomes",
]

DEFAULT_REFRESH_RULES: Final[tuple[str, ...]] = ("stale", "failed-after-success")

#: One row per request. ``data_type`` is null for a ``data/all`` request.
PLAN_COLUMNS: Final[tuple[str, ...]] = (
    "company_id",
    "company_name",
    "connection_id",
    "data_type",
    "action",  # "queue" or "all"
    "rules",  # the rules that flagged it, comma-separated
    "severity",
    "flagged_types",  # how many of the company's types were flagged
    "queued_types",  # the data types the request queues, comma-separated (sorted)
)

#: :data:`PLAN_COLUMNS` plus what happened.
OUTCOME_COLUMNS: Final[tuple[str, ...]] = (
    *PLAN_COLUMNS,
    "outcome",  # "queued", "already-running", "failed", "not-sent" (quota ran out), "skipped-cap"
    "dataset_id",
    "status_code",
    "error",
    "requested_at",
)

#: What :func:`refresh_outcomes` returns: one row per refreshed data type.
REFRESH_OUTCOME_COLUMNS: Final[tuple[str, ...]] = (
    *OUTCOME_COLUMNS,
    "current_status",
    "last_successful_sync",
    "result",  # "worked", "failed", "running", "unknown"
)

#: Statuses that remediation never queues: ``AuthError`` needs a relink (``needs-relink``);
#: ``RateLimitError`` is the source platform rate-limiting Codat, which retries on its own
#: next attempt, so a new sync only adds to the load.
NOT_QUEUED_STATUSES: Final[frozenset[str]] = frozenset({"AuthError", "RateLimitError"})

_SEVERITY_RANK: Final[dict[str, int]] = {"error": 0, "warning": 1}


def plan_refreshes(
    findings: pd.DataFrame,
    snapshot: Snapshot,
    *,
    rules: Iterable[str] = DEFAULT_REFRESH_RULES,
    all_fraction: float = 0.5,
    max_requests: int | None = None,
) -> pd.DataFrame:
    """The requests that would refresh what ``rules`` flagged in ``findings``.

    A company gets one ``data/all`` request instead of per-type requests only when the types
    that request would queue (:func:`data_all_types`) include every flagged type, none of
    them is in ``RateLimitError``, and more than ``all_fraction`` of them are flagged;
    otherwise each flagged type is queued on its own. ``queued_types`` says which types each
    request queues (what :func:`refresh_outcomes` judges). Types in ``AuthError`` (relink
    instead) and ``RateLimitError`` (the platform is rate-limiting Codat, which retries on its
    own: queueing more syncs only adds to the load) are never queued; neither are types
    without a Linked connection. Snoozed findings are ignored. The plan is ordered worst first
    (errors, then oldest) and cut at ``max_requests``.
    """
    rules = tuple(rules)
    f = findings
    if "snoozed" in f.columns:
        f = f.loc[~f["snoozed"].fillna(False).astype(bool)]
    f = f.loc[f["rule"].astype("string").isin(rules) & f["data_type"].notna()]
    status = snapshot.status
    cols = ["company_id", "data_type", "connection_id", "current_status", "connection_status"]
    st = status[cols].astype(
        {"company_id": "string", "data_type": "string", "current_status": "string"}
    )
    f = f.assign(
        company_id=f["company_id"].astype("string"), data_type=f["data_type"].astype("string")
    )[["company_id", "company_name", "data_type", "rule", "severity", "age_hours"]]
    merged = f.merge(st, on=["company_id", "data_type"], how="left")
    # A refresh needs a Linked connection; it cannot fix AuthError (relink instead), and a
    # RateLimitError is Codat's to retry (a new sync only adds load on the platform).
    linked = merged["connection_status"].astype("string").fillna("").eq("Linked")
    never = merged["current_status"].fillna("").isin(list(NOT_QUEUED_STATUSES))
    merged = merged.loc[linked & ~never]
    if merged.empty:
        return pd.DataFrame({c: [] for c in PLAN_COLUMNS})

    merged = merged.assign(
        sev_rank=merged["severity"].astype("string").map(_SEVERITY_RANK).fillna(2)
    )
    per_type = (
        merged.groupby(["company_id", "connection_id", "data_type"], dropna=False, observed=True)
        .agg(
            company_name=("company_name", "first"),
            rules=("rule", lambda s: ",".join(sorted(set(s.astype(str))))),
            sev_rank=("sev_rank", "min"),
            age_hours=("age_hours", "max"),
        )
        .reset_index()
    )
    flagged_count = per_type.groupby("company_id").size()
    per_type["flagged_types"] = per_type["company_id"].map(flagged_count).astype("int64")

    candidates = data_all_types(snapshot, per_type["company_id"].unique())
    all_count = candidates.groupby("company_id").size()
    blocked = candidates.loc[
        candidates["current_status"].fillna("").isin(list(NOT_QUEUED_STATUSES)), "company_id"
    ].unique()
    covered = per_type.merge(
        candidates[["company_id", "data_type"]], on=["company_id", "data_type"], how="left",
        indicator=True,
    )
    covered_count = (
        covered.loc[covered["_merge"].eq("both")].drop_duplicates(["company_id", "data_type"])
        .groupby("company_id").size()
    )
    distinct_flagged = per_type.drop_duplicates(["company_id", "data_type"]).groupby(
        "company_id"
    ).size()
    company = per_type["company_id"]
    n_all = company.map(all_count).fillna(0)
    use_all = (
        company.map(covered_count).fillna(0).eq(company.map(distinct_flagged))
        & ~company.isin(blocked)
        & (n_all > 0)
        & (company.map(distinct_flagged) > all_fraction * n_all)
    )

    queue = per_type.loc[~use_all].assign(action="queue")
    queue["queued_types"] = queue["data_type"].astype("string")
    all_types = candidates.groupby("company_id")["data_type"].agg(
        lambda s: ",".join(sorted(s.astype(str)))
    )
    everything = (
        per_type.loc[use_all]
        .groupby("company_id")
        .agg(
            company_name=("company_name", "first"),
            rules=("rules", lambda s: ",".join(sorted(set(",".join(s).split(","))))),
            sev_rank=("sev_rank", "min"),
            age_hours=("age_hours", "max"),
            flagged_types=("flagged_types", "first"),
        )
        .reset_index()
        .assign(action="all", data_type=None, connection_id=None)
    )
    everything["queued_types"] = everything["company_id"].map(all_types)
    plan = pd.concat([queue, everything], ignore_index=True)
    plan = plan.sort_values(["sev_rank", "age_hours"], ascending=[True, False], kind="stable")
    plan["severity"] = np.where(plan["sev_rank"].eq(0), "error", "warning")
    plan = plan[list(PLAN_COLUMNS)].reset_index(drop=True)
    if max_requests is not None:
        plan = plan.head(max_requests)
    return plan


def data_all_types(snapshot: Snapshot, company_ids: Iterable[str] | None = None) -> pd.DataFrame:
    """What ``POST /companies/{id}/data/all`` would queue, per company (as far as we know).

    Codat's refresh-company-data "refreshes all data types with fetch on first link set to
    true" (docs.codat.io/core-concepts/data-type-settings), on the company's ``Linked``
    connections. So: each data type whose setting has ``fetch_on_first_link`` (the company's
    own setting in ``snapshot.sync_settings`` over the client-level one) and that a Linked
    connection of its source type serves, less the types ``NotSupported`` or still running
    in the snapshot (the sandbox skips both; we assume Codat does). Columns ``company_id``,
    ``data_type``, ``current_status`` (null: never synced), in company then type order.
    """
    out_cols = ["company_id", "data_type", "current_status"]
    companies = snapshot.companies
    linked = companies.loc[
        companies["connection_status"].astype("string").fillna("").eq("Linked"),
        ["company_id", "source_type"],
    ].astype({"company_id": "string", "source_type": "string"})
    if company_ids is not None:
        linked = linked.loc[linked["company_id"].isin(pd.Index(list(company_ids)).astype(str))]
    linked = linked.assign(source_type=linked["source_type"].fillna("Accounting"))
    linked = linked.drop_duplicates()
    settings = snapshot.sync_settings
    types = sorted(
        set(ALL_DATA_TYPES) | {str(t) for t in settings["data_type"].dropna().astype("string")}
    )
    catalogue = pd.DataFrame(
        {"data_type": types, "source_type": [source_type_of(t) for t in types]}
    ).astype("string")
    cand = linked.merge(catalogue, on="source_type")[["company_id", "data_type"]]
    if cand.empty:
        return pd.DataFrame({c: pd.Series([], dtype="string") for c in out_cols})
    cand = cand.assign(fetch=_fetch_on_first_link(cand, settings))
    cand = cand.loc[cand["fetch"], ["company_id", "data_type"]]
    st = snapshot.status[["company_id", "data_type", "current_status"]].astype("string")
    cand = cand.merge(st, on=["company_id", "data_type"], how="left")
    skip = cand["current_status"].fillna("").isin(["NotSupported", *IN_PROGRESS_STATUSES])
    cand = cand.loc[~skip].drop_duplicates(["company_id", "data_type"])
    return cand.sort_values(["company_id", "data_type"], kind="stable")[out_cols].reset_index(
        drop=True
    )


def _fetch_on_first_link(frame: pd.DataFrame, settings: pd.DataFrame) -> pd.Series:
    """``fetch_on_first_link`` per row of ``frame`` (company_id x data_type): the company's own
    setting over the client-level one; a type with neither is not fetched (False)."""
    fetch = settings["fetch_on_first_link"].astype("boolean")
    client = settings.loc[settings["company_id"].isna()].assign(fetch=fetch)
    client = client.drop_duplicates("data_type", keep="last")
    base = dict(zip(client["data_type"].astype(str), client["fetch"], strict=True))
    out = frame["data_type"].map(base).astype("boolean")
    own = settings.loc[settings["company_id"].notna()].assign(fetch=fetch)
    own = own.loc[own["fetch"].notna()]
    if not own.empty:
        own = own[["company_id", "data_type", "fetch"]].astype(
            {"company_id": "string", "data_type": "string"}
        ).drop_duplicates(["company_id", "data_type"], keep="last")
        hit = frame[["company_id", "data_type"]].merge(own, on=["company_id", "data_type"],
                                                        how="left")
        values = pd.Series(hit["fetch"].to_numpy(), index=frame.index, dtype="boolean")
        out = values.fillna(out)
    return out.fillna(False).astype(bool)


async def apply_refreshes(
    client: CodatClient, plan: pd.DataFrame, *, now: datetime
) -> pd.DataFrame:
    """Send every request of ``plan`` concurrently through ``client`` (its limiter applies)."""

    async def send(row: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {**row, "dataset_id": None, "status_code": None, "error": None}
        out["requested_at"] = now
        company_id = str(row["company_id"])
        try:
            if row["action"] == "all":
                await client.refresh_all(company_id)
            else:
                conn = row["connection_id"]
                op = await client.refresh_data_type(
                    company_id,
                    str(row["data_type"]),
                    connection_id=None if conn is None or pd.isna(conn) else str(conn),
                )
                out["dataset_id"] = op.id
                if op.requested is not None:  # Codat's own clock, when it says
                    out["requested_at"] = op.requested
            out["outcome"] = "queued"
        except CodatQuotaExhaustedError as exc:
            # The daily quota ran out (or reached the customer's reserve): nothing more is
            # sent tonight, and what was not sent is said so (never "failed": Codat did not
            # refuse the refresh itself).
            out["outcome"] = "not-sent"
            out["status_code"] = getattr(exc, "status_code", None)
            out["error"] = str(exc)
        except DatasetAlreadyInProgressError as exc:
            out["outcome"] = "already-running"
            out["status_code"] = getattr(exc, "status_code", None)
            out["error"] = str(exc)
        except CodatError as exc:
            out["outcome"] = "failed"
            out["status_code"] = getattr(exc, "status_code", None)
            out["error"] = str(exc)
        return out

    rows: list[dict[str, Any]] = [
        {str(k): v for k, v in r.items()} for r in plan.to_dict("records")
    ]
    results = await asyncio.gather(*(send(r) for r in rows))
    frame = pd.DataFrame(list(results), columns=list(OUTCOME_COLUMNS))
    frame["requested_at"] = pd.to_datetime(frame["requested_at"], utc=True)
    frame["status_code"] = frame["status_code"].astype("Int64")
    return frame


def refresh_outcomes(refreshes: pd.DataFrame, snapshot: Snapshot) -> pd.DataFrame:
    """Did each queued refresh work? Joins ``refreshes`` with a later ``snapshot``.

    One row per data type a request queued (``queued_types``; a ``data/all`` request gives one
    row per type it queued, with ``data_type`` set). ``result`` is ``worked`` (a successful
    sync at or after the request), ``failed`` (the type is now in an error state),
    ``running`` (still in progress) or ``unknown`` (e.g. the type is missing from the later
    snapshot). A ``data/all`` recorded before ``queued_types`` existed is judged, as then, on
    all of the company's types but ``NotSupported`` ones.
    """
    queued = refreshes.loc[refreshes["outcome"].isin(["queued", "already-running"])]
    if "queued_types" not in queued.columns:
        queued = queued.assign(queued_types=pd.Series(pd.NA, index=queued.index, dtype="string"))
    st = snapshot.status[
        ["company_id", "data_type", "current_status", "last_successful_sync"]
    ].astype({"company_id": "string", "data_type": "string", "current_status": "string"})
    queued = queued.astype({"company_id": "string"})
    per_type = queued.loc[queued["action"].eq("queue")].astype({"data_type": "string"})
    per_type = per_type.merge(st, on=["company_id", "data_type"], how="left")
    all_rows = queued.loc[queued["action"].eq("all")]
    known = all_rows["queued_types"].notna()
    listed = all_rows.loc[known].drop(columns=["data_type"])
    listed = listed.assign(
        data_type=listed["queued_types"].astype(str).str.split(",")
    ).explode("data_type")
    listed = listed.loc[listed["data_type"].astype(str).ne("")].astype({"data_type": "string"})
    listed = listed.merge(st, on=["company_id", "data_type"], how="left")
    legacy = all_rows.loc[~known].drop(columns=["data_type"])
    legacy = legacy.merge(st, on="company_id", how="left")
    legacy = legacy.loc[~legacy["current_status"].fillna("NotSupported").eq("NotSupported")]
    parts = [p for p in (per_type, listed, legacy) if not p.empty]
    if not parts:
        return pd.DataFrame({c: [] for c in REFRESH_OUTCOME_COLUMNS})
    both = pd.concat(parts, ignore_index=True)
    synced = both["last_successful_sync"].ge(both["requested_at"]).fillna(False).astype(bool)
    status = both["current_status"].fillna("")
    both["result"] = np.select(
        [synced, status.isin(list(ERROR_STATUSES)), status.isin(list(IN_PROGRESS_STATUSES))],
        ["worked", "failed", "running"],
        default="unknown",
    )
    return both[list(REFRESH_OUTCOME_COLUMNS)].reset_index(drop=True)
