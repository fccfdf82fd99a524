"""What ``auditor run`` and ``auditor audit`` leave for machines: results.json and metrics."""

from __future__ import annotations

import logging
import time
from datetime import datetime
from pathlib import Path

from auditor.metrics import MetricsSettings, RunFigures, publish_metrics
from auditor.nightly import NightlyOutcome, RunFailedError
from auditor.pipeline import AuditRun
from auditor.results_json import Command, build_results, results_name, write_results

__all__ = ["emit_audit", "emit_nightly"]

log = logging.getLogger("auditor.cli")


def _write(payload: dict[str, object], out_dir: Path, name: str) -> None:
    try:
        path = write_results(payload, out_dir, name=name)
    except (OSError, ValueError) as exc:
        log.error("could not write %s in %s: %s", name, out_dir, exc)
        return
    log.info("results written to %s", path)


def emit_nightly(
    *,
    run_id: str,
    as_of: datetime,
    store: Path,
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
    failed = error if isinstance(error, RunFailedError) else None
    audit = outcome.audit if outcome is not None else None
    collected = outcome.collected if outcome is not None else (failed and failed.collected)
    stats = outcome.client_stats if outcome is not None else (failed.client_stats if failed else {})
    stages = outcome.stages if outcome is not None else (failed.stages if failed else {})
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
        collected=collected or None,
        client_stats=stats,
        stages=stages,
        name=name,
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
            collected=collected or None,
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
    store: Path,
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
