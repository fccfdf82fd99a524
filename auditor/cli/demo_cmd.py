"""``auditor demo``: the whole pipeline on the embedded sandbox, in one command."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated

import typer

from auditor.cli._app import app
from auditor.cli._common import load_config_or_exit, parse_as_of
from auditor.cli._summary import echo_summary
from auditor.codat import CodatClient, RateLimitPolicy
from auditor.collector import collect_to_store
from auditor.logs import configure_logging
from auditor.pipeline import audit_store
from auditor.report import build_digest, write_eml
from auditor.sandbox import Fleet, SandboxOptions, SandboxServer, generate_fleet, load_fleet

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
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="The audit's 'now', ISO-8601 (default: now, UTC)."),
    ] = None,
    out: Annotated[
        Path, typer.Option("--out", help="Where the store, report and CSVs go.")
    ] = Path("reports/demo"),
    config: Annotated[
        Path | None, typer.Option("--config", help="TOML configuration file.")
    ] = None,
    snoozes: Annotated[Path | None, typer.Option("--snoozes", help="Snooze file (TOML).")] = None,
) -> None:
    """Run the main job on the embedded sandbox: serve a fleet on a free loopback port,
    snapshot it over HTTP into OUT/store, audit it, and write OUT/report.html, the CSVs and
    OUT/demo.eml (the email digest, not sent)."""
    cfg = load_config_or_exit(config)
    now = parse_as_of(as_of)
    configure_logging(run_id="demo")
    started = time.perf_counter()
    fleet: Fleet = load_fleet(fleet_file) if fleet_file else generate_fleet(companies, seed, now)
    store = out / "store"
    with SandboxServer(fleet, options=SandboxOptions(start_time=now)) as server:
        typer.echo(f"sandbox serving {len(fleet)} companies at {server.base_url}")

        async def collect() -> None:
            async with CodatClient(
                server.api_key,
                base_url=server.base_url,
                rate_limit=RateLimitPolicy(requests_per_minute=None),
            ) as client:
                await collect_to_store(client, store, snapshot_at=now, progress="auto")

        asyncio.run(collect())
        requests = server.stats.total
    run = audit_store(store, config=cfg, as_of=now, snoozes=snoozes, out_dir=out)
    assert run.reports is not None
    msg = build_digest(
        run.result, display_tz=cfg.timezone, fleet=run.fleet, report_paths=run.reports, now=now
    )
    eml = write_eml(msg, out / "demo.eml")
    elapsed = time.perf_counter() - started
    typer.echo(f"collected {len(run.snapshot.company_ids)} companies with {requests} requests")
    echo_summary(run.result)
    typer.echo(f"report:   {run.reports.report_html}")
    typer.echo(f"findings: {run.reports.findings_csv}")
    typer.echo(f"digest:   {eml}")
    typer.echo(f"done in {elapsed:.1f} s")
