"""Error text for the sync errors of the night: which pull operations to fetch, within a budget.

``failed-after-success`` and ``first-sync-failed`` quote the ``errorMessage`` (else
``statusDescription``) of the data type's latest pull operation (``latestSyncId``). Fetching
it for every data type in error every night would cost one request per error, night after
night, for incidents that last weeks; instead:

* a data type in error whose ``latestSyncId`` is a pull operation of the previous snapshot is
  carried as it is (no request);
* else, an incident still open (the previous snapshot holds an error pull operation of the
  same company x data type, with text) carries that pull operation: Codat may have failed
  another sync since, but the incident and its explanation are the same (no request);
* else the incident is new tonight (or never got its text): its pull operation is fetched
  while the night's budget lasts (``error_details_budget`` requests; by default 3 % of the
  companies of the run, at least 10). Past the budget, the finding is raised without Codat's
  text, and the next night tries again.

Every error pull operation kept this way goes into the snapshot's ``pull_operations`` frame,
which is what the next night reads as "known".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from auditor.codat import DataStatus, PullOperation
from auditor.collector._frames import KnownPullOperations
from auditor.constants import FAILED_AFTER_SUCCESS_STATUSES

__all__ = ["ErrorDetailPlan", "ErrorDetails", "default_budget", "known_errors_by_type"]

#: Default budget: this share of the companies of the run, at least ``_MIN_BUDGET`` requests.
DEFAULT_BUDGET_SHARE = 0.03
_MIN_BUDGET = 10
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def default_budget(companies: int) -> int:
    """The default nightly budget of error-detail requests for a run of ``companies``."""
    return max(_MIN_BUDGET, math.ceil(DEFAULT_BUDGET_SHARE * companies))


def _has_text(op: PullOperation) -> bool:
    return bool((op.error_message or "").strip() or (op.status_description or "").strip())


def known_errors_by_type(known: KnownPullOperations) -> dict[str, dict[str, PullOperation]]:
    """The newest pull operation with error text of each company x data type in ``known``."""
    out: dict[str, dict[str, PullOperation]] = {}
    for company_id, ops in known.items():
        for op in ops.values():
            if not op.data_type or not _has_text(op):
                continue
            mine = out.setdefault(company_id, {})
            current = mine.get(op.data_type)
            if current is None or (op.requested or _EPOCH) >= (current.requested or _EPOCH):
                mine[op.data_type] = op
    return out


@dataclass
class ErrorDetailPlan:
    """For one company: pull operations carried without a request, and ids to fetch."""

    carried: list[PullOperation] = field(default_factory=list)
    fetch: list[str] = field(default_factory=list)
    over_budget: int = 0


@dataclass
class ErrorDetails:
    """The night's budget and what is known from the previous snapshot."""

    budget: int
    known: KnownPullOperations
    by_type: Mapping[str, Mapping[str, PullOperation]]
    fetched: int = 0
    carried: int = 0
    over_budget: int = 0

    @classmethod
    def start(cls, known: KnownPullOperations, budget: int) -> ErrorDetails:
        return cls(budget=max(0, budget), known=known, by_type=known_errors_by_type(known))

    def plan(self, company_id: str, statuses: Mapping[str, DataStatus]) -> ErrorDetailPlan:
        """What to carry and what to fetch for the data types of ``company_id`` in error.

        Takes the fetches from the budget at once (the collector runs on one event loop)."""
        plan = ErrorDetailPlan()
        known = self.known.get(company_id) or {}
        by_type = self.by_type.get(company_id) or {}
        seen: set[str] = set()
        for data_type, status in statuses.items():
            sync_id = status.latest_sync_id
            if status.current_status not in FAILED_AFTER_SUCCESS_STATUSES or not sync_id:
                continue
            if sync_id in seen:
                continue
            seen.add(sync_id)
            op = known.get(sync_id)
            if op is None or not _has_text(op):
                op = by_type.get(data_type)
            if op is not None:
                plan.carried.append(op)
            elif self.budget > 0:
                self.budget -= 1
                plan.fetch.append(sync_id)
            else:
                plan.over_budget += 1
        self.carried += len(plan.carried)
        self.fetched += len(plan.fetch)
        self.over_budget += plan.over_budget
        return plan

