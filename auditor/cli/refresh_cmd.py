"""``auditor refresh``: queue Codat refreshes for what the last audit flagged."""

from __future__ import annotations

import asyncio
from typing import Annotated

import pandas as pd
import typer

from auditor.cli._app import app
from auditor.cli._common import (
    api_key_or_exit,
    load_config_or_exit,
    parse_as_of,
    settings_or_exit,
)
from auditor.cli._echo import echo, field
from auditor.cli.options import (
    DEFAULT_LOG_FORMAT,
    AsOfOption,
    BaseUrlOption,
    ConfigOption,
    LogFormatOption,
    RateLimitOption,
    SnapshotOption,
    StoreOption,
)
from auditor.codat import CodatClient, CodatError, RateLimitPolicy
from auditor.logs import configure_logging
from auditor.remediation import DEFAULT_REFRESH_RULES, apply_refreshes, plan_refreshes
from auditor.store import (
    SnapshotNotFoundError,
    StoreError,
    load_findings,
    load_snapshot,
    write_refreshes,
)

__all__ = ["refresh"]


@app.command()
def refresh(
    store: StoreOption = None,
    base_url: BaseUrlOption = None,
    snapshot: SnapshotOption = "latest",
    rules: Annotated[
        list[str] | None,
        typer.Option("--rule", help="Rule whose findings to refresh (repeatable)."),
    ] = None,
    apply: Annotated[
        bool, typer.Option("--apply", help="Send the requests (default: print the plan only).")
    ] = False,
    max_requests: Annotated[
        int, typer.Option("--max-requests", min=1, help="At most this many requests per run.")
    ] = 1000,
    all_fraction: Annotated[
        float,
        typer.Option(
            "--all-fraction",
            min=0.0,
            max=1.0,
            help="Use one data/all request (only when it covers every flagged type) when "
            "more than this share of the types it would queue are flagged.",
        ),
    ] = 0.5,
    rate_limit: RateLimitOption = None,
    as_of: AsOfOption = None,
    config: ConfigOption = None,
    log_format: LogFormatOption = DEFAULT_LOG_FORMAT,
) -> None:
    """Queue Codat refreshes for what the last audit flagged (dry run unless --apply).

    Plans one request per company x data type x connection for the findings of --rule
    (default: stale, failed-after-success), or one data/all request when the types it queues
    (fetchOnFirstLink, Linked connections) cover every flagged type and most of them are
    flagged. Only Linked connections are refreshed; types in AuthError need a relink, and
    RateLimitError is left to Codat's own retry.
    What was queued is written to the store so the next audit can tell whether it worked;
    --as-of is the time recorded as 'requested'.
    """
    configure_logging(run_id="refresh", fmt=log_format)
    settings = settings_or_exit(
        load_config_or_exit(config), store=store, base_url=base_url, rate_limit=rate_limit
    )
    store_dir = settings.store
    now = parse_as_of(as_of)
    selected = tuple(rules) if rules else DEFAULT_REFRESH_RULES
    try:
        snap = load_snapshot(store_dir, snapshot)
        findings = load_findings(store_dir, snap.snapshot_id)
    except (SnapshotNotFoundError, StoreError) as exc:
        echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if findings is None:
        echo(f"error: snapshot {snap.snapshot_id} has not been audited yet", err=True)
        raise typer.Exit(2)
    plan = plan_refreshes(
        findings, snap, rules=selected, all_fraction=all_fraction, max_requests=max_requests
    )
    per_action = plan["action"].value_counts()
    echo(
        f"plan for {snap.snapshot_id} ({', '.join(selected)}): {len(plan)} requests "
        f"({int(per_action.get('queue', 0))} data/queue, {int(per_action.get('all', 0))} "
        f"data/all) for {plan['company_id'].nunique()} companies"
    )
    if not apply:
        for row in plan.head(20).itertuples(index=False):
            target = "data/all" if row.action == "all" else f"data/queue/{field(row.data_type)}"
            echo(f"  POST /companies/{field(row.company_id)}/{target}  [{field(row.rules)}]")
        if len(plan) > 20:
            echo(f"  ... and {len(plan) - 20} more")
        echo("dry run: nothing sent (add --apply to send)")
        return
    api_key = api_key_or_exit()

    async def send() -> pd.DataFrame:
        async with CodatClient(
            api_key,
            base_url=settings.base_url,
            rate_limit=RateLimitPolicy(
                requests_per_minute=settings.rate_limit,
                quota_reserve=settings.quota_reserve,
                quota_retry_after_bound=settings.quota_retry_after_bound,
            ),
        ) as client:
            return await apply_refreshes(client, plan, now=now)

    try:
        outcomes = asyncio.run(send())
    except CodatError as exc:
        echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    path = write_refreshes(store_dir, snap.snapshot_id, outcomes)
    counts = outcomes["outcome"].value_counts()
    not_sent = int(counts.get("not-sent", 0))
    echo(
        f"sent {len(outcomes) - not_sent} requests: {int(counts.get('queued', 0))} queued, "
        f"{int(counts.get('already-running', 0))} already running, "
        f"{int(counts.get('failed', 0))} failed; recorded in {path}"
    )
    if not_sent:  # one message for the quota, not one per refresh
        reason = str(outcomes.loc[outcomes["outcome"] == "not-sent", "error"].iloc[0])
        echo(f"error: {not_sent} refreshes were not sent: {reason}", err=True)
        raise typer.Exit(2)
    if int(counts.get("failed", 0)):
        raise typer.Exit(1)
