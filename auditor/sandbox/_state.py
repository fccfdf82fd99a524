"""What a sandbox serves, shared by its endpoints: the fleet as of sandbox time.

:class:`SandboxState` holds the fleet, the options, the sandbox clock, the refresh overlay,
the doc-quirk picker and the answer caches. A generated fleet is served as of sandbox time
(scheduled syncs, churn, outages: see :mod:`auditor.sandbox._generate`); a fleet file is
served verbatim.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from auditor.sandbox._fleet import CompanyRecord, Fleet
from auditor.sandbox._generate import GeneratedFleet
from auditor.sandbox._options import SandboxOptions
from auditor.sandbox._quirks import QuirkPicker
from auditor.sandbox._refresh import RefreshOverlay
from auditor.sandbox._responses import Errors
from auditor.sandbox._util import LRU


class SandboxState:
    """The fleet, clock, refresh overlay and caches of one sandbox (see the module doc)."""

    def __init__(self, fleet: Fleet, options: SandboxOptions) -> None:
        self.fleet = fleet
        self.options = options
        self.errors = Errors(options.seed)
        self.refresh = RefreshOverlay(fleet, options)
        self.quirks = QuirkPicker(options.seed, options.quirk_share)
        self.status_bytes = LRU(4096)  # (company id, state key) -> dataStatus JSON
        self.pages = LRU(64)  # (page, size, state key, refresh version) -> companies page
        self._records = LRU(4096)
        self._t0_mono = time.monotonic()
        self._t0 = (options.start_time or fleet.now or datetime.now(UTC)).astimezone(UTC)

    def now(self) -> datetime:
        """Sandbox time: ``clock()``, or the start time advanced ``time_scale`` times real time."""
        if self.options.clock is not None:
            return self.options.clock().astimezone(UTC)
        elapsed = (time.monotonic() - self._t0_mono) * self.options.time_scale
        return self._t0 + timedelta(seconds=elapsed)

    def is_quirky(self, company_id: str) -> bool:
        """Whether ``company_id`` is served doc-style variants (``quirks`` on and chosen)."""
        return self.options.quirks and self.quirks.is_quirky(company_id)

    def state_key(self, now: datetime) -> int | None:
        """The cache key of a generated fleet's state at ``now`` (None: a fleet file)."""
        if isinstance(self.fleet, GeneratedFleet):
            return self.fleet.minute_of(now)
        return None

    def record(self, company_id: str, now: datetime | None = None) -> CompanyRecord | None:
        """The record of ``company_id`` at sandbox time ``now`` (default: the sandbox's now)."""
        fleet = self.fleet
        if not isinstance(fleet, GeneratedFleet):
            cached = self._records.get(company_id)
            if cached is not None:
                return cached  # type: ignore[no-any-return]
            record = fleet.get(company_id)
            if record is not None:
                self._records.put(company_id, record)
            return record
        index = fleet.index_of(company_id)
        if index is None:
            return None
        now = self.now() if now is None else now
        fixes = self.refresh.fixes(company_id)
        if fixes:
            return fleet.record_at(index, now, fixes)
        key = (company_id, fleet.minute_of(now))
        cached = self._records.get(key)
        if cached is None:
            cached = fleet.record_at(index, now)
            self._records.put(key, cached)
        return cached  # type: ignore[no-any-return]

    def company_json(self, index: int, now: datetime) -> dict[str, Any]:
        if isinstance(self.fleet, GeneratedFleet):
            company_id = self.fleet.company_ids[index]
            if company_id in self.refresh:
                record = self.record(company_id, now)
                assert record is not None
                return record.company
            return self.fleet.company_at(index, now)
        return self.fleet.records[index].company
