"""The pipeline's stages joined up: snapshot -> store -> audit -> reports (-> email).

The CLI commands (``demo``, ``snapshot``, ``audit``, ``run``) and the public Python API call
these functions; each stage stays usable on its own (see :mod:`auditor`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import pandas as pd

from auditor.config import AuditConfig
from auditor.engine import NotCompanyCompleteError, SnoozesArg, audit, audit_partitions
from auditor.ledger import previous_tables
from auditor.remediation import REFRESH_OUTCOME_COLUMNS, refresh_outcomes
from auditor.report import FleetInfo, ReportPaths, write_csv, write_reports
from auditor.result import AuditResult
from auditor.rules._shared import unmonitored_companies
from auditor.snapshot import Snapshot
from auditor.store import (
    PARTITION_COMPANIES,
    history,
    iter_partitions,
    load_findings,
    load_refreshes,
    load_snapshot,
    partition_count,
    select_snapshot,
    select_snapshots,
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
    "fleet_info",
    "previous_findings",
]

log = logging.getLogger("auditor.pipeline")

#: Config fields that only affect display, delivery or the exit code, never the findings.
_NOT_AUDIT_INPUT = frozenset({"timezone", "fail_on", "email", "report", "run"})


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


def previous_findings(
    store: Path | str, snapshot_id: str, *, memory_nights: int = 30
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


def fleet_info(
    snapshot: Snapshot, as_of: datetime, *, companies_audited: int | None = None
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
    store: Path | str,
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
    previous = previous_findings(store, snapshot.snapshot_id)
    counted: int | None = None
    judged = snapshot
    queued = load_refreshes(store, before=snapshot.snapshot_id)
    if streamed:
        assert partition_companies is not None
        ids: list[pd.Index] = []
        refreshed: list[pd.DataFrame] = []

        def partitions() -> Iterator[Snapshot]:
            for part in iter_partitions(store, snapshot_id, companies=partition_companies):
                ids.append(part.company_ids)
                if queued is not None and not queued.empty:  # kept for refresh_outcomes
                    st = part.status
                    refreshed.append(st.loc[isin(st["company_id"], queued["company_id"])])
                yield part

        try:
            result = audit_partitions(
                snapshot, partitions(), config, as_of=as_of, previous=previous, snoozes=snoozes
            )
            counted = len(pd.Index(pd.concat([i.to_series() for i in ids])).unique())
            if refreshed:  # the status rows of the companies refreshed last night only
                judged = replace(snapshot, status=pd.concat(refreshed, ignore_index=True))
        except NotCompanyCompleteError as exc:
            log.warning("%s: auditing the whole snapshot in memory instead", exc)
            snapshot = judged = load_snapshot(store, snapshot_id)
            streamed = False
        del ids, refreshed
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
    fleet = fleet_info(snapshot, as_of, companies_audited=counted)
    refreshes = _refresh_outcomes(judged, queued)
    paths = None
    if out_dir is not None:
        paths = write_reports(
            result,
            out_dir,
            history=history(store, history_days, as_of=as_of),
            display_tz=config.timezone,
            fleet=fleet,
            max_rows=max_rows,
        )
        if refreshes is not None:
            write_csv(refreshes[list(REFRESH_OUTCOME_COLUMNS)], Path(out_dir) / REFRESHES_CSV)
        log.info("reports written to %s", Path(out_dir))
    return AuditRun(
        snapshot=snapshot,
        result=result,
        reports=paths,
        fleet=fleet,
        refreshes=refreshes,
        stored=stored,
        not_stored=not_stored,
    )


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
