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

import numpy as np
import pandas as pd

from auditor.findings import conform_findings, empty_findings

__all__ = ["apply_ledger", "incident_keys", "previous_tables"]


def _text(series: pd.Series) -> pd.Series:
    return series.astype("string").fillna("")


def incident_keys(findings: pd.DataFrame) -> pd.Series:
    """``rule|company_id|connection_id|group-or-data_type`` for each finding (vectorised)."""
    scope = findings["group"].astype("string").fillna(findings["data_type"].astype("string"))
    return (
        _text(findings["rule"])
        + "|"
        + _text(findings["company_id"])
        + "|"
        + _text(findings["connection_id"])
        + "|"
        + scope.fillna("")
    )


def previous_tables(findings: pd.DataFrame, resolved: Iterable[pd.DataFrame] = ()) -> pd.DataFrame:
    """The ``previous`` argument of :func:`auditor.audit.audit` from stored tables."""
    frames = [f for f in (findings, *resolved) if f is not None and len(f)]
    if not frames:
        return empty_findings()
    return pd.concat([conform_findings(f) for f in frames], ignore_index=True)


def _lookup(values: pd.Series, keys: pd.Series) -> pd.Series:
    """``values[key]`` for each key (NA where absent), aligned with ``keys``."""
    found = values.reindex(pd.Index(keys.to_numpy(dtype=object)))
    return pd.Series(found.to_numpy(), index=keys.index, dtype=values.dtype)


def apply_ledger(
    findings: pd.DataFrame, previous: pd.DataFrame | None, as_of: datetime
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(tonight's findings with state/first_seen/nights_open, the resolved incidents)."""
    now = pd.Timestamp(as_of)
    out = findings.copy()
    if previous is None or previous.empty:
        out["state"] = "new"
        out["first_seen"] = now
        out["nights_open"] = 1
        return conform_findings(out), empty_findings()

    prev = conform_findings(previous)
    missing_key = prev["incident_key"].isna()
    if missing_key.any():
        prev.loc[missing_key, "incident_key"] = incident_keys(prev.loc[missing_key])
    prev_state = prev["state"].astype("string").fillna("new")
    prev["first_seen"] = prev["first_seen"].fillna(prev["as_of"]).fillna(now)
    was_resolved = (prev_state == "resolved").to_numpy(dtype=bool)
    opened = prev.loc[~was_resolved].drop_duplicates("incident_key", keep="last")
    closed = prev.loc[was_resolved]
    closed = closed.sort_values("as_of", kind="stable", na_position="first")
    closed = closed.drop_duplicates("incident_key", keep="last")

    keys = out["incident_key"].astype("string")
    open_idx = opened.set_index("incident_key")
    closed_idx = closed.set_index("incident_key")
    ongoing = keys.isin(open_idx.index).to_numpy(dtype=bool)
    regressed = keys.isin(closed_idx.index).to_numpy(dtype=bool) & ~ongoing

    out["state"] = np.select([ongoing, regressed], ["ongoing", "regressed"], "new")
    first_open = _lookup(open_idx["first_seen"], keys)
    first_closed = _lookup(closed_idx["first_seen"], keys)
    first = pd.Series(now, index=out.index, dtype="datetime64[ns, UTC]")
    first = first.mask(pd.Series(ongoing, index=out.index), first_open)
    first = first.mask(pd.Series(regressed, index=out.index), first_closed)
    out["first_seen"] = first.fillna(now)
    nights = _lookup(open_idx["nights_open"].astype("Float64"), keys).fillna(0)
    out["nights_open"] = np.where(ongoing, nights.to_numpy(dtype="float64") + 1, 1).astype(int)

    gone = ~opened["incident_key"].isin(keys)
    resolved = opened.loc[gone].copy()
    resolved["state"] = "resolved"
    return conform_findings(out), conform_findings(resolved)
