"""``auditor prune``: retention for the snapshot store and its webhook event log."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from auditor.cli._app import app
from auditor.cli._common import load_config_or_exit, parse_as_of, settings_or_exit
from auditor.cli._echo import echo
from auditor.cli.options import AsOfOption, ConfigOption, StoreOption
from auditor.events import prune_events
from auditor.store import prune as prune_store
from auditor.store import select_snapshots
from auditor.store._findings import stored_audit

__all__ = ["prune"]


@app.command()
def prune(
    keep_days: Annotated[
        int, typer.Option("--keep-days", min=0, help="Keep snapshots of the last N days.")
    ],
    store: StoreOption = None,
    as_of: AsOfOption = None,
    config: ConfigOption = None,
    events_keep_days: Annotated[
        int | None,
        typer.Option(
            "--events-keep-days",
            min=0,
            help="Keep the webhook event log's last N days (default: --keep-days).",
        ),
    ] = None,
) -> None:
    """Delete snapshots older than --keep-days (the latest complete one is always kept), and
    the event log's days older than --events-keep-days (the last two days, and the events the
    next audit has not read yet, are always kept).

    Days are counted back from --as-of (default: now).
    """
    root = settings_or_exit(load_config_or_exit(config), store=store).store
    when = parse_as_of(as_of)
    deleted = prune_store(root, keep_days, as_of=when)
    for path in deleted:
        echo(f"deleted {path}")
    echo(f"pruned {len(deleted)} snapshots from {root}")
    audited = select_snapshots(root, audited=True)
    own = stored_audit(root, audited[-1].snapshot_id) if audited else None
    keep_from = datetime.fromisoformat(own["as_of"]) if own else None
    if not isinstance(root, Path):  # the event log is local only: none on an object store
        return
    days = prune_events(
        root,
        keep_days if events_keep_days is None else events_keep_days,
        as_of=when,
        keep_from=keep_from,
    )
    for path in days:
        echo(f"deleted {path}")
    if days:
        echo(f"pruned {len(days)} event log days from {root / 'events'}")
