"""What one audit produces: the contract between the audit, the store and the reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

import pandas as pd

from auditor.findings import empty_findings
from auditor.freshness import FleetFreshness

__all__ = ["EXPIRED_SNOOZE_COLUMNS", "AuditResult", "RuleFailure"]

#: Columns of :attr:`AuditResult.expired_snoozes`.
EXPIRED_SNOOZE_COLUMNS: Final[tuple[str, ...]] = (
    "rule",
    "company_id",
    "data_type",
    "platform",
    "group",
    "reason",
    "owner",
    "until",
)


@dataclass(frozen=True)
class RuleFailure:
    """A rule that raised instead of answering, for some companies or for the whole fleet.

    ``companies`` are the companies it could not be evaluated for (empty with ``fleet_wide``:
    every company, or a fleet rule). Their incidents of this rule stay open (the ledger carries
    them over); the run exits 2.
    """

    rule: str
    code: str
    error: str
    companies: tuple[str, ...] = ()
    fleet_wide: bool = False

    def describe(self) -> str:
        """One line for logs, reports and the digest."""
        scope = (
            "for the whole fleet"
            if self.fleet_wide
            else f"for {len(self.companies)} compan{'y' if len(self.companies) == 1 else 'ies'}"
        )
        return f"rule {self.rule} ({self.code}) failed {scope}: {self.error}"


@dataclass(frozen=True)
class AuditResult:
    """The findings of one audit of one snapshot.

    ``findings``        tonight's findings (:data:`auditor.findings.FINDINGS_COLUMNS`), snoozed
                        rows included with ``snoozed=True``; ``state`` new/ongoing/regressed.
    ``resolved``        incidents open in the previous audit and gone tonight (same columns,
                        ``state='resolved'``, values as last seen).
    ``expired_snoozes`` snoozes whose ``until`` has passed (:data:`EXPIRED_SNOOZE_COLUMNS`).
    ``rule_failures``   rules that raised (see :class:`RuleFailure`); empty when all answered.
    ``company_tags``    company id -> the company's Codat ``tags`` as JSON text (the snapshot's
                        ``company_tags``; companies without tags left out), for routing by tag.
    ``covered``         the findings left out because another finding explains them
                        (:func:`auditor.engine.apply_coverage`), for the actions table
                        (:mod:`auditor.actions`) to list what each root cause explains; not
                        stored (empty for an audit read back from the store).
    ``freshness``       tonight's fleet freshness (:mod:`auditor.freshness`); None when not
                        computed (a result built by hand).
    """

    snapshot_id: str
    as_of: datetime
    findings: pd.DataFrame = field(default_factory=empty_findings)
    resolved: pd.DataFrame = field(default_factory=empty_findings)
    expired_snoozes: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame({c: [] for c in EXPIRED_SNOOZE_COLUMNS})
    )
    rule_failures: tuple[RuleFailure, ...] = ()
    company_tags: pd.Series = field(default_factory=lambda: pd.Series([], dtype="string"))
    covered: pd.DataFrame = field(default_factory=empty_findings)
    freshness: FleetFreshness | None = None

    @property
    def missing_inputs(self) -> list[str]:
        """Messages of the fleet-wide inputs that could not be read (``not-collected`` findings
        about no company): the audit is incomplete, never "all clear"."""
        f = self.findings
        rows = f.loc[(f["rule"].astype("string") == "not-collected").fillna(False).to_numpy(bool)
                     & f["company_id"].isna().to_numpy()]
        return [str(m) for m in rows["message"]]

    @property
    def incomplete(self) -> bool:
        """A rule failed or a fleet-wide input is missing: the run exits 2."""
        return bool(self.rule_failures or self.missing_inputs)

    @property
    def active(self) -> pd.DataFrame:
        """Findings that count: not snoozed."""
        return self.findings.loc[~self.findings["snoozed"].fillna(False).astype(bool)]
