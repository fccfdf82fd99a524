"""``auditor prune``: retention for the snapshot store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from auditor.cli._app import app
from auditor.cli._common import parse_as_of
from auditor.store import prune as prune_store

__all__ = ["prune"]


@app.command()
def prune(
    keep_days: Annotated[
        int, typer.Option("--keep-days", min=0, help="Keep snapshots of the last N days.")
    ],
    store: Annotated[
        Path, typer.Option("--store", envvar="AUDITOR_STORE", help="Snapshot store directory.")
    ] = Path("store"),
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Count days back from here (default: now).")
    ] = None,
) -> None:
    """Delete snapshots older than --keep-days (the latest complete one is always kept)."""
    deleted = prune_store(store, keep_days, as_of=parse_as_of(as_of))
    for path in deleted:
        typer.echo(f"deleted {path}")
    typer.echo(f"pruned {len(deleted)} snapshots from {store}")
