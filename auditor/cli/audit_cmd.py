"""``auditor audit``: audit a stored snapshot and write the reports."""

from __future__ import annotations

from typing import Annotated

import typer

from auditor.cli._app import app
from auditor.cli._common import load_config_or_exit, parse_as_of, settings_or_exit
from auditor.cli._echo import echo
from auditor.cli._outputs import emit_audit
from auditor.cli._summary import echo_refreshes, echo_summary
from auditor.cli.options import (
    DEFAULT_LOG_FORMAT,
    AsOfOption,
    ConfigOption,
    LogFormatOption,
    OutOption,
    SnapshotOption,
    SnoozesOption,
    StoreOption,
)
from auditor.config import ConfigError
from auditor.logs import configure_logging
from auditor.pipeline import AuditRefusedError, AuditRun, audit_store
from auditor.store import SnapshotNotFoundError, StoreError

__all__ = ["DEFAULT_AUDIT_OUT", "audit"]

#: ``auditor audit --out`` when neither the option, ``AUDITOR_OUT`` nor ``run.out`` say.
DEFAULT_AUDIT_OUT = "reports"


@app.command()
def audit(
    store: StoreOption = None,
    snapshot: SnapshotOption = "latest",
    as_of: AsOfOption = None,
    config: ConfigOption = None,
    snoozes: SnoozesOption = None,
    out: OutOption = None,
    max_rows: Annotated[
        int, typer.Option("--max-rows", min=1, help="Findings shown inline in report.html.")
    ] = 2000,
    log_format: LogFormatOption = DEFAULT_LOG_FORMAT,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Replace the night's stored audit (findings, ledger) with this one.",
        ),
    ] = False,
) -> None:
    """Audit a stored snapshot and write report.html and the CSVs.

    The findings are stored next to the snapshot, so that tomorrow's audit can say what is
    new, ongoing, regressed or resolved. Writes OUT/report.html, findings.csv, summary.csv and
    incidents.csv and results.json (OUT defaults to ./reports).
    """
    cfg = load_config_or_exit(config)
    settings = settings_or_exit(
        cfg, store=store, out=out, snoozes=snoozes, default_out=DEFAULT_AUDIT_OUT
    )
    now = parse_as_of(as_of)
    run_id = f"audit-{snapshot}"
    configure_logging(run_id=run_id, fmt=log_format)
    assert settings.out is not None
    out_dir = settings.out
    def emit(audited: AuditRun | None, exit_code: int, reason: str) -> None:
        """results.json (and its log line) for this audit, whatever its outcome."""
        emit_audit(
            command="audit", run_id=run_id, as_of=now, store=settings.store,
            out_dir=out_dir, run=audited, exit_code=exit_code, reason=reason,
        )  # fmt: skip

    try:
        run = audit_store(
            settings.store,
            which=snapshot,
            config=cfg,
            as_of=now,
            snoozes=settings.snoozes,
            out_dir=settings.out,
            max_rows=max_rows,
            overwrite=overwrite,
        )
    except (SnapshotNotFoundError, ConfigError, OSError, StoreError, AuditRefusedError) as exc:
        echo(f"error: {exc}", err=True)
        emit(None, 2, f"audit failed: {exc}")
        raise typer.Exit(2) from None
    incomplete = [f.describe() for f in run.result.rule_failures] + run.result.missing_inputs
    emit(run, 2 if incomplete else 0, "; ".join(incomplete) or "ok")
    echo_summary(run.result)
    echo_refreshes(run)
    assert run.reports is not None
    echo(f"report:   {run.reports.report_html}")
    echo(f"findings: {run.reports.findings_csv}")
    if not run.stored:
        echo(f"not stored: {run.not_stored}")
    if run.result.incomplete:
        for failure in run.result.rule_failures:
            echo(f"error: {failure.describe()}", err=True)
        for missing in run.result.missing_inputs:
            echo(f"error: {missing}", err=True)
        raise typer.Exit(2)
