"""The one typer application every ``auditor`` sub-command registers on."""

from __future__ import annotations

import typer

__all__ = ["app"]

app = typer.Typer(
    name="auditor",
    help="Audit the data freshness of a fleet of companies connected through Codat.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals could hold the API key
)
