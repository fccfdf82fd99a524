"""``auditor audit``: audit a stored snapshot and write the reports."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from auditor.cli._app import app
from auditor.cli._common import load_config_or_exit, parse_as_of
from auditor.cli._summary import echo_refreshes, echo_summary
from auditor.config import ConfigError
from auditor.logs import configure_logging
from auditor.pipeline import AuditRefusedError, audit_store
from auditor.store import SnapshotNotFoundError, StoreError

__all__ = ["audit"]


@app.command()
def audit(
    store: Annotated[Path, typer.Option("--store", help="Snapshot store directory.")] = Path(
        "store"
    ),
    snapshot: Annotated[
        str, typer.Option("--snapshot", help="'latest' or a snapshot id.")
    ] = "latest",
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="The audit's 'now', ISO-8601 (default: now, UTC)."),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="TOML configuration file.")
    ] = None,
    snoozes: Annotated[Path | None, typer.Option("--snoozes", help="Snooze file (TOML).")] = None,
    out: Annotated[
        Path, typer.Option("--out", help="Where report.html and the CSVs go.")
    ] = Path("reports"),
    max_rows: Annotated[
        int, typer.Option("--max-rows", min=1, help="Findings shown inline in report.html.")
    ] = 2000,
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
    incidents.csv.
    """
    cfg = load_config_or_exit(config)
    now = parse_as_of(as_of)
    configure_logging(run_id=f"audit-{snapshot}")
    try:
        run = audit_store(
            store,
            which=snapshot,
            config=cfg,
            as_of=now,
            snoozes=snoozes,
            out_dir=out,
            max_rows=max_rows,
            overwrite=overwrite,
        )
    except (SnapshotNotFoundError, ConfigError, OSError, StoreError, AuditRefusedError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    echo_summary(run.result)
    echo_refreshes(run)
    assert run.reports is not None
    typer.echo(f"report:   {run.reports.report_html}")
    typer.echo(f"findings: {run.reports.findings_csv}")
    if not run.stored:
        typer.echo(f"not stored: {run.not_stored}")
