"""The pipeline's stages joined up: snapshot -> store -> audit -> reports (-> email).

The CLI commands (``demo``, ``snapshot``, ``audit``, ``run``) and the public Python API call
these functions; each stage stays usable on its own (see :mod:`auditor`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd

from auditor.actions import build_actions
from auditor.config import AuditConfig
from auditor.engine import NotCompanyCompleteError, SnoozesArg, audit, audit_partitions
from auditor.events import EventWindow, read_event_window
from auditor.ledger import previous_tables
from auditor.links import DEFAULT_LINK_HOSTS
from auditor.listen.eventlog import EVENTS_DIR
from auditor.remediation import refresh_outcomes
from auditor.report import FleetInfo, ReportPaths, write_reports
from auditor.result import AuditResult
from auditor.rules._shared import unmonitored_companies
from auditor.snapshot import ERRORS_SCHEMA, Snapshot, conform
from auditor.store import (
    PARTITION_COMPANIES,
    StorePath,
    freshness_history,
    history,
    is_remote,
    iter_partitions,
    load_findings,
    load_refreshes,
    load_snapshot,
    partition_count,
    select_snapshot,
    select_snapshots,
    store_root,
    write_findings,
)
from auditor.store._findings import same_audit, stored_audit
from auditor.vectors import isin

#: Last night's refreshes and whether each worked, next to the report.
REFRESHES_CSV = "refreshes.csv"

__all__ = [
    "REFRESHES_CSV",
    "AuditRefusedError",
    "AuditRun",
    "audit_snapshot",
    "audit_store",
    "config_hash",
    "event_window",
    "fleet_info",
    "previous_findings",
]

log = logging.getLogger("auditor.pipeline")

#: Config fields that only affect display, delivery or the exit code, never the findings.
_NOT_AUDIT_INPUT = frozenset({"timezone", "fail_on", "email", "report", "run", "events"})


class AuditRefusedError(ValueError):
    """The audit cannot be run as asked (e.g. ``as_of`` before the snapshot was taken)."""


def config_hash(config: AuditConfig) -> str:
    """A short hash of what in ``config`` decides the findings (rules, groups, expected
    types; not the display time zone, email, report or run settings)."""
    payload = config.model_dump(mode="json", exclude=set(_NOT_AUDIT_INPUT))
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class AuditRun:
    """What one audit of a stored snapshot produced.

    ``snapshot``: the night audited. When the audit was streamed (a fleet larger than one
    partition, see :func:`audit_store`) it holds the fleet-level frames only (``companies``,
    ``errors``, ``sync_settings``); ``status`` and ``pull_operations`` are empty, since they
    were read one partition at a time (``auditor.load_snapshot`` reads them whole).
    """

    snapshot: Snapshot
    result: AuditResult
    reports: ReportPaths | None
    fleet: FleetInfo
    #: The refreshes queued after the previous audit, judged against this snapshot
    #: (:func:`auditor.remediation.refresh_outcomes`); None when none were queued.
    refreshes: pd.DataFrame | None = None
    #: Whether the findings were stored (the night's own audit, or ``overwrite``); when
    #: False, ``not_stored`` says why (the reports were still written).
    stored: bool = True
    not_stored: str = ""
    #: The ranked actions table (:func:`auditor.actions.build_actions`): what to do first.
    actions: pd.DataFrame | None = None


def previous_findings(
    store: StorePath, snapshot_id: str, *, memory_nights: int = 30
) -> pd.DataFrame | None:
    """The ledger's input for auditing ``snapshot_id``: the last stored audit before it (its
    open findings) plus the incidents resolved in the ``memory_nights`` audits before it, so
    that an incident that comes back weeks later is ``regressed``, not ``new``."""
    ids = [s.snapshot_id for s in select_snapshots(store, audited=True, before=snapshot_id)]
    if not ids:
        return None
    findings = load_findings(store, ids[-1])
    if findings is None:
        return None
    resolved = [load_findings(store, i, kind="resolved") for i in ids[-memory_nights:]]
    return previous_tables(findings, [r for r in resolved if r is not None])


def event_window(
    store: StorePath, snapshot: Snapshot, as_of: datetime, *, expected: bool = False
) -> EventWindow:
    """The webhook events the audit of ``snapshot`` reads: received from the previous audit's
    ``as_of`` (without one, the previous snapshot's time; without a previous snapshot, a day
    before this one) to ``as_of``, so that consecutive nights read consecutive windows.

    The event log is local only (``auditor listen`` appends and fsyncs): on an object store
    there is none (``missing`` when ``[events] expected``, else off)."""
    if is_remote(store_root(store)):
        if not expected:
            return EventWindow("off", None, as_of)
        return EventWindow(
            "missing", None, as_of,
            detail="no event log: the webhook event log is local only, and this store is "
            "on an object store (see docs/store.md)",
        )  # fmt: skip
    store = os.fspath(store) if isinstance(store, os.PathLike) else str(store)
    if not (Path(store) / EVENTS_DIR).is_dir():  # no listener: off (or "no event log")
        return read_event_window(store, since=None, until=as_of, expected=expected)
    before = select_snapshots(store, before=snapshot.snapshot_id)
    if before:
        own = stored_audit(store, before[-1].snapshot_id)
        since = (
            pd.Timestamp(own["as_of"]).to_pydatetime() if own else before[-1].snapshot_at
        )
    else:
        since = snapshot.snapshot_at - timedelta(days=1)
    since = min(since, as_of)
    return read_event_window(store, since=since, until=as_of, expected=expected)


def with_events(snapshot: Snapshot, window: EventWindow) -> Snapshot:
    """``snapshot`` with the window's events (partitioned with it from now on); an unreadable
    event log is a fleet-wide input not read (a fleet-level ``not-collected`` finding)."""
    if window.state == "on":
        return replace(snapshot, events=window.events)
    if window.state != "unreadable":
        return snapshot
    row = pd.DataFrame(
        {
            "company_id": [None],
            "endpoint": ["event-log"],
            "error": [window.detail],
            "snapshot_at": [snapshot.snapshot_at],
        }
    )
    errors = pd.concat([snapshot.errors, conform(row, ERRORS_SCHEMA)], ignore_index=True)
    return replace(snapshot, errors=conform(errors, ERRORS_SCHEMA))


def fleet_info(
    snapshot: Snapshot,
    as_of: datetime,
    events: EventWindow | None = None,
    *,
    companies_audited: int | None = None,
) -> FleetInfo:
    """Fleet-level facts for the report header (``companies_audited``: counted by a streamed
    audit, whose ``snapshot`` has no status rows; else counted here)."""
    companies = snapshot.companies
    return FleetInfo(
        companies_audited=(
            len(snapshot.company_ids) if companies_audited is None else companies_audited
        ),
        snapshot_id=snapshot.snapshot_id,
        as_of=as_of,
        connections=int(companies["connection_id"].notna().sum()),
        collection_errors=int(snapshot.errors["company_id"].nunique()),
        not_monitored=len(unmonitored_companies(companies)),
        events=events,
    )


def audit_snapshot(
    snapshot: Snapshot,
    *,
    config: AuditConfig,
    as_of: datetime,
    previous: pd.DataFrame | None = None,
    snoozes: SnoozesArg = None,
) -> AuditResult:
    """Audit an in-memory snapshot (no store involved)."""
    return audit(snapshot, config, as_of=as_of, previous=previous, snoozes=snoozes)


def audit_store(
    store: StorePath,
    *,
    which: str = "latest",
    config: AuditConfig | None = None,
    as_of: datetime,
    snoozes: SnoozesArg = None,
    out_dir: Path | str | None = None,
    history_days: int = 30,
    max_rows: int = 2000,
    overwrite: bool = False,
    partition_companies: int | None = PARTITION_COMPANIES,
) -> AuditRun:
    """Audit a stored snapshot, store its findings, and write the reports to ``out_dir``.

    ``which`` picks the night as :func:`auditor.store.select_snapshot` does (``latest``,
    ``previous``, ``YYYY-MM-DD`` or a snapshot id).

    The previous stored audit feeds the incident ledger (new / ongoing / regressed /
    resolved); the last ``history_days`` nights feed the report's trend chart.

    History is never silently rewritten: the first audit stored for a snapshot is the
    night's own. A later audit of it with another ``as_of`` or config (:func:`config_hash`)
    writes its reports but not the stored findings and ledger, unless ``overwrite``;
    re-running the same audit rewrites them (idempotent). ``as_of`` before the snapshot's
    time raises :class:`AuditRefusedError`.

    Memory: a snapshot of more than ``partition_companies`` companies is streamed: its
    status rows are read one company-complete partition (about that many companies) at a
    time (:func:`auditor.store.iter_partitions`), each audited and dropped; only the
    fleet-level frames and the findings stay (:func:`auditor.engine.audit_partitions`). The
    findings are the same as those of the whole snapshot. None: always read it whole.
    """
    config = config or AuditConfig()
    snapshot_id = select_snapshot(store, which).snapshot_id
    streamed = (
        partition_companies is not None
        and partition_count(store, snapshot_id, companies=partition_companies) > 1
    )
    fleet_frames = ("companies", "errors", "sync_settings")
    snapshot = load_snapshot(store, snapshot_id, **({"frames": fleet_frames} if streamed else {}))
    if as_of < snapshot.snapshot_at:
        raise AuditRefusedError(
            f"--as-of {as_of.isoformat()} is before snapshot {snapshot.snapshot_id} was taken "
            f"({snapshot.snapshot_at.isoformat()}): ages would be negative"
        )
    window = event_window(store, snapshot, as_of, expected=config.events.expected)
    snapshot = with_events(snapshot, window)
    previous = previous_findings(store, snapshot.snapshot_id)
    counted: int | None = None
    judged = snapshot
    action_status: pd.DataFrame | None = None
    queued = load_refreshes(store, before=snapshot.snapshot_id)
    if streamed:
        assert partition_companies is not None
        ids: list[pd.Index] = []
        refreshed: list[pd.DataFrame] = []
        troubled: list[pd.DataFrame] = []

        def partitions() -> Iterator[Snapshot]:
            for part in iter_partitions(store, snapshot_id, companies=partition_companies):
                ids.append(part.company_ids)
                st = part.status
                if queued is not None and not queued.empty:  # kept for refresh_outcomes
                    refreshed.append(st.loc[isin(st["company_id"], queued["company_id"])])
                # The pull operation ids the actions quote ("contact Codat support"): of the
                # types not Complete only, so what is kept follows the problems, not the fleet.
                not_complete = ~isin(st["current_status"], ["Complete"])
                troubled.append(st.loc[not_complete, list(_ACTION_STATUS_COLUMNS)])
                yield part

        try:
            result = audit_partitions(
                snapshot, partitions(), config, as_of=as_of, previous=previous, snoozes=snoozes
            )
            counted = len(pd.Index(pd.concat([i.to_series() for i in ids])).unique())
            if refreshed:  # the status rows of the companies refreshed last night only
                judged = replace(snapshot, status=pd.concat(refreshed, ignore_index=True))
            action_status = pd.concat(troubled, ignore_index=True) if troubled else None
        except NotCompanyCompleteError as exc:
            log.warning("%s: auditing the whole snapshot in memory instead", exc)
            snapshot = judged = load_snapshot(store, snapshot_id)
            streamed = False
        del ids, refreshed, troubled
    if not streamed:
        result = audit_snapshot(
            snapshot, config=config, as_of=as_of, previous=previous, snoozes=snoozes
        )
    digest = config_hash(config)
    stored, not_stored = True, ""
    own = stored_audit(store, snapshot.snapshot_id)
    if own is None or overwrite or same_audit(own, as_of, digest):
        write_findings(store, result, config_hash=digest, overwrite=overwrite)
    else:
        stored = False
        not_stored = (
            f"snapshot {snapshot.snapshot_id} keeps its own audit (as_of {own.get('as_of')}, "
            f"config {own.get('config_hash') or 'unknown'}); this audit (as_of "
            f"{as_of.isoformat()}, config {digest}) was not stored (use overwrite to replace)"
        )
        log.warning("findings not stored: %s", not_stored)
    fleet = fleet_info(snapshot, as_of, window, companies_audited=counted)
    refreshes = _refresh_outcomes(judged, queued)
    actions = build_actions(
        result,
        connections=snapshot.companies,
        status=action_status if streamed else snapshot.status,
        refreshes=refreshes,
        link_hosts=_link_hosts(config),
    )
    paths = None
    if out_dir is not None:
        paths = write_reports(
            result,
            out_dir,
            history=history(store, history_days, as_of=as_of),
            freshness_history=freshness_history(store, history_days, as_of=as_of),
            freshness_target=config.report.freshness_target,
            display_tz=config.timezone,
            fleet=fleet,
            max_rows=max_rows,
            actions=actions,
            refreshes=refreshes,
            connections=snapshot.companies,
        )
        log.info("reports written to %s", Path(out_dir))
    return AuditRun(
        snapshot=snapshot,
        result=result,
        reports=paths,
        fleet=fleet,
        refreshes=refreshes,
        stored=stored,
        not_stored=not_stored,
        actions=actions,
    )


#: The status columns the actions table reads (:func:`auditor.actions.build_actions`).
_ACTION_STATUS_COLUMNS = ("company_id", "connection_id", "data_type", "current_status",
                          "latest_sync_id")  # fmt: skip


def _link_hosts(config: AuditConfig) -> list[str]:
    """The hosts whose https links may be sent to a customer (``[rules.needs-relink]``)."""
    hosts = getattr(config.rule_options("needs-relink"), "link_hosts", None)
    return list(hosts) if hosts is not None else list(DEFAULT_LINK_HOSTS)


def _refresh_outcomes(snapshot: Snapshot, queued: pd.DataFrame | None) -> pd.DataFrame | None:
    """Did last night's refreshes work? Logged, and returned for the CSV export."""
    if queued is None or queued.empty:
        return None
    outcomes = refresh_outcomes(queued, snapshot)
    counts = outcomes["result"].value_counts()
    log.info(
        "refreshes queued last night: %d worked, %d failed, %d still running, %d unknown",
        int(counts.get("worked", 0)),
        int(counts.get("failed", 0)),
        int(counts.get("running", 0)),
        int(counts.get("unknown", 0)),
    )
    return outcomes
