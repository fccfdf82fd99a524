"""The incident ledger: what changed since the previous audit.

Every finding has a stable ``incident_key``: ``rule|company_id|connection_id|group-or-data_type``
(empty parts for nulls; a ``provider-incident`` uses ``provider-incident|platform|data_type|
rule|status``). Comparing tonight's findings with the previous audit's gives each finding a
``state``:

``new``        not open in the previous audit and not remembered as resolved
``ongoing``    open in the previous audit: ``first_seen`` is carried over and ``nights_open``
               is the previous value + 1
``regressed``  remembered as resolved and back tonight: ``first_seen`` is the original one,
               ``nights_open`` restarts at 1

and the incidents open in the previous audit that are gone tonight are returned as the
``resolved`` table (``state='resolved'``, values as last seen).

Not collected is not resolved
-----------------------------
A company that could not be read tonight (its ``dataStatus`` failed: it is in the snapshot's
``errors`` frame with no status rows) cannot have resolved anything. Its incidents open in the
previous audit are kept in tonight's findings as they were (``state`` ``ongoing``,
``nights_open`` + 1, ``carried_over`` true) and are judged again on the first night it is read.
Its ``not-collected`` finding is tonight's own; last night's ``not-collected`` is not carried.

Between two nights (webhook events)
-----------------------------------
With the event log (``auditor listen``), a connection that Codat reported disconnected and
then reconnected since the previous audit is not "nothing happened": :func:`connection_incidents`
lists it as a resolved ``needs-relink`` incident that says what happened ("disconnected at
14:02 UTC, reconnected at 16:40 UTC"), or adds that to the resolved row when the incident was
already open last night. A connection disconnected again (or still) tonight is left to
tonight's findings.

What the store must keep
------------------------
Only the previous audit's two tables: pass ``previous = pd.concat([findings, resolved])`` of the
previous night (:func:`previous_tables` does it). Rows with ``state == 'resolved'`` are the
resolution memory; rows with any other state are the incidents open last night. To remember
resolutions for longer than one night (an incident resolved on Monday and back on Thursday is
``regressed`` rather than ``new``), also pass the resolved tables of earlier nights: the newest
row per key wins.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from auditor.findings import conform_findings, empty_findings
from auditor.vectors import fmt_ts, isin, text

__all__ = [
    "apply_ledger",
    "connection_incidents",
    "incident_keys",
    "previous_tables",
    "unchecked_companies",
]


def incident_keys(findings: pd.DataFrame) -> pd.Series:
    """``rule|company_id|connection_id|group-or-data_type`` for each finding (vectorised)."""
    scope = findings["group"].astype("string").fillna(findings["data_type"].astype("string"))
    return (
        text(findings["rule"], "")
        + "|"
        + text(findings["company_id"], "")
        + "|"
        + text(findings["connection_id"], "")
        + "|"
        + scope.fillna("")
    )


def previous_tables(findings: pd.DataFrame, resolved: Iterable[pd.DataFrame] = ()) -> pd.DataFrame:
    """The ``previous`` argument of :func:`auditor.engine.audit` from stored tables."""
    frames = [f for f in (findings, *resolved) if f is not None and len(f)]
    if not frames:
        return empty_findings()
    return pd.concat([conform_findings(f) for f in frames], ignore_index=True)


#: Rules whose findings are about tonight's collection itself: never carried over.
_NOT_CARRIED: tuple[str, ...] = ("not-collected",)


def apply_ledger(
    findings: pd.DataFrame,
    previous: pd.DataFrame | None,
    as_of: datetime,
    *,
    unchecked: Iterable[tuple[str | None, str | None]] = (),
    unchecked_types: Iterable[tuple[str, str, str]] = (),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(tonight's findings with state/first_seen/nights_open, the resolved incidents).

    ``unchecked``: ``(rule, company_id)`` pairs that could not be judged tonight (``None`` is
    any: ``(None, "c1")`` is a company that could not be read, ``("stale", None)`` a rule that
    failed for the whole fleet). Their incidents open in ``previous`` stay open (carried over):
    they are not resolved. ``unchecked_types``: ``(rule, company_id, data_type)`` triples
    not judged tonight, for a rule that judges each data type on its own evidence (e.g.
    ``validation-warning``: a type with no read event since the previous audit).
    """
    now = pd.Timestamp(as_of)
    out = findings.copy()
    out["carried_over"] = False
    n = len(out)
    if previous is None or previous.empty:
        out["state"] = _states(np.zeros(n, dtype=np.int8))
        out["first_seen"] = pd.Series(now, index=out.index, dtype="datetime64[ns, UTC]")
        out["nights_open"] = pd.array(np.ones(n, dtype="int64"), dtype="Int64")
        return conform_findings(out), empty_findings()

    prev = conform_findings(previous)
    missing_key = prev["incident_key"].isna().to_numpy()
    if missing_key.any():
        prev.loc[missing_key, "incident_key"] = incident_keys(prev.loc[missing_key])
    prev["first_seen"] = prev["first_seen"].fillna(prev["as_of"]).fillna(now)
    was_resolved = (prev["state"].astype("string") == "resolved").fillna(False).to_numpy(bool)

    # One integer code per key over tonight's and the previous rows.
    all_keys = pd.concat([out["incident_key"], prev["incident_key"]], ignore_index=True)
    codes, uniques = pd.factorize(all_keys.astype("string"))
    tonight, prev_codes = codes[:n], codes[n:]
    size = len(uniques) + 1

    # Last night's open incidents: the last row per key. Resolution memory: the newest row.
    open_rows = np.flatnonzero(~was_resolved)
    open_at = np.full(size, -1)
    np.maximum.at(open_at, prev_codes[open_rows], open_rows)
    closed_rows = np.flatnonzero(was_resolved)
    closed_rows = closed_rows[
        np.argsort(prev["as_of"].to_numpy(dtype="datetime64[ns]")[closed_rows], kind="stable")
    ]
    closed_at = np.full(size, -1)
    if len(closed_rows):
        closed_rank = np.full(size, -1)
        np.maximum.at(closed_rank, prev_codes[closed_rows], np.arange(len(closed_rows)))
        closed_at = np.where(closed_rank >= 0, closed_rows[np.maximum(closed_rank, 0)], -1)

    open_pos = open_at[tonight]
    closed_pos = closed_at[tonight]
    ongoing = open_pos >= 0
    regressed = (closed_pos >= 0) & ~ongoing

    out["state"] = _states(np.select([ongoing, regressed], [1, 2], 0).astype(np.int8))
    prev_first = prev["first_seen"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
    first = np.full(n, now.tz_convert("UTC").tz_localize(None).to_datetime64(), "datetime64[ns]")
    first[ongoing] = prev_first[open_pos[ongoing]]
    first[regressed] = prev_first[closed_pos[regressed]]
    out["first_seen"] = pd.Series(first, index=out.index).dt.tz_localize("UTC")
    nights_before = prev["nights_open"].astype("Float64").fillna(1).to_numpy(dtype="float64")
    nights = np.ones(n, dtype="int64")
    nights[ongoing] = nights_before[open_pos[ongoing]].astype("int64") + 1
    out["nights_open"] = pd.array(nights, dtype="Int64")

    seen_tonight = np.zeros(size, dtype=bool)
    seen_tonight[tonight] = True
    last_open = open_rows[open_at[prev_codes[open_rows]] == open_rows]
    gone = last_open[~seen_tonight[prev_codes[last_open]]]
    carried_mask = _unchecked_mask(prev.iloc[gone], list(unchecked), list(unchecked_types))
    carried = prev.iloc[gone[carried_mask]].copy()
    resolved = prev.iloc[gone[~carried_mask]].copy()
    resolved["state"] = "resolved"
    tonight_out = conform_findings(out)
    if len(carried):
        carried["state"] = "ongoing"
        carried["nights_open"] = (
            carried["nights_open"].astype("Float64").fillna(1).astype("int64") + 1
        )
        carried["carried_over"] = True
        carried["as_of"] = now
        tonight_out = pd.concat([tonight_out, conform_findings(carried)], ignore_index=True)
        tonight_out = conform_findings(tonight_out)
    return tonight_out, conform_findings(resolved.reset_index(drop=True))


def _unchecked_mask(
    rows: pd.DataFrame,
    unchecked: list[tuple[str | None, str | None]],
    types: list[tuple[str, str, str]] | None = None,
) -> Any:
    """Rows matching one of the ``(rule, company_id)`` patterns (``None`` matches any) or one
    of the ``(rule, company_id, data_type)`` triples."""
    mask = np.zeros(len(rows), dtype=bool)
    if (not unchecked and not types) or rows.empty:
        return mask
    if types:
        keys = (text(rows["rule"], "") + "|" + text(rows["company_id"], "") + "|"
                + text(rows["data_type"], ""))  # fmt: skip
        mask |= isin(keys, ["|".join(t) for t in types])
    companies = [c for r, c in unchecked if r is None and c is not None]
    rules = [r for r, c in unchecked if c is None and r is not None]
    pairs = [f"{r}|{c}" for r, c in unchecked if r is not None and c is not None]
    if companies:
        mask |= isin(rows["company_id"], companies)
    if rules:
        mask |= isin(rows["rule"], rules)
    if pairs:
        keys = text(rows["rule"], "") + "|" + text(rows["company_id"], "")
        mask |= isin(keys, pairs)
    return mask & ~isin(rows["rule"], _NOT_CARRIED)


def unchecked_companies(status: pd.DataFrame, errors: pd.DataFrame) -> list[str]:
    """Companies in the collection errors with no status rows: not read tonight."""
    failed = errors["company_id"].dropna().astype("string").unique()
    if not len(failed):
        return []
    read = isin(pd.Series(failed, dtype="string"), status["company_id"].dropna().unique())
    return [str(c) for c in failed[~read]]


_STATE_NAMES = pd.Index(["new", "ongoing", "regressed", "resolved"], dtype="string")


def _states(codes: np.ndarray) -> pd.Categorical[str]:
    return pd.Categorical.from_codes(codes, categories=_STATE_NAMES)


#: The rule (and its code) a connection disconnected between two nights is an incident of.
_RELINK_RULE, _RELINK_CODE = "needs-relink", "FA301"
_BACK = ("reconnected", "connected")


def connection_incidents(
    timelines: pd.DataFrame,
    findings: pd.DataFrame,
    resolved: pd.DataFrame,
    as_of: datetime,
) -> pd.DataFrame:
    """``resolved`` with the connections disconnected and reconnected between two audits.

    ``timelines``: the connection events since the previous audit, ordered by company,
    connection and time (:func:`auditor.events.connection_timelines`). A connection whose last
    event is ``reconnected`` (or ``connected``) after a ``disconnected`` is an incident that
    opened and closed between the nights: its ``needs-relink`` resolved row says so (added to
    the row when the incident was open last night, else a new resolved row, severity warning,
    ``first_seen`` the first disconnection, ``nights_open`` 0). Connections with a finding
    tonight under that key are left alone (disconnected again, or still). Vectorised."""
    if timelines.empty:
        return resolved
    keys = ["company_id", "connection_id"]
    rows = timelines.loc[timelines["company_id"].notna() & timelines["connection_id"].notna()]
    if rows.empty:
        return resolved
    what = rows["what"].astype("string")
    grouped = rows.groupby(keys, sort=False)
    last = grouped["what"].last().astype("string")
    gone = rows.loc[(what == "disconnected").fillna(False).to_numpy(bool)].groupby(keys)["at"]
    back = rows.loc[what.isin(_BACK).fillna(False).to_numpy(bool)].groupby(keys)["at"].max()
    table = pd.DataFrame(
        {
            "last": last,
            "first_gone": gone.min(),
            "times": gone.size(),
            "back": back,
            "company_name": grouped["company_name"].last(),
            "platform": grouped["platform"].last(),
        }
    )
    table = table.loc[
        table["last"].isin(_BACK).fillna(False).to_numpy(bool)
        & table["first_gone"].notna().to_numpy()
        & (table["back"] > table["first_gone"]).fillna(False).to_numpy(bool)
    ].reset_index()
    if table.empty:
        return resolved
    company, connection = text(table["company_id"], ""), text(table["connection_id"], "")
    key = _RELINK_RULE + "|" + company + "|" + connection + "|"
    times = table["times"].astype("int64")
    story = (
        "Between the two audits Codat reported this connection disconnected at "
        + fmt_ts(table["first_gone"])
        + pd.Series(
            np.where(times > 1, " (" + times.astype(str) + " disconnections)", ""),
            index=table.index, dtype="string",
        )
        + " and reconnected at "
        + fmt_ts(table["back"])
        + " (connection webhooks): it works again."
    )
    out = resolved.copy()
    in_resolved = isin(key, out["incident_key"].dropna()) if len(out) else np.zeros(len(key), bool)
    if in_resolved.any():
        by_key = pd.Series(story[in_resolved].to_numpy(), index=key[in_resolved].to_numpy())
        hit = isin(out["incident_key"], by_key.index)
        extra = by_key.reindex(out.loc[hit, "incident_key"].astype("string").to_numpy())
        told = pd.Series(extra.to_numpy(), index=out.index[hit], dtype="string")
        out.loc[hit, "message"] = text(out.loc[hit, "message"], "") + " " + told
    open_tonight = isin(key, findings["incident_key"].dropna()) if len(findings) else False
    new = ~in_resolved & ~np.asarray(open_tonight, dtype=bool)
    if not new.any():
        return out
    now = pd.Timestamp(as_of)
    added = pd.DataFrame(
        {
            "rule": _RELINK_RULE,
            "code": _RELINK_CODE,
            "severity": "warning",
            "company_id": table.loc[new, "company_id"],
            "company_name": table.loc[new, "company_name"],
            "platform": table.loc[new, "platform"],
            "connection_id": table.loc[new, "connection_id"],
            "message": story[new],
            "remedy": "Nothing to do now. If the connection keeps dropping, ask the company to "
            "relink it and check its credentials with the platform.",
            "incident_key": key[new],
            "state": "resolved",
            "first_seen": table.loc[new, "first_gone"],
            "as_of": now,
            "nights_open": 0,
            "snoozed": False,
            "carried_over": False,
        }
    )
    frames = [f for f in (conform_findings(out), conform_findings(added)) if len(f)]
    return conform_findings(pd.concat(frames, ignore_index=True))
