"""``auditor snapshot``: collect the fleet's data statuses into the snapshot store."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

import typer

from auditor.cli._app import app
from auditor.cli._common import api_key_or_exit, load_config_or_exit, settings_or_exit
from auditor.cli._echo import echo
from auditor.cli.options import (
    DEFAULT_LOG_FORMAT,
    DEFAULT_PROGRESS,
    BaseUrlOption,
    ConfigOption,
    LogFormatOption,
    ProgressOption,
    RateLimitOption,
    StoreOption,
)
from auditor.codat import (
    CodatAuthError,
    CodatClient,
    CodatError,
    CodatQuotaExhaustedError,
    RateLimitPolicy,
    RetryPolicy,
)
from auditor.collector import (
    DEFAULT_COMPANY_SETTINGS_EVERY_DAYS,
    ProgressMode,
    StoreRun,
    TransportName,
    collect_to_store,
    collector_transport,
    parse_shard,
)
from auditor.logs import configure_logging
from auditor.store import StoreCorruptionError, StoreDir

__all__ = ["snapshot"]

log = logging.getLogger("auditor.cli")


@app.command()
def snapshot(
    base_url: BaseUrlOption = None,
    store: StoreOption = None,
    snapshot_id: Annotated[
        str | None,
        typer.Option(
            "--snapshot-id",
            help="Snapshot id; an unfinished snapshot with this id is continued. "
            "Default: the start time (20240501T020000Z), or 20240501-3shards when sharded.",
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Continue the latest unfinished snapshot of the store."),
    ] = False,
    shard: Annotated[
        str | None,
        typer.Option("--shard", help="K/N: collect only shard K of N (0-based), e.g. 0/3."),
    ] = None,
    rate_limit: RateLimitOption = None,
    page_size: Annotated[
        int, typer.Option("--page-size", min=1, max=5000, help="Companies per list page.")
    ] = 5000,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, max=1000, help="Worker tasks.")
    ] = 64,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Companies per Parquet batch.")
    ] = 1000,
    company_settings_every_days: Annotated[
        int | None,
        typer.Option(
            "--company-settings-every-days",
            min=0,
            help="Read each company's own sync settings once every N nights, a rolling slice "
            "of the fleet (+1/N request per company per night; the others' overrides are "
            "carried from the previous snapshot). 1: every night; 0: never. Default: "
            "company_settings_every_days of the config's [run] table, else "
            f"{DEFAULT_COMPANY_SETTINGS_EVERY_DAYS}.",
        ),
    ] = None,
    progress: ProgressOption = DEFAULT_PROGRESS,
    transport: Annotated[
        TransportName,
        typer.Option(
            "--transport",
            help="auto (aiohttp if httpx-aiohttp is installed: less CPU), aiohttp or httpx.",
        ),
    ] = "auto",
    log_format: LogFormatOption = DEFAULT_LOG_FORMAT,
    config: ConfigOption = None,
) -> None:
    """Snapshot every company's data status into STORE (resumable, shardable).

    STORE is created if missing. The API key is read from the CODAT_API_KEY environment
    variable and never printed.
    """
    cfg = load_config_or_exit(config)
    settings = settings_or_exit(cfg, store=store, base_url=base_url, rate_limit=rate_limit)
    if company_settings_every_days is None:
        company_settings_every_days = cfg.run.company_settings_every_days
    if company_settings_every_days is None:
        company_settings_every_days = DEFAULT_COMPANY_SETTINGS_EVERY_DAYS
    api_key = api_key_or_exit()
    if resume and snapshot_id:
        raise typer.BadParameter("give --snapshot-id or --resume, not both")
    try:
        shard_k_n = parse_shard(shard) if shard else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--shard") from None
    configure_logging(run_id=snapshot_id or "snapshot", fmt=log_format)
    try:
        result = asyncio.run(
            _run(
                api_key,
                base_url=settings.base_url,
                store=settings.store,
                snapshot_id=snapshot_id,
                resume=resume,
                shard=shard_k_n,
                rate_limit=settings.rate_limit,
                quota_reserve=settings.quota_reserve,
                quota_retry_after_bound=settings.quota_retry_after_bound,
                max_attempts=settings.max_attempts,
                timeout=settings.timeout,
                page_size=page_size,
                concurrency=concurrency,
                batch_size=batch_size,
                company_settings_every_days=company_settings_every_days,
                progress=progress,
                transport=transport,
            )
        )
    except StoreCorruptionError as exc:  # the store is damaged: a failure of the run itself
        echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except CodatQuotaExhaustedError as exc:  # one message for the run, not one per company
        echo(f"error: {_quota_message(exc)}", err=True)
        raise typer.Exit(2) from None
    except CodatAuthError as exc:  # the README's exit 2: authentication failed
        echo(f"error: Codat refused the API key: {exc}", err=True)
        raise typer.Exit(2) from None
    except (CodatError, LookupError, ValueError, OSError, RuntimeError) as exc:
        echo(f"error: {exc}", err=True)  # the command failed: exit 2, as every command
        raise typer.Exit(2) from None
    state = "complete" if result.complete else "shard done; waiting for the other shards"
    echo(f"snapshot {result.snapshot_id} ({state}): {result.path}")
    echo(
        f"  companies collected: {result.companies_collected:,}"
        + (f" (+{result.companies_skipped:,} from before)" if result.companies_skipped else "")
        + f", with errors: {result.companies_with_errors:,}"
        + f", requests: {result.requests:,}, {result.elapsed_seconds:,.1f}s"
    )
    if result.company_settings_read or result.company_settings_carried:
        echo(
            f"  company sync settings: {result.company_settings_read:,} read tonight, "
            f"{result.company_settings_carried:,} overrides carried from the previous snapshot"
        )
    malformed, skipped = result.malformed_fields, result.skipped_records
    if malformed or skipped:
        echo(
            f"  unreadable from Codat: {sum(malformed.values()):,} fields left missing, "
            f"{sum(skipped.values()):,} records skipped (see the manifest's meta)"
        )


def _quota_message(exc: CodatQuotaExhaustedError) -> str:
    """The one line a run stopped by the daily quota prints: why, and when to resume."""
    return (
        f"{exc.message}. The snapshot stopped; the companies written so far are kept: run "
        "`auditor snapshot --resume` once the quota has reset."
    )


async def _run(
    api_key: str,
    *,
    base_url: str,
    store: StoreDir,
    snapshot_id: str | None,
    resume: bool,
    shard: tuple[int, int] | None,
    rate_limit: float | None,
    quota_reserve: float,
    quota_retry_after_bound: float,
    max_attempts: int | None,
    timeout: float,
    page_size: int,
    concurrency: int,
    batch_size: int,
    company_settings_every_days: int,
    progress: ProgressMode,
    transport: TransportName,
) -> StoreRun:
    policy = RateLimitPolicy(
        requests_per_minute=rate_limit,
        quota_reserve=quota_reserve,
        quota_retry_after_bound=quota_retry_after_bound,
    )
    async with CodatClient(
        api_key,
        base_url=base_url,
        rate_limit=policy,
        retry=RetryPolicy(max_attempts=max_attempts) if max_attempts else None,
        timeout=timeout,
        max_connections=concurrency,
        max_in_flight=concurrency,
        transport=collector_transport(transport, max_connections=concurrency),
    ) as client:
        return await collect_to_store(
            client,
            store,
            snapshot_id=snapshot_id,
            resume=resume,
            shard=shard,
            page_size=page_size,
            concurrency=concurrency,
            batch_size=batch_size,
            company_settings_every_days=company_settings_every_days,
            progress=progress,
        )
