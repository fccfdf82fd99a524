"""``auditor demo``: the whole pipeline on the embedded sandbox, in one command."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from auditor.cli._app import app
from auditor.cli._common import load_config_or_exit, parse_as_of, settings_or_exit
from auditor.cli._echo import echo
from auditor.cli._summary import echo_refreshes, echo_summary
from auditor.cli.options import (
    DEFAULT_PROGRESS,
    AsOfOption,
    ConfigOption,
    ProgressOption,
    SnoozesOption,
)
from auditor.demo import DemoRefusedError, run_demo
from auditor.logs import configure_logging
from auditor.pipeline import AuditRun
from auditor.sandbox import FleetFileError, load_fleet

__all__ = ["demo"]


@app.command()
def demo(
    fleet_file: Annotated[
        Path | None,
        typer.Option("--fleet", help="Serve this fleet file instead of a generated fleet."),
    ] = None,
    companies: Annotated[
        int, typer.Option("--companies", min=1, help="Companies in the generated fleet.")
    ] = 500,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the generated fleet.")] = 1,
    nights: Annotated[
        int,
        typer.Option(
            "--nights",
            min=1,
            max=60,
            help="Nights to simulate, ending at --as-of; between nights half of the refresh "
            "plan is applied, so the report shows new, ongoing and resolved incidents.",
        ),
    ] = 1,
    as_of: AsOfOption = None,
    out: Annotated[
        Path,
        typer.Option(
            "--out", help="Where the demo's store, report, CSVs and digest go (all of them)."
        ),
    ] = Path("reports/demo"),
    config: ConfigOption = None,
    snoozes: SnoozesOption = None,
    progress: ProgressOption = DEFAULT_PROGRESS,
    webhooks: Annotated[
        bool,
        typer.Option(
            "--webhooks/--no-webhooks",
            help="Run a webhook listener on OUT/store and have the sandbox post Codat's "
            "Svix-signed webhooks to it as the fleet changes (on by default).",
        ),
    ] = True,
) -> None:
    """Run the main job on the embedded sandbox, end to end.

    Serves a fleet on a free loopback port, snapshots it over HTTP into OUT/store, audits it,
    and writes OUT/report.html, the CSVs and OUT/demo.eml (the email digest, not sent).
    OUT is the demo's own: it refuses a directory it did not make (no .auditor-demo file).
    """
    cfg = load_config_or_exit(config)
    snoozes = settings_or_exit(cfg, snoozes=snoozes).snoozes
    now = parse_as_of(as_of)
    configure_logging(run_id="demo")
    started = time.perf_counter()
    try:
        fleet = load_fleet(fleet_file) if fleet_file else None
    except FleetFileError as exc:  # missing, unreadable or invalid: one line, exit 2
        echo(f"error: --fleet: {exc}", err=True)
        raise typer.Exit(2) from None

    def night_done(night: int, run: AuditRun) -> None:
        active = run.result.active
        echo(
            f"night {night + 1}/{nights} ({run.snapshot.snapshot_at:%Y-%m-%d}): "
            f"{len(active)} open findings, "
            f"{int(active['state'].astype('string').isin(['new', 'regressed']).sum())} new or "
            f"regressed, {len(run.result.resolved)} resolved"
        )

    try:
        outcome = run_demo(
            out,
            as_of=now,
            companies=companies,
            seed=seed,
            nights=nights,
            fleet=fleet,
            config=cfg,
            snoozes=snoozes,
            progress=progress,
            on_night=night_done,
            webhooks=webhooks,
        )
    except DemoRefusedError as exc:
        echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    final = outcome.nights[-1]
    assert final.reports is not None
    echo(
        f"collected {len(final.snapshot.company_ids)} companies a night; "
        f"{outcome.requests} requests to the sandbox in all"
    )
    if outcome.webhooks:
        sent = ", ".join(f"{n} {kind}" for kind, n in sorted(outcome.webhooks.items()))
        got = outcome.listener
        echo(
            f"webhooks: {sent}; listener stored {got.get('stored', 0)}, "
            f"{got.get('duplicates', 0)} duplicate deliveries recognised, "
            f"{got.get('rejected', 0)} rejected (event log: {outcome.store / 'events'})"
        )
    echo_summary(final.result)
    echo_refreshes(final)
    echo(f"report:   {final.reports.report_html}")
    echo(f"findings: {final.reports.findings_csv}")
    echo(f"digest:   {outcome.eml}")
    echo(f"done in {time.perf_counter() - started:.1f} s")
