"""``auditor sandbox``: serve a Codat-compatible sandbox on loopback until Ctrl-C."""

from __future__ import annotations

import contextlib
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from auditor.cli._app import app
from auditor.logs import register_secret
from auditor.sandbox import (
    SANDBOX_API_KEY,
    FleetFileError,
    SandboxOptions,
    SandboxServer,
    generate_fleet,
    load_fleet,
)

__all__ = ["sandbox"]


def _parse_now(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"not an ISO-8601 time: {value!r}", param_hint="--now") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@app.command()
def sandbox(
    fleet: Annotated[
        Path | None,
        typer.Option("--fleet", help="Serve this fleet file (JSON) instead of a generated fleet."),
    ] = None,
    companies: Annotated[
        int, typer.Option("--companies", min=0, help="Companies in the generated fleet.")
    ] = 500,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the generated fleet and of the fault knobs.")
    ] = 0,
    now: Annotated[
        str | None,
        typer.Option("--now", help="ISO-8601 time the generated fleet describes (default: now)."),
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, help="Port (0: any free port).")] = 0,
    latency_ms: Annotated[
        float, typer.Option("--latency-ms", min=0, help="Added to every response.")
    ] = 0.0,
    rate_limit: Annotated[
        int | None,
        typer.Option(
            "--rate-limit",
            min=1,
            help="Per-IP ceiling: requests per minute before a 429 without quota headers "
            "(default: none).",
        ),
    ] = None,
    daily_quota: Annotated[
        int | None,
        typer.Option(
            "--daily-quota",
            min=1,
            help="Daily quota: requests per sandbox day, X-Rate-Limit-* on every answer, 429 "
            "with Retry-After until 00:00 UTC sandbox time once spent (default: none).",
        ),
    ] = None,
    fault_rate: Annotated[
        float, typer.Option("--fault-rate", min=0, max=1, help="Share of requests answered 5xx.")
    ] = 0.0,
    timeout_rate: Annotated[
        float,
        typer.Option("--timeout-rate", min=0, max=1, help="Share of requests that hang."),
    ] = 0.0,
    timeout_hang: Annotated[
        float,
        typer.Option("--timeout-hang", min=0, help="Seconds a hanging request hangs."),
    ] = 120.0,
    reset_rate: Annotated[
        float,
        typer.Option("--reset-rate", min=0, max=1, help="Share of connections reset."),
    ] = 0.0,
    malformed_rate: Annotated[
        float,
        typer.Option("--malformed-rate", min=0, max=1, help="Share of bodies truncated."),
    ] = 0.0,
    quirks: Annotated[
        bool, typer.Option("--quirks", help="Serve doc-style variants for some companies.")
    ] = False,
    time_scale: Annotated[
        float,
        typer.Option("--time-scale", min=0.001, help="Sandbox seconds per real second."),
    ] = 1.0,
    api_key: Annotated[
        str, typer.Option("--api-key", help="API key the sandbox accepts.")
    ] = SANDBOX_API_KEY,
    webhook_url: Annotated[
        str | None,
        typer.Option(
            "--webhook-url",
            envvar="SANDBOX_WEBHOOK_URL",
            show_envvar=True,
            help="Post Codat's webhooks there (Svix-signed with $CODAT_WEBHOOK_SECRET) as the "
            "fleet changes over sandbox time, e.g. an auditor listen endpoint.",
        ),
    ] = None,
) -> None:
    """Serve a Codat-compatible sandbox (generated or from a fleet file) until Ctrl-C."""
    webhook_secret = os.environ.get("CODAT_WEBHOOK_SECRET") if webhook_url else None
    if webhook_url:
        register_secret(webhook_url)
        register_secret(webhook_secret)
        if not (webhook_secret or "").startswith("whsec_"):
            typer.echo("error: --webhook-url needs CODAT_WEBHOOK_SECRET=whsec_...", err=True)
            raise typer.Exit(2)
    try:
        options = SandboxOptions(
            latency_ms=latency_ms,
            rate_limit_per_min=rate_limit,
            daily_quota=daily_quota,
            fault_rate=fault_rate,
            timeout_rate=timeout_rate,
            timeout_hang_seconds=timeout_hang,
            reset_rate=reset_rate,
            malformed_rate=malformed_rate,
            quirks=quirks,
            seed=seed,
            api_key=api_key,
            time_scale=time_scale,
            webhook_url=webhook_url or None,
            webhook_secret=webhook_secret,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if fleet is not None:
        try:
            served = load_fleet(fleet)
        except FleetFileError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        source = f"fleet file {fleet} ({len(served)} companies)"
    else:
        served = generate_fleet(companies, seed=seed, now=_parse_now(now))
        source = f"generated fleet: {companies} companies, seed {seed}"
    server = SandboxServer(served, options, host=host, port=port)
    try:
        server.start()
    except OSError as exc:
        typer.echo(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"Codat sandbox serving {source}")
    typer.echo(f"  base URL: {server.base_url}")
    typer.echo(f"  API key:  {server.api_key}   (export CODAT_API_KEY=...; sandbox key only)")
    if webhook_url:
        typer.echo("  webhooks: posted to --webhook-url as the fleet changes")
    typer.echo("Press Ctrl-C to stop.")
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    typer.echo(f"stopped; requests served: {server.stats.total}")
