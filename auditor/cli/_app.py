"""The one typer application every ``auditor`` sub-command registers on."""

from __future__ import annotations

from typing import Annotated

import typer

from auditor.logs import LogLevel, set_cli_defaults

__all__ = ["app"]

app = typer.Typer(
    name="auditor",
    help="Audit the data freshness of a fleet of companies connected through Codat.",
    no_args_is_help=True,
    add_completion=False,
    # Plain (click-style) help: flags show as flags (not ``--dry-run <bool>``) and text in
    # square brackets, such as ``[default: ...]``, is printed as written.
    rich_markup_mode=None,
    pretty_exceptions_show_locals=False,  # locals could hold the API key
)


def _print_version(value: bool) -> None:
    if value:
        from auditor import __version__

        typer.echo(f"auditor {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", "-q", envvar="AUDITOR_QUIET",
            help="Print errors only (log warnings and errors); the exit code still tells.",
        ),
    ] = False,
    log_level: Annotated[
        LogLevel | None,
        typer.Option(
            "--log-level", envvar="AUDITOR_LOG_LEVEL", case_sensitive=False,
            help="Log level of every command: debug, info (default), warning or error.",
        ),
    ] = None,
) -> None:
    """Audit the data freshness of a fleet of companies connected through Codat.

    Global options go before the command (auditor --quiet run ...). Output is plain text;
    the progress bar follows NO_COLOR (https://no-color.org) and is off when stderr is not a
    terminal.
    """
    set_cli_defaults(level=log_level, quiet=quiet)
