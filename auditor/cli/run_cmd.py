"""``auditor run``: the nightly batch job (snapshot -> audit -> reports -> email)."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Annotated

import click
import typer

from auditor.cli._app import app
from auditor.cli._common import (
    api_key_or_exit,
    load_config_or_exit,
    parse_as_of,
    settings_or_exit,
)
from auditor.cli._echo import echo
from auditor.cli._outputs import emit_nightly
from auditor.cli._summary import echo_refreshes, echo_summary
from auditor.cli.options import (
    DEFAULT_LOG_FORMAT,
    DEFAULT_PROGRESS,
    AsOfOption,
    BaseUrlOption,
    ConfigOption,
    LogFormatOption,
    NoNotifyOption,
    OutOption,
    ProgressOption,
    RateLimitOption,
    SnoozesOption,
    StoreOption,
)
from auditor.codat import RetryPolicy
from auditor.collector import ProgressMode, parse_shard
from auditor.config import AuditConfig, FailOn
from auditor.heartbeat import Heartbeat, heartbeat
from auditor.logs import configure_logging
from auditor.metrics import METRICS_TEXTFILE_ENV, metrics_settings
from auditor.nightly import EXIT_RUN_FAILED, NightlyOutcome, RunFailedError, run_nightly

__all__ = ["DEFAULT_NIGHTLY_OUT", "run"]

#: ``auditor run --out`` when neither the option, ``AUDITOR_OUT`` nor ``run.out`` say.
DEFAULT_NIGHTLY_OUT = "reports/nightly"

log = logging.getLogger("auditor.cli")


@app.command()
def run(
    config: ConfigOption = None,
    store: StoreOption = None,
    out: OutOption = None,
    base_url: BaseUrlOption = None,
    snoozes: SnoozesOption = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Send no email and no notification (written as .eml and notify-*.json).",
        ),
    ] = False,
    no_notify: NoNotifyOption = False,
    shard: Annotated[
        str | None, typer.Option("--shard", help="K/N: collect shard K of N (0-based).")
    ] = None,
    shards: Annotated[
        int | None,
        typer.Option(
            "--shards",
            min=1,
            help="N: collect one shard of N, the one --shard-index names (instead of --shard).",
        ),
    ] = None,
    shard_index: Annotated[
        int | None,
        typer.Option(
            "--shard-index",
            min=0,
            envvar="JOB_COMPLETION_INDEX",
            help="K (0-based) with --shards; a Kubernetes Indexed Job sets JOB_COMPLETION_INDEX.",
        ),
    ] = None,
    fail_on: Annotated[
        FailOn | None,
        typer.Option(
            "--fail-on",
            help="Exit 1 at this level: never, warning, error, new-warning, new-error "
            "(default: the config's fail_on, itself new-error by default).",
        ),
    ] = None,
    as_of: AsOfOption = None,
    rate_limit: RateLimitOption = None,
    log_format: LogFormatOption = DEFAULT_LOG_FORMAT,
    progress: ProgressOption = DEFAULT_PROGRESS,
    metrics_textfile: Annotated[
        Path | None,
        typer.Option(
            "--metrics-textfile",
            envvar=METRICS_TEXTFILE_ENV,
            help="Write Prometheus metrics here for node_exporter's textfile collector "
            "[default: run.metrics_textfile, else none]. A Pushgateway comes from "
            "AUDITOR_PUSHGATEWAY_URL or run.pushgateway_url.",
        ),
    ] = None,
) -> None:
    """The nightly job: snapshot every company, audit, write the reports, email the digest.

    Exit codes: 0 ok; 1 findings at or above --fail-on; 2 the run failed (configuration,
    authentication, store, lock, no company reachable, the digest or a notification not
    delivered). The API key comes from CODAT_API_KEY, SMTP settings from SMTP_* variables, a
    heartbeat URL (pinged at start, success, failure) from AUDITOR_HEARTBEAT_URL or
    run.heartbeat_url. OUT defaults to ./reports/nightly. Writes
    OUT/results.json on every exit (schemas/results.schema.json).
    """
    started = time.monotonic()
    now = parse_as_of(as_of)
    run_id = f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    configure_logging(run_id=run_id, fmt=log_format)
    try:
        cfg = load_config_or_exit(config)
    except typer.Exit:  # AUDITOR_HEARTBEAT_URL still hears of it
        heartbeat(run_id).finish(EXIT_RUN_FAILED, "the configuration could not be read")
        raise
    beat = heartbeat(run_id, file_url=cfg.run.heartbeat_url)
    beat.start()
    try:
        _run(
            cfg,
            beat,
            run_id=run_id,
            now=now,
            started=started,
            store=store,
            out=out,
            base_url=base_url,
            snoozes=snoozes,
            dry_run=dry_run,
            no_notify=no_notify,
            shard=shard,
            shards=shards,
            shard_index=shard_index,
            fail_on=fail_on,
            rate_limit=rate_limit,
            progress=progress,
            metrics_textfile=metrics_textfile,
        )
    except typer.Exit as exc:  # the run's own end pinged already; this is an early exit
        beat.finish(exc.exit_code, "the run stopped before it started (see its log)")
        raise
    except click.UsageError as exc:
        beat.finish(EXIT_RUN_FAILED, f"usage error: {exc.format_message()}")
        raise
    except BaseException as exc:  # interrupted or killed (SIGTERM): the run did not finish
        beat.finish(EXIT_RUN_FAILED, f"the run was stopped ({type(exc).__name__})")
        raise


def _run(
    cfg: AuditConfig,
    beat: Heartbeat,
    *,
    run_id: str,
    now: datetime,
    started: float,
    store: str | None,
    out: Path | None,
    base_url: str | None,
    snoozes: Path | None,
    dry_run: bool,
    no_notify: bool,
    shard: str | None,
    shards: int | None,
    shard_index: int | None,
    fail_on: FailOn | None,
    rate_limit: float | None,
    progress: ProgressMode,
    metrics_textfile: Path | None,
) -> None:
    """The run once its configuration is read; always ends with ``typer.Exit``."""
    api_key = api_key_or_exit()  # exit 2 (EXIT_RUN_FAILED) when not set
    shard_k_n = _shard_or_exit(shard, shards, shard_index)
    settings = settings_or_exit(
        cfg,
        store=store,
        out=out,
        base_url=base_url,
        snoozes=snoozes,
        rate_limit=rate_limit,
        default_out=DEFAULT_NIGHTLY_OUT,
    )
    assert settings.out is not None
    metrics = metrics_settings(
        textfile=metrics_textfile,
        file_textfile=cfg.run.metrics_textfile,
        file_pushgateway_url=cfg.run.pushgateway_url,
    )
    retry = RetryPolicy(max_attempts=settings.max_attempts or RetryPolicy().max_attempts)
    log.info("run %s starting: store %s, base URL %s", run_id, settings.store, settings.base_url)
    outcome: NightlyOutcome | None = None
    error: BaseException | None = None
    try:
        outcome = run_nightly(
            api_key=api_key,
            base_url=settings.base_url,
            store=settings.store,
            out_dir=settings.out,
            config=cfg,
            as_of=now,
            run_id=run_id,
            snoozes=settings.snoozes,
            dry_run=dry_run,
            shard=shard_k_n,
            fail_on=fail_on,
            rate_limit=settings.rate_limit,
            retry=retry,
            timeout=settings.timeout,
            quota_reserve=settings.quota_reserve,
            quota_retry_after_bound=settings.quota_retry_after_bound,
            progress=progress,
            notify=not no_notify,
        )
    except RunFailedError as exc:
        error = exc
        log.error("run failed: %s", exc)
    except Exception as exc:  # any other failure is the run's own: exit 2, never 1
        error = exc
        log.exception("run failed unexpectedly: %s: %s", type(exc).__name__, exc)
    code = outcome.exit_code if outcome is not None else EXIT_RUN_FAILED
    reason = outcome.reason if outcome is not None else f"run failed: {error}"
    emit_nightly(
        run_id=run_id,
        as_of=now,
        store=settings.store,
        out_dir=settings.out,
        outcome=outcome,
        error=error,
        exit_code=code,
        reason=reason,
        metrics=metrics,
        shard=shard_k_n,
        started=started,
    )
    if outcome is None:
        beat.finish(EXIT_RUN_FAILED, reason)
        raise typer.Exit(EXIT_RUN_FAILED)
    if outcome.audit is not None:
        echo_summary(outcome.audit.result)
        echo_refreshes(outcome.audit)
        for digest in outcome.digests:
            sent_to = "sent to " + ", ".join(digest.recipients)
            where = sent_to if digest.sent else f"written to {digest.eml_path}"
            echo(f"digest: {digest.subject} ({where})")
        for note in outcome.notifications:
            if note.error is not None:
                echo(f"notification FAILED: {note.error}", err=True)
                continue
            where = "sent" if note.sent else f"written to {note.path}" if note.path else "not sent"
            echo(
                f"notification: {note.label}: {note.entries_shown} of {note.entries_total} "
                f"entries, {note.bytes:,} bytes ({where})"
            )
    echo(f"exit {outcome.exit_code}: {outcome.reason}")
    beat.finish(outcome.exit_code, outcome.reason)
    raise typer.Exit(outcome.exit_code)




def _shard_or_exit(
    shard: str | None, shards: int | None, shard_index: int | None
) -> tuple[int, int] | None:
    """``--shard K/N``, or ``--shards N`` with ``--shard-index K`` (``JOB_COMPLETION_INDEX``);
    None for an unsharded run. A bad or contradictory combination is a usage error (exit 2)."""
    if shard and shards is not None:
        raise typer.BadParameter("give --shard K/N or --shards N, not both", param_hint="--shard")
    if shards is not None:
        if shard_index is None:
            raise typer.BadParameter(
                "--shards needs --shard-index K (or JOB_COMPLETION_INDEX)",
                param_hint="--shard-index",
            )
        shard = f"{shard_index}/{shards}"
    if not shard:
        return None
    try:
        return parse_shard(shard)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--shard") from None
