"""A deterministic, realistic generated fleet that lives over sandbox time (``generate_fleet``).

Everything random about a company is drawn up front with numpy, as arrays of one row per
company (or per company x data type), or is a hash of ``(seed, company, day)``; a company's
JSON objects are built only when asked for, **as of a sandbox time**, so that 100,000 companies
take a second or two and little memory. The same ``(companies, seed, now)`` always gives the
same fleet, and the same fleet at the same sandbox time gives the same answers, byte for byte.

Time is counted in whole minutes after the fleet's ``now`` (``t0``); day ``d`` is the 24 h
ending at ``t0 + d`` days (day 0 ends at ``t0``). Each data type of a company syncs on its
schedule (``syncSchedule`` of the sync settings; the company's own setting wins): ticks at
``phase + k x schedule`` with a per-company phase, the weekly types on a per-company weekday,
each sync taking 2-14 minutes (while it runs the type shows it in progress). What goes wrong is
a set of **trouble windows**: ``[start, end)`` x some data types x a kind:

* ``stop``: no sync is run (scheduler lagging or stopped, dormant company, Deauthorized or
  Unlinked connection): the type ages;
* ``stuck``: the first sync in the window never finishes until the window ends (connector
  offline, queue jam); then it completes;
* ``auth`` / ``fail``: every sync in the window ends in AuthError / the window's error.

Windows come from three places:

* **chronic** troubles drawn at generation (start before ``t0``, no end): Deauthorized and
  Unlinked connections, revoked tokens, stale-by-weeks and dormant companies, offline
  on-premise connectors, data types failing for good or whose first sync failed, stuck or
  stalled data types; plus NotSupported per platform and never-synced types;
* **churn**, a hash of ``(seed, company, day)``: each day a small share of companies (more of
  the "fragile" ones, which therefore relapse) gets a data type failing, a sync stuck (the whole
  connector for on-premise platforms), a revoked token, or a scheduler lagging, for half a day
  to a week; then it recovers on the next scheduled sync;
* **provider outages**, a hash of ``(seed, day)``: on about one day in eight one accounting
  platform fails one data type the same way for 30-55 % of its companies, for 14-32 h.

A refresh queued through the sandbox (see :meth:`GeneratedFleet.refresh_outcome`) fixes what
a sync can fix (a lagging or stopped scheduler, a transient error) and not what it cannot
(revoked or Deauthorized credentials, an offline connector, a provider outage, a persistent
mapping or permissions error, an unsupported type).

Integration keys and ids are sandbox values, not Codat's.

Where each part is: ``_platforms.py`` (the platform tables), ``_arrays.py`` (the draws made
at generation), ``_trouble.py`` (the trouble model: shares, churn, outages, windows, what a
refresh fixes), ``_syncs.py`` (scheduled syncs walked through the windows) and this module
(:class:`GeneratedFleet` and the Company, dataStatus and pull-operation JSON builders).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, overload

import numpy as np

from auditor.constants import ALL_DATA_TYPES
from auditor.sandbox._arrays import NAME_A, NAME_B, NAME_C, REGIONS, FleetArrays
from auditor.sandbox._fleet import CompanyRecord, Fleet, format_timestamp
from auditor.sandbox._platforms import PLATFORMS_BY_SOURCE, SOURCES
from auditor.sandbox._shares import (
    CONN_STATUS,
    DEAUTH,
    INF,
    LINKED,
    MINUTES_PER_DAY,
    NONE,
    NS,
    OMIT,
    PENDING,
)
from auditor.sandbox._syncs import CellState, evaluate, timing
from auditor.sandbox._trouble import (
    Outage,
    outage_of_day,
    refresh_outcome,
    windows,
)
from auditor.sandbox._util import hash_unit, uid

__all__ = ["GeneratedFleet", "generate_fleet"]

_ERROR_MESSAGES: Final[dict[str, str]] = {
    "FetchError": "The platform returned an error while fetching this data type.",
    "MapError": "A record could not be mapped to Codat's data model.",
    "InternalError": "An internal error occurred. Codat has been notified.",
    "ProcessingError": "The data could not be processed.",
    "ValidationError": "The fetched data failed validation.",
    "RateLimitError": "The platform's rate limit was reached; the sync will be retried.",
    "PermissionsError": "The connected user lacks permission to read this data type.",
    "PrerequisiteNotMet": "A prerequisite data type has not been synced.",
    "AuthError": "The connection's credentials are no longer valid; the company must relink.",
}
#: Share of companies with a Linked accounting connection that also keep an older,
#: Deauthorized accounting connection to another platform (they moved, e.g. Sage -> Xero):
#: superseded, so no relink is needed.
SUPERSEDED_SHARE: Final = 0.02
_AUTH_ERROR: Final[dict[str, str]] = {
    "statusCode": "401",
    "statusText": "Unauthorized",
    "errorMessage": "The access token was revoked or has expired: the company must relink.",
    "status": "Active",
}
_PROGRESS: Final[dict[str, int]] = {
    "Initial": 0,
    "Queued": 0,
    "Fetching": 20,
    "MapQueued": 35,
    "Mapping": 40,
    "ValidationQueued": 55,
    "Validating": 60,
    "ProcessingQueued": 75,
    "Processing": 80,
}


class GeneratedFleet(Fleet):
    """A :class:`Fleet` whose records are built from arrays on access, as of any sandbox time.

    ``records`` (and :meth:`Fleet.to_file`) describe the fleet at its ``now``;
    :meth:`record_at` describes it at any later time (scheduled syncs, churn and outages
    applied), which is what :class:`~auditor.sandbox.SandboxServer` serves.
    """

    def __init__(self, companies: int, seed: int, now: datetime) -> None:
        data = FleetArrays(companies, seed, now)
        self._data = data
        super().__init__(_LazyRecords(data), data.sync_settings, now=now, company_ids=data.ids)
        self.seed = seed

    @property
    def arrays(self) -> FleetArrays:
        """Every random draw of the fleet (the trouble model reads them)."""
        return self._data

    def minute_of(self, when: datetime) -> int:
        """Whole minutes from the fleet's ``now`` to ``when`` (floored): the state changes
        only from one minute to the next, so this is a cache key for answers at ``when``."""
        return self._data.minute_of(when)

    def company_at(self, index: int, now: datetime | None = None) -> dict[str, Any]:
        """The Company object of company ``index`` at sandbox time ``now`` (default: fleet now)."""
        return build_company(self._data, index, self._data.minute_of(now or self._data.now))

    def record_at(
        self, index: int, now: datetime, fixes: Mapping[str, datetime] | None = None
    ) -> CompanyRecord:
        """Company ``index`` as served at sandbox time ``now``.

        ``fixes`` maps data types to the time a successful refresh was queued: what a refresh
        fixes (see :meth:`refresh_outcome`) ends then for that type; a never-synced type
        syncs on schedule from then on.
        """
        data = self._data
        fixed = {
            ALL_DATA_TYPES.index(t): data.minute_of(at)
            for t, at in (fixes or {}).items()
            if t in ALL_DATA_TYPES
        }
        return build_record(data, index, data.minute_of(now), fixed)

    def refresh_outcome(self, index: int, data_type: str, now: datetime) -> str:
        """How a refresh of ``data_type`` queued at ``now`` ends.

        ``AuthError`` while the credentials are revoked or the connection is Deauthorized or
        Unlinked, and for a company dormant for more than 30 days (token expired);
        ``NotSupported`` for an unsupported type; ``Queued`` (never finishes) while the sync
        is stuck (connector offline); the error itself during a provider outage or for a
        persistent error (MapError, ValidationError, PermissionsError, PrerequisiteNotMet);
        ``Complete`` otherwise, which also fixes a lagging or stopped scheduler and a
        transient error (FetchError, InternalError, ProcessingError, RateLimitError).
        """
        if data_type not in ALL_DATA_TYPES:
            return "Complete"
        return refresh_outcome(
            self._data, index, ALL_DATA_TYPES.index(data_type), self._data.minute_of(now)
        )

    def outages(self, start: datetime, end: datetime) -> list[Outage]:
        """The provider outages that begin in ``[start, end)``, oldest first."""
        data = self._data
        first = data.minute_of(start) // MINUTES_PER_DAY
        last = data.minute_of(end) // MINUTES_PER_DAY + 1
        found = []
        for day in range(first, last + 1):
            outage = outage_of_day(data, day)
            if outage is not None and start <= outage.start < end:
                found.append(outage)
        return found


class _LazyRecords(Sequence[CompanyRecord]):
    def __init__(self, data: FleetArrays) -> None:
        self._data = data

    def __len__(self) -> int:
        return self._data.n

    @overload
    def __getitem__(self, index: int) -> CompanyRecord: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[CompanyRecord]: ...
    def __getitem__(self, index: int | slice) -> CompanyRecord | Sequence[CompanyRecord]:
        if isinstance(index, slice):
            return [build_record(self._data, i, 0) for i in range(*index.indices(self._data.n))]
        if index < 0:
            index += self._data.n
        if not 0 <= index < self._data.n:
            raise IndexError(index)
        return build_record(self._data, index, 0)


def build_company(
    data: FleetArrays, i: int, t: int, states: list[CellState] | None = None
) -> dict[str, Any]:
    """The Company object of company ``i`` at minute ``t`` (``states``: its cells then)."""
    newest = np.full(len(SOURCES), -INF, dtype=np.int64)
    if states is None and not windows(data, i, t):  # fast path: everything on schedule
        schedule, phase, duration = timing(data, i)
        tick = phase + ((t - phase) // schedule) * schedule
        done = np.where(tick + duration > t, tick - schedule, tick) + duration
        synced = (data.code[i] != OMIT) & (data.code[i] != NS)
        for s in range(len(SOURCES)):
            mask = synced & data.source_masks[s]
            if mask.any():
                newest[s] = int(done[mask].max())
    else:
        for j, cell in enumerate(states or evaluate(data, i, t)):
            if cell.success is not None:
                s = int(data.source_of_type[j])
                newest[s] = max(int(newest[s]), cell.success.done or 0)
    a, b, c = (int(x) for x in data.name_parts[i])
    company_id = data.ids[i]
    created = -int(data.created[i])
    lost = int(data.lost_start[i])
    auth_at = int(data.auth_start[i])
    stamps = data.stamps(
        np.array([created, int(newest.max()), *(created + 120 + 60 * s for s in range(3)),
                  *newest.tolist(), lost, auth_at, created + 60], dtype=np.int64)
    )  # fmt: skip
    company: dict[str, Any] = {
        "id": company_id,
        "name": f"{NAME_A[a]} {NAME_B[b]} {NAME_C[c]}",
        "description": f"Sandbox company {i + 1}",
        "redirect": f"https://link.codat.io/company/{company_id}",
        "created": stamps[0],
        "createdByUserName": "sandbox",
        "products": ["lending"],
        "tags": {"region": REGIONS[int(data.region[i])]},
        "referenceSubsidiaryCompanies": [],
    }
    if newest.max() > -INF:
        company["lastSync"] = stamps[1]
    conns = []
    moved = hash_unit(data.seed, "superseded", i) < SUPERSEDED_SHARE
    if moved and int(data.conn_state[i, 0]) == LINKED:
        conns.append(_superseded(data, i, stamps[-1]))
    for s, platforms in enumerate(PLATFORMS_BY_SOURCE):
        state = int(data.conn_state[i, s])
        if state == NONE:
            continue
        platform = platforms[int(data.platform[i, s])]
        conn_id = uid(data.seed, "connection", i, s)
        conn: dict[str, Any] = {
            "id": conn_id,
            "integrationId": uid(0, "integration", platform.key),
            "integrationKey": platform.key,
            "sourceId": uid(0, "source", platform.key),
            "sourceType": platform.source_type,
            "platformName": platform.name,
            "linkUrl": f"https://link-api.codat.io/companies/{company_id}/connections/{conn_id}/start",
            "status": CONN_STATUS[state],
            "created": stamps[2 + s],
        }
        if state != PENDING and newest[s] > -INF:
            conn["lastSync"] = stamps[5 + s]
        if state == DEAUTH:
            conn["dataConnectionErrors"] = [{**_AUTH_ERROR, "erroredOnUtc": stamps[8]}]
        elif s == 0 and state == LINKED and data.auth_broken[i]:
            conn["dataConnectionErrors"] = [{**_AUTH_ERROR, "erroredOnUtc": stamps[9]}]
        conns.append(conn)
    company["dataConnections"] = conns
    return company


def _superseded(data: FleetArrays, i: int, created: str) -> dict[str, Any]:
    """An older, Deauthorized accounting connection to another platform than the Linked one
    (created before it): the company moved platforms."""
    platforms = PLATFORMS_BY_SOURCE[0]
    current = int(data.platform[i, 0])
    platform = platforms[(current + 1) % len(platforms)]
    company_id = data.ids[i]
    conn_id = uid(data.seed, "connection", i, "superseded")
    return {
        "id": conn_id,
        "integrationId": uid(0, "integration", platform.key),
        "integrationKey": platform.key,
        "sourceId": uid(0, "source", platform.key),
        "sourceType": platform.source_type,
        "platformName": platform.name,
        "linkUrl": f"https://link-api.codat.io/companies/{company_id}/connections/{conn_id}/start",
        "status": "Deauthorized",
        "created": created,
        "dataConnectionErrors": [
            {
                "statusCode": "400",
                "statusText": "invalid_grant",
                "errorMessage": "The refresh token is no longer valid.",
                "erroredOnUtc": created,
                "status": "Active",
            }
        ],
    }


def build_record(
    data: FleetArrays, i: int, t: int, fixed: Mapping[int, int] | None = None
) -> CompanyRecord:
    """Company ``i`` at minute ``t``; ``fixed`` maps data types to minutes refreshed."""
    states = evaluate(data, i, t, fixed)
    company = build_company(data, i, t, states)
    company_id = data.ids[i]
    minutes: list[int] = []
    for cell in states:
        if cell.present:
            latest, success = cell.latest, cell.success
            minutes += [latest.requested, 0 if latest.done is None else latest.done]
            minutes += [success.requested, success.done or 0] if success else [0, 0]
    stamps = data.stamps(np.array(minutes, dtype=np.int64))
    conn_of_source = {SOURCES.index(c["sourceType"]): c["id"] for c in company["dataConnections"]}
    data_status: dict[str, Any] = {}
    ops: list[tuple[int, dict[str, Any]]] = []
    k = 0
    for j, cell in enumerate(states):
        if not cell.present:
            continue
        data_type = ALL_DATA_TYPES[j]
        conn_id = conn_of_source[int(data.source_of_type[j])]
        latest, success = cell.latest, cell.success
        entry: dict[str, Any] = {"dataType": data_type, "currentStatus": latest.status}
        latest_id = uid(data.seed, "sync", i, j, latest.requested)
        if success is not None:
            success_id = (
                latest_id if success is latest else uid(data.seed, "sync", i, j, success.requested)
            )
            entry["lastSuccessfulSync"] = stamps[k + 3]
            if success is not latest:
                ops.append(
                    (
                        success.requested,
                        _pull_op(
                            success_id, company_id, conn_id, data_type, "Complete",
                            stamps[k + 2], stamps[k + 3],
                        ),
                    )
                )  # fmt: skip
        ops.append(
            (
                latest.requested,
                _pull_op(
                    latest_id, company_id, conn_id, data_type, latest.status, stamps[k],
                    stamps[k + 1] if latest.done is not None else None,
                ),
            )
        )  # fmt: skip
        entry["latestSyncId"] = latest_id
        if success is not None:
            entry["latestSuccessfulSyncId"] = success_id
        data_status[data_type] = entry
        k += 4
    ops.sort(key=lambda item: -item[0])  # newest first
    error = None
    if data.ds_error[i]:
        code = int(data.ds_error_code[i])
        error = {
            "statusCode": code,
            "service": "PublicApi",
            "error": (
                f"No company was found with ID {company_id}"
                if code == 404
                else "There is a problem with our server. Please try again later."
            ),
            "correlationId": uid(data.seed, "corr", i).replace("-", ""),
            "canBeRetried": "Unknown",
            "detailedErrorCode": 0,
        }
    settings = company_sync_settings(data, i, company_id) if data.override[i] else None
    return CompanyRecord(
        company=company,
        data_status=data_status,
        pull_operations=[op for _, op in ops],
        data_status_error=error,
        sync_settings=settings,
    )


#: The history variants of the companies with their own sync settings, by company index
#: modulo 4 (no random draw, so the rest of the fleet is unchanged): 0 syncs more often only;
#: 1 also fetches 12 months of financial statements; 2 fetches 12 months of invoices
#: (``syncFromWindow``); 3 fetches invoices from 1 January of last year (``syncFromUtc``).
HISTORY_VARIANTS: Final = 4


def company_sync_settings(data: FleetArrays, i: int, company_id: str) -> dict[str, Any]:
    """The CompanySyncSettings of company ``i`` (one with an override): invoices, bills,
    bankTransactions and payments every 12 hours, and its history variant
    (:data:`HISTORY_VARIANTS`)."""
    variant = i % HISTORY_VARIANTS
    start = format_timestamp(datetime(data.now.year - 1, 1, 1, tzinfo=UTC))
    changed = []
    for setting in data.sync_settings["settings"]:
        s2 = dict(setting)
        data_type = s2["dataType"]
        if data_type in ("invoices", "bills", "bankTransactions", "payments"):
            s2["syncSchedule"] = 12
        if variant == 1 and "monthsToSync" in s2:
            s2["monthsToSync"] = 12
        elif variant == 2 and data_type == "invoices":
            s2["syncFromWindow"] = 12
        elif variant == 3 and data_type == "invoices":
            s2.pop("syncFromWindow", None)  # "set this or syncFromWindow" (the spec)
            s2["syncFromUtc"] = start
        changed.append(s2)
    return {"companyId": company_id, "settings": changed, "overridesDefaults": True}


def _pull_op(
    op_id: str,
    company_id: str,
    connection_id: str,
    data_type: str,
    status: str,
    requested: str,
    completed: str | None,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "id": op_id,
        "companyId": company_id,
        "connectionId": connection_id,
        "dataType": data_type,
        "status": status,
        "requested": requested,
        "progress": _PROGRESS.get(status, 100),
        "isCompleted": status == "Complete",
        "isErrored": status in _ERROR_MESSAGES,
    }
    if completed is not None:
        op["completed"] = completed
    if status in _ERROR_MESSAGES:
        op["errorMessage"] = _ERROR_MESSAGES[status]
    return op


def generate_fleet(
    companies: int = 500, seed: int = 0, now: datetime | None = None
) -> GeneratedFleet:
    """A realistic fleet of ``companies`` companies; the same arguments give the same fleet.

    ``now`` (timezone-aware) is the moment the fleet describes: every time is relative to it.
    It defaults to the current time, truncated to the second. The fleet lives on after
    ``now``: :meth:`GeneratedFleet.record_at` gives a company at any later sandbox time.
    """
    if now is None:
        now = datetime.now(UTC).replace(microsecond=0)
    return GeneratedFleet(companies, seed, now)
