"""Remediation: queue Codat refreshes for what the audit flagged (``auditor refresh``).

Three steps, each usable on its own from a notebook:

1. :func:`plan_refreshes` (pure, vectorised): findings + snapshot -> one row per request to send.
   One ``POST /companies/{id}/data/queue/{dataType}?connectionId=`` per company x data type x
   connection, or one ``POST /companies/{id}/data/all`` when most of a company's syncable data
   types are flagged. Only types served by a ``Linked`` connection are queued: types in
   ``AuthError`` and ``Deauthorized`` connections need a relink (rule ``needs-relink``), and
   ``Unlinked`` or ``PendingAuth`` connections have nothing to refresh.
2. :func:`apply_refreshes` (async): sends the plan through the rate-limited client. A
   ``DatasetAlreadyInProgressException`` counts as ``already-running``, not as an error.
3. :func:`refresh_outcomes` (pure): joins what was queued with a later snapshot to say whether
   each refresh worked (a successful sync after the request), failed, or is still running.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Final

import numpy as np
import pandas as pd

from auditor.codat import CodatClient, CodatError, DatasetAlreadyInProgressError
from auditor.constants import ERROR_STATUSES, IN_PROGRESS_STATUSES
from auditor.snapshot import Snapshot

__all__ = [
    "DEFAULT_REFRESH_RULES",
    "OUTCOME_COLUMNS",
    "PLAN_COLUMNS",
    "REFRESH_OUTCOME_COLUMNS",
    "apply_refreshes",
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
)

#: :data:`PLAN_COLUMNS` plus what happened.
OUTCOME_COLUMNS: Final[tuple[str, ...]] = (
    *PLAN_COLUMNS,
    "outcome",  # "queued", "already-running", "failed", "skipped-cap"
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

    A company gets one ``data/all`` request instead of per-type requests when more than
    ``all_fraction`` of its syncable data types (status neither ``NotSupported`` nor never
    synced) are flagged. Snoozed findings are ignored. The plan is ordered worst first (errors,
    then oldest) and cut at ``max_requests``.
    """
    rules = tuple(rules)
    f = findings
    if "snoozed" in f.columns:
        f = f.loc[~f["snoozed"].fillna(False).astype(bool)]
    f = f.loc[f["rule"].astype("string").isin(rules) & f["data_type"].notna()]
    status = snapshot.status
    cols = ["company_id", "data_type", "connection_id", "current_status", "connection_status"]
    st = status[cols].astype({"data_type": "string", "current_status": "string"})
    f = f.assign(data_type=f["data_type"].astype("string"))[
        ["company_id", "company_name", "data_type", "rule", "severity", "age_hours"]
    ]
    merged = f.merge(st, on=["company_id", "data_type"], how="left")
    # A refresh needs a Linked connection, and cannot fix AuthError (relink instead).
    linked = merged["connection_status"].astype("string").fillna("").eq("Linked")
    merged = merged.loc[linked & ~merged["current_status"].fillna("").eq("AuthError")]
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
    syncable = status.loc[
        status["current_status"].notna() & ~status["current_status"].astype("string").eq(
            "NotSupported"
        )
    ]
    syncable_count = syncable.groupby("company_id", observed=True).size()
    flagged_count = per_type.groupby("company_id").size()
    per_type["flagged_types"] = per_type["company_id"].map(flagged_count).astype("int64")
    per_type["syncable"] = per_type["company_id"].map(syncable_count).fillna(0)
    use_all = per_type["flagged_types"] > all_fraction * per_type["syncable"]

    queue = per_type.loc[~use_all].assign(action="queue")
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
    plan = pd.concat([queue, everything], ignore_index=True)
    plan = plan.sort_values(["sev_rank", "age_hours"], ascending=[True, False], kind="stable")
    plan["severity"] = np.where(plan["sev_rank"].eq(0), "error", "warning")
    plan = plan[list(PLAN_COLUMNS)].reset_index(drop=True)
    if max_requests is not None:
        plan = plan.head(max_requests)
    return plan


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

    ``result`` is ``worked`` (a successful sync at or after the request), ``failed`` (the type is
    now in an error state), ``running`` (still in progress) or ``unknown``. A ``data/all``
    request is judged on all of the company's types: worked when every syncable type synced.
    """
    queued = refreshes.loc[refreshes["outcome"].isin(["queued", "already-running"])]
    st = snapshot.status[
        ["company_id", "data_type", "current_status", "last_successful_sync"]
    ].astype({"data_type": "string", "current_status": "string"})
    per_type = queued.loc[queued["action"].eq("queue")].astype({"data_type": "string"})
    per_type = per_type.merge(st, on=["company_id", "data_type"], how="left")
    all_rows = queued.loc[queued["action"].eq("all")].drop(columns=["data_type"])
    all_rows = all_rows.merge(st, on="company_id", how="left")
    all_rows = all_rows.loc[~all_rows["current_status"].fillna("NotSupported").eq("NotSupported")]
    both = pd.concat([per_type, all_rows], ignore_index=True)
    synced = both["last_successful_sync"].ge(both["requested_at"]).fillna(False).astype(bool)
    status = both["current_status"].fillna("")
    both["result"] = np.select(
        [synced, status.isin(list(ERROR_STATUSES)), status.isin(list(IN_PROGRESS_STATUSES))],
        ["worked", "failed", "running"],
        default="unknown",
    )
    return both[list(REFRESH_OUTCOME_COLUMNS)]
