"""``auditor prune``: retention for the snapshot store."""

from __future__ import annotations

from typing import Annotated

import typer

from auditor.cli._app import app
from auditor.cli._common import load_config_or_exit, parse_as_of, settings_or_exit
from auditor.cli._echo import echo
from auditor.cli.options import AsOfOption, ConfigOption, StoreOption
from auditor.store import prune as prune_store

__all__ = ["prune"]


@app.command()
def prune(
    keep_days: Annotated[
        int, typer.Option("--keep-days", min=0, help="Keep snapshots of the last N days.")
    ],
    store: StoreOption = None,
    as_of: AsOfOption = None,
    config: ConfigOption = None,
) -> None:
    """Delete snapshots older than --keep-days (the latest complete one is always kept).

    Days are counted back from --as-of (default: now).
    """
    root = settings_or_exit(load_config_or_exit(config), store=store).store
    deleted = prune_store(root, keep_days, as_of=parse_as_of(as_of))
    for path in deleted:
        echo(f"deleted {path}")
    echo(f"pruned {len(deleted)} snapshots from {root}")
