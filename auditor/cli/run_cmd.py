"""``auditor run``: the nightly batch job (snapshot -> audit -> reports -> email)."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Annotated

import typer

from auditor.cli._app import app
from auditor.cli._common import api_key_or_exit, load_config_or_exit, parse_as_of
from auditor.cli._summary import echo_refreshes, echo_summary
from auditor.codat import DEFAULT_BASE_URL, RetryPolicy
from auditor.collector import ProgressMode, parse_shard
from auditor.config import FailOn
from auditor.logs import LogFormat, configure_logging
from auditor.nightly import EXIT_RUN_FAILED, RunFailedError, run_nightly

__all__ = ["run"]

log = logging.getLogger("auditor.cli")


@app.command()
def run(
    config: Annotated[
        Path | None,
        typer.Option("--config", envvar="AUDITOR_CONFIG", help="TOML configuration file."),
    ] = None,
    store: Annotated[
        Path | None,
        typer.Option(
            "--store",
            envvar="AUDITOR_STORE",
            help="Snapshot store directory [default: the config's run.store, else ./store].",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            envvar="AUDITOR_OUT",
            help="Where report.html, CSVs, .eml go [default: run.out, else reports/nightly].",
        ),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url",
            envvar="CODAT_BASE_URL",
            help="Codat API base URL [default: run.base_url, else https://api.codat.io].",
        ),
    ] = None,
    snoozes: Annotated[
        Path | None,
        typer.Option("--snoozes", envvar="AUDITOR_SNOOZES", help="Snooze file (TOML)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Send no email (the digest is written as .eml).")
    ] = False,
    shard: Annotated[
        str | None, typer.Option("--shard", help="K/N: collect shard K of N (0-based).")
    ] = None,
    fail_on: Annotated[
        FailOn | None,
        typer.Option(
            "--fail-on",
            help="Exit 1 at this level: never, warning, error, new-warning, new-error "
            "(default: the config's fail_on, itself new-error by default).",
        ),
    ] = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="The run's 'now', ISO-8601 (default: now).")
    ] = None,
    rate_limit: Annotated[
        float | None,
        typer.Option(
            "--rate-limit",
            min=0,
            help="Requests per minute, 0: no limit [default: run.rate_limit, else 1000].",
        ),
    ] = None,
    log_format: Annotated[
        LogFormat, typer.Option("--log-format", help="JSON lines for log collectors.")
    ] = "human",
    progress: Annotated[
        ProgressMode, typer.Option("--progress", help="Bar on a terminal, else log lines.")
    ] = "auto",
) -> None:
    """The nightly job: snapshot every company, audit, write the reports, email the digest.

    Exit codes: 0 ok; 1 findings at or above --fail-on; 2 the run failed (configuration,
    authentication, store, lock, no company reachable). The API key comes from CODAT_API_KEY,
    SMTP settings from SMTP_* variables.
    """
    now = parse_as_of(as_of)
    run_id = f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    configure_logging(run_id=run_id, fmt=log_format)
    cfg = load_config_or_exit(config)
    api_key = api_key_or_exit()  # exit 2 (EXIT_RUN_FAILED) when not set
    try:
        shard_k_n = parse_shard(shard) if shard else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--shard") from None
    settings = cfg.run
    store = store or Path(settings.store or "store")
    out = out or Path(settings.out or "reports/nightly")
    base_url = base_url or settings.base_url or DEFAULT_BASE_URL
    snoozes = snoozes or (Path(settings.snoozes) if settings.snoozes else None)
    limit = rate_limit if rate_limit is not None else settings.rate_limit
    limit = 1000.0 if limit is None else limit
    retry = RetryPolicy(max_attempts=settings.max_attempts or RetryPolicy().max_attempts)
    log.info("run %s starting: store %s, base URL %s", run_id, store, base_url)
    try:
        outcome = run_nightly(
            api_key=api_key,
            base_url=base_url,
            store=store,
            out_dir=out,
            config=cfg,
            as_of=now,
            run_id=run_id,
            snoozes=snoozes,
            dry_run=dry_run,
            shard=shard_k_n,
            fail_on=fail_on,
            rate_limit=limit or None,
            retry=retry,
            timeout=settings.timeout or 30.0,
            progress=progress,
        )
    except RunFailedError as exc:
        log.error("run failed: %s", exc)
        raise typer.Exit(EXIT_RUN_FAILED) from None
    except Exception as exc:  # any other failure is the run's own: exit 2, never 1
        log.exception("run failed unexpectedly: %s: %s", type(exc).__name__, exc)
        raise typer.Exit(EXIT_RUN_FAILED) from None
    if outcome.audit is not None:
        echo_summary(outcome.audit.result)
        echo_refreshes(outcome.audit)
        for digest in outcome.digests:
            sent_to = "sent to " + ", ".join(digest.recipients)
            where = sent_to if digest.sent else f"written to {digest.eml_path}"
            typer.echo(f"digest: {digest.subject} ({where})")
    typer.echo(f"exit {outcome.exit_code}: {outcome.reason}")
    raise typer.Exit(outcome.exit_code)
