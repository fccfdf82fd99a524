"""The refresh overlay: pull operations queued on the sandbox and their state machine.

Refreshes are an overlay over the fleet: each queued data type gets a :class:`LiveOperation`
whose status is a function of sandbox time, and the dataStatus shows it as the type's latest
sync until a newer scheduled sync (generated fleets) replaces it. The endpoints that queue
refreshes are in :mod:`auditor.sandbox._routes_refresh`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from auditor.constants import (
    ALL_DATA_TYPES,
    ERROR_STATUSES,
    IN_PROGRESS_STATUSES,
    source_type_of,
)
from auditor.sandbox._fleet import CompanyRecord, Fleet, format_timestamp
from auditor.sandbox._generate import GeneratedFleet
from auditor.sandbox._options import SandboxOptions
from auditor.sandbox._util import hash_unit, uid

__all__ = [
    "REFRESH_STAGES",
    "LiveOperation",
    "RefreshOverlay",
    "connection_for",
    "fetch_on_first_link",
    "refresh_all_candidates",
]

#: Stages of a refresh, each lasting ``SandboxOptions.sync_phase_seconds`` of sandbox time.
REFRESH_STAGES: Final[tuple[str, ...]] = (
    "Queued",
    "Fetching",
    "Mapping",
    "Validating",
    "Processing",
)
_STAGE_PROGRESS: Final[dict[str, int]] = {
    "Queued": 0,
    "Fetching": 20,
    "Mapping": 40,
    "Validating": 60,
    "Processing": 80,
}
#: Stage index after which a failing refresh ends (it fails while fetching).
_FAIL_AFTER_STAGES: Final = 2


@dataclass(slots=True)
class LiveOperation:
    """A pull operation queued on the sandbox; its status is a function of sandbox time.

    It moves Queued -> Fetching -> Mapping -> Validating -> Processing -> ``outcome``, each
    stage lasting ``phase`` seconds. A failing outcome (AuthError, FetchError, any error
    status) ends the sync after Fetching; NotSupported ends it at once; an in-progress outcome
    (``Queued``: the connector is offline) never ends.
    """

    id: str
    company_id: str
    connection_id: str
    data_type: str
    requested: datetime
    outcome: str
    phase: float

    def state(self, now: datetime) -> tuple[str, int, datetime | None]:
        """``(status, progress, completed)`` at sandbox time ``now``."""
        if self.outcome == "NotSupported":
            return "NotSupported", 100, self.requested
        if self.outcome in IN_PROGRESS_STATUSES:
            return self.outcome, _STAGE_PROGRESS.get(self.outcome, 0), None
        stages = len(REFRESH_STAGES) if self.outcome == "Complete" else _FAIL_AFTER_STAGES
        elapsed = (now - self.requested).total_seconds()
        index = int(elapsed // self.phase) if self.phase > 0 else stages
        if index >= stages:
            return self.outcome, 100, self.requested + timedelta(seconds=stages * self.phase)
        stage = REFRESH_STAGES[max(index, 0)]
        return stage, _STAGE_PROGRESS[stage], None

    def to_json(self, now: datetime) -> dict[str, Any]:
        status, progress, completed = self.state(now)
        op: dict[str, Any] = {
            "id": self.id,
            "companyId": self.company_id,
            "connectionId": self.connection_id,
            "dataType": self.data_type,
            "status": status,
            "requested": format_timestamp(self.requested),
            "progress": progress,
            "isCompleted": status == "Complete",
            "isErrored": status in ERROR_STATUSES,
        }
        if completed is not None:
            op["completed"] = format_timestamp(completed)
        if status == "AuthError":
            op["errorMessage"] = "The connection's credentials are no longer valid."
        elif status == "FetchError":
            op["errorMessage"] = "The platform returned an error while fetching this data type."
        elif status in ERROR_STATUSES:
            op["errorMessage"] = f"The sync ended in {status}."
        return op


@dataclass(slots=True)
class _CompanyOverlay:
    live: dict[str, LiveOperation] = field(default_factory=dict)  # data type -> latest
    history: list[LiveOperation] = field(default_factory=list)  # newest first


class RefreshOverlay:
    """The refreshes queued on one sandbox, per company, over ``fleet``.

    ``version`` counts refreshes queued (listing pages, which show ``lastSync``, key their
    cache on it).
    """

    def __init__(self, fleet: Fleet, options: SandboxOptions) -> None:
        self.fleet = fleet
        self.options = options
        self.version = 0
        self._op_counter = 0
        self._overlays: dict[str, _CompanyOverlay] = {}

    def __contains__(self, company_id: object) -> bool:
        """Whether a refresh was ever queued for ``company_id``."""
        return company_id in self._overlays

    def has_live(self, company_id: str) -> bool:
        """Whether ``company_id`` has a refreshed data type (its dataStatus is not cached)."""
        overlay = self._overlays.get(company_id)
        return overlay is not None and bool(overlay.live)

    def history(self, company_id: str) -> list[LiveOperation]:
        """The refreshes queued for ``company_id``, newest first."""
        overlay = self._overlays.get(company_id)
        return overlay.history if overlay is not None else []

    def fixes(self, company_id: str) -> dict[str, datetime]:
        """Data type -> request time of its latest refresh that ends Complete."""
        fixes: dict[str, datetime] = {}
        for op in self.history(company_id):  # newest first
            if op.outcome == "Complete" and op.data_type not in fixes:
                fixes[op.data_type] = op.requested
        return fixes

    def merged_status(self, record: CompanyRecord, now: datetime) -> dict[str, Any]:
        """The dataStatus of ``record`` at ``now`` with the refresh overlay, before quirks.

        A fleet file: a refresh is the type's latest sync. A generated fleet (whose record is
        already as of ``now``): a refresh is the latest sync unless a scheduled sync was
        requested after it; the last successful sync is the newer of the two.
        """
        overlay = self._overlays.get(record.id)
        body = record.data_status
        if overlay is None or not overlay.live:
            return body
        body = dict(body)
        generated = isinstance(self.fleet, GeneratedFleet)
        requested: dict[Any, Any] = (
            {op.get("id"): op.get("requested") for op in record.pull_operations}
            if generated
            else {}
        )
        for data_type, op in overlay.live.items():
            status, _, completed = op.state(now)
            base = body.get(data_type)
            entry = dict(base) if isinstance(base, dict) else {"dataType": data_type}
            done = format_timestamp(completed) if completed is not None else None
            newer_success = status == "Complete" and done is not None
            if generated and isinstance(base, dict):
                last = base.get("lastSuccessfulSync")
                newer_success = newer_success and (not isinstance(last, str) or last <= str(done))
                scheduled = requested.get(base.get("latestSyncId"))
                if isinstance(scheduled, str) and scheduled > format_timestamp(op.requested):
                    if newer_success:
                        entry["lastSuccessfulSync"] = done
                        entry["latestSuccessfulSyncId"] = op.id
                    body[data_type] = entry
                    continue
            entry["currentStatus"] = status
            entry["latestSyncId"] = op.id
            if newer_success:
                entry["lastSuccessfulSync"] = done
                entry["latestSuccessfulSyncId"] = op.id
            body[data_type] = entry
        return body

    def effective(
        self, record: CompanyRecord, data_type: str, now: datetime
    ) -> tuple[str | None, str | None]:
        """``(currentStatus, latestSyncId)`` of ``data_type`` now (overlay first)."""
        overlay = self._overlays.get(record.id)
        if isinstance(self.fleet, GeneratedFleet):
            entry = self.merged_status(record, now).get(data_type)
            if not isinstance(entry, dict):
                return None, None
            return entry.get("currentStatus"), entry.get("latestSyncId")
        if overlay is not None and data_type in overlay.live:
            op = overlay.live[data_type]
            return op.state(now)[0], op.id
        entry = record.data_status.get(data_type)
        if not isinstance(entry, dict):
            return None, None
        status = entry.get("currentStatus")
        latest = entry.get("latestSyncId")
        return (
            status if isinstance(status, str) else None,
            latest if isinstance(latest, str) else None,
        )

    def queue(
        self, record: CompanyRecord, data_type: str, connection: dict[str, Any], now: datetime
    ) -> LiveOperation:
        self._op_counter += 1
        op_id = uid(self.options.seed, "op", record.id, data_type, self._op_counter)
        base_status, _ = self.effective(record, data_type, now)
        fleet = self.fleet
        index = fleet.index_of(record.id) if isinstance(fleet, GeneratedFleet) else None
        if connection.get("status") == "Deauthorized":
            outcome = "AuthError"
        elif isinstance(fleet, GeneratedFleet) and index is not None:
            outcome = fleet.refresh_outcome(index, data_type, now)
            if (
                outcome == "Complete"
                and hash_unit(self.options.seed, "refresh", op_id) < self.options.refresh_error_rate
            ):
                outcome = "FetchError"
        elif base_status == "AuthError":
            outcome = "AuthError"
        elif base_status == "NotSupported":
            outcome = "NotSupported"
        elif hash_unit(self.options.seed, "refresh", op_id) < self.options.refresh_error_rate:
            outcome = "FetchError"
        else:
            outcome = "Complete"
        op = LiveOperation(
            id=op_id,
            company_id=record.id,
            connection_id=str(connection.get("id", "")),
            data_type=data_type,
            requested=now,
            outcome=outcome,
            phase=self.options.sync_phase_seconds,
        )
        overlay = self._overlays.setdefault(record.id, _CompanyOverlay())
        overlay.live[data_type] = op
        overlay.history.insert(0, op)
        self.version += 1
        return op


def connection_for(record: CompanyRecord, data_type: str) -> dict[str, Any] | None:
    """The connection a refresh of ``data_type`` uses: Linked first, else Deauthorized."""
    source = source_type_of(data_type)
    candidates = [c for c in record.connections if c.get("sourceType") == source]
    for wanted in ("Linked", "Deauthorized"):
        for conn in candidates:
            if conn.get("status") == wanted:
                return conn
    return None


def fetch_on_first_link(record: CompanyRecord, profile: dict[str, Any]) -> frozenset[str]:
    """The data types whose sync setting has ``fetchOnFirstLink: true`` for ``record``.

    The profile's settings (``GET /profile/syncSettings``), each overridden by the company's
    own setting of the same data type when its settings override the defaults
    (``overridesDefaults: true``, as the collector reads them).
    """
    fetch: dict[str, bool] = {}
    sources: list[Any] = [profile.get("settings")]
    own = record.sync_settings
    if isinstance(own, dict) and own.get("overridesDefaults") is True:
        sources.append(own.get("settings"))
    for settings in sources:
        if not isinstance(settings, list):
            continue
        for entry in settings:
            if isinstance(entry, dict) and isinstance(entry.get("dataType"), str):
                fetch[entry["dataType"]] = entry.get("fetchOnFirstLink") is True
    return frozenset(t for t, on in fetch.items() if on)


def refresh_all_candidates(
    record: CompanyRecord, profile: dict[str, Any]
) -> list[tuple[str, dict[str, Any]]]:
    """``(data type, connection)`` that ``POST data/all`` may queue for ``record``.

    Codat's refresh-company-data "refreshes all data types with fetch on first link set to
    true" (docs.codat.io/core-concepts/data-type-settings): each such type (in
    :data:`ALL_DATA_TYPES` order) that a ``Linked`` connection of its source type serves. A
    Deauthorized connection is not refreshed (its syncs would end in AuthError). The caller
    still skips types that are running or that the platform does not support.
    """
    fetch = fetch_on_first_link(record, profile)
    linked: dict[str, dict[str, Any]] = {}
    for conn in record.connections:
        source = conn.get("sourceType")
        if conn.get("status") == "Linked" and isinstance(source, str):
            linked.setdefault(source, conn)
    out: list[tuple[str, dict[str, Any]]] = []
    for data_type in ALL_DATA_TYPES:
        connection = linked.get(source_type_of(data_type))
        if data_type in fetch and connection is not None:
            out.append((data_type, connection))
    return out
