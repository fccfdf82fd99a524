"""Helpers shared by the CLI commands: option parsing that several commands need."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer

from auditor.codat import parse_codat_datetime
from auditor.config import AuditConfig, ConfigError, load_config

__all__ = ["load_config_or_exit", "parse_as_of"]


def parse_as_of(text: str | None) -> datetime:
    """``--as-of``: an ISO-8601 time (a date means midnight UTC); default now, UTC."""
    if not text:
        return datetime.now(UTC).replace(microsecond=0)
    try:
        value = parse_codat_datetime(text)
    except ValueError:
        raise typer.BadParameter(
            f"not an ISO-8601 time: {text!r} (e.g. 2026-11-23T06:00:00Z)", param_hint="--as-of"
        ) from None
    if not isinstance(value, datetime):
        raise typer.BadParameter(f"not an ISO-8601 time: {text!r}", param_hint="--as-of")
    return value


def load_config_or_exit(path: Path | None) -> AuditConfig:
    """The configuration at ``path`` (defaults without one); a bad file exits with code 2."""
    try:
        return load_config(path)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
