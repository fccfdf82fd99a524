"""What ``auditor run`` and ``auditor audit`` leave for machines: results.json and metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from auditor.collector import StoreRun
from auditor.metrics import MetricsSettings, RunFigures, publish_metrics
from auditor.nightly import NightlyOutcome, RunFailedError
from auditor.pipeline import AuditRun
from auditor.results_json import Command, build_results, results_name, write_results
from auditor.store import StoreDir

__all__ = ["emit_audit", "emit_nightly"]

log = logging.getLogger("auditor.cli")


def _write(payload: dict[str, object], out_dir: Path, name: str) -> None:
    try:
        path = write_results(payload, out_dir, name=name)
    except (OSError, ValueError) as exc:
        log.error("could not write %s in %s: %s", name, out_dir, exc)
        return
    log.debug("results written to %s", path)


def emit_nightly(
    *,
    run_id: str,
    as_of: datetime,
    store: StoreDir,
    out_dir: Path,
    outcome: NightlyOutcome | None,
    error: BaseException | None,
    exit_code: int,
    reason: str,
    metrics: MetricsSettings,
    shard: tuple[int, int] | None,
    started: float,
) -> None:
    """results.json (every exit) and the metrics (when asked) of one ``auditor run``."""
    audit = outcome.audit if outcome is not None else None
    collected: StoreRun | None = None
    stats: Mapping[str, Mapping[str, int]] = {}
    stages: Mapping[str, float] = {}
    if outcome is not None:
        collected, stats, stages = outcome.collected, outcome.client_stats, outcome.stages
    elif isinstance(error, RunFailedError):  # failed after collecting: what it collected
        collected, stats, stages = error.collected, error.client_stats, error.stages
    name = results_name(shard, audited=audit is not None)
    payload = build_results(
        command="run",
        run_id=run_id,
        exit_code=exit_code,
        reason=reason,
        as_of=as_of if audit is not None else None,
        store=store,
        out_dir=out_dir,
        audit=audit,
        collected=collected,
        client_stats=stats,
        stages=stages,
        name=name,
        notifications=outcome.notifications if outcome is not None else (),
    )
    _write(payload, out_dir, name)
    finished = time.time()
    publish_metrics(
        metrics,
        RunFigures(
            exit_code=exit_code,
            finished_at=finished,
            duration_seconds=time.monotonic() - started,
            result=audit.result if audit is not None else None,
            collected=collected,
            client_stats=stats,
            stages=stages,
        ),
        shard=shard,
    )


def emit_audit(
    *,
    command: Command,
    run_id: str,
    as_of: datetime,
    store: StoreDir,
    out_dir: Path,
    run: AuditRun | None,
    exit_code: int,
    reason: str,
) -> None:
    """results.json of one ``auditor audit``."""
    payload = build_results(
        command=command,
        run_id=run_id,
        exit_code=exit_code,
        reason=reason,
        as_of=as_of if run is not None else None,
        store=store,
        out_dir=out_dir,
        audit=run,
    )
    _write(payload, out_dir, results_name(None, audited=True))
