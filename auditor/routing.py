"""Routing filters shared by every channel: which findings one audience sees.

An email route (``[[email.routes]]``) and a notification route (``[[notify.slack]]``,
``[[notify.teams]]``, ``[[notify.webhook]]``) filter the findings the same way, with the
fields of :class:`RouteFilter`; a missing filter matches everything, all given filters must
match:

``severities``  ``["error"]``: only these severities
``platforms``   ``["Xero"]``: only findings about connections to these platforms
``rules``       ``["stale"]``: only these rules (names)
``tags``        ``{owner = "team-a", tier = ["gold", "platinum"]}``: only companies whose Codat
                ``tags`` have every key given, with (one of) its value(s)
``min_nights``  ``3``: only incidents open at least this many consecutive nights
                (``nights_open``; a resolved incident by the nights it had been open)

:class:`Scope` is the union of an audience's routes (:class:`Clause`, one per route) and cuts
an :class:`~auditor.result.AuditResult` down to it. Company tags are not a findings column:
they come from :attr:`AuditResult.company_tags` (the snapshot's ``company_tags``), so a
fleet-level finding (no company) or a company without tags never matches a ``tags`` filter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from auditor.result import AuditResult
from auditor.route_filters import Clause, RouteFilter, TagFilter
from auditor.rules._shared import has_tag

__all__ = ["Clause", "RouteFilter", "Scope", "TagFilter", "clause_mask", "company_tags_series"]


def clause_mask(
    clause: Clause, frame: pd.DataFrame, company_tags: pd.Series | None
) -> np.ndarray:
    """Which rows of ``frame`` (a findings table) ``clause`` lets through."""
    out = np.ones(len(frame), dtype=bool)
    for column, allowed in (
        ("severity", clause.severities),
        ("platform", clause.platforms),
        ("rule", clause.rules),
    ):
        if allowed is not None:
            col = frame[column].astype("string")
            out &= col.isin(sorted(allowed)).fillna(False).to_numpy(dtype=bool)
    if clause.min_nights is not None:
        nights = pd.to_numeric(frame["nights_open"], errors="coerce").astype("Float64")
        out &= (nights >= clause.min_nights).fillna(False).to_numpy(dtype=bool)
    if clause.tags is not None:
        if company_tags is None or company_tags.empty:
            return np.zeros(len(frame), dtype=bool)
        tags = frame["company_id"].astype("string").map(company_tags).astype("string")
        for key, values in sorted(clause.tags):
            out &= has_tag(tags, {key: sorted(values)})
    return out


@dataclass(frozen=True)
class Scope:
    """Which findings an audience sees: the union of its routes' clauses; no clause = all."""

    clauses: tuple[Clause, ...] = ()

    @classmethod
    def of(cls, filters: Sequence[RouteFilter]) -> Scope:
        """The scope of some routes: the union of their filters."""
        clauses = {f.clause() for f in filters}
        scope = cls(tuple(sorted(clauses, key=repr)))
        return cls() if scope.everything else scope

    @property
    def everything(self) -> bool:
        return not self.clauses or any(c.everything for c in self.clauses)

    def mask(self, frame: pd.DataFrame, company_tags: pd.Series | None = None) -> pd.Series:
        if self.everything:
            return pd.Series(True, index=frame.index)
        out = np.zeros(len(frame), dtype=bool)
        for clause in self.clauses:
            out |= clause_mask(clause, frame, company_tags)
        return pd.Series(out, index=frame.index)

    def label(self) -> str | None:
        """People's words for the scope (``None`` for everything)."""
        if self.everything:
            return None
        return " or ".join(c.label() for c in self.clauses)

    def apply(self, result: AuditResult) -> AuditResult:
        """``result`` cut down to this scope."""
        if self.everything:
            return result
        tags = result.company_tags
        return replace(
            result,
            findings=result.findings.loc[self.mask(result.findings, tags)].reset_index(drop=True),
            resolved=result.resolved.loc[self.mask(result.resolved, tags)].reset_index(drop=True),
        )


def company_tags_series(companies: pd.DataFrame | Mapping[str, str | None]) -> pd.Series:
    """company id -> ``company_tags`` JSON text, from a snapshot's companies frame (one row per
    connection) or a mapping; companies without tags are left out."""
    if isinstance(companies, pd.DataFrame):
        if "company_tags" not in companies.columns or companies.empty:
            return pd.Series([], dtype="string")
        frame = companies[["company_id", "company_tags"]].dropna()
        frame = frame.drop_duplicates(subset=["company_id"])
        return pd.Series(
            frame["company_tags"].astype("string").to_numpy(),
            index=frame["company_id"].astype("string").to_numpy(),
            dtype="string",
        )
    items = {k: v for k, v in companies.items() if v is not None}
    return pd.Series(list(items.values()), index=list(items.keys()), dtype="string")
