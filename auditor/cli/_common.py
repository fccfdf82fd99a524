"""Helpers shared by the CLI commands: option parsing that several commands need."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import typer

from auditor.cli._echo import echo
from auditor.codat import parse_codat_datetime
from auditor.config import AuditConfig, ConfigError, RunSettings, load_config, run_settings
from auditor.logs import register_secret

__all__ = [
    "API_KEY_ENV",
    "api_key_or_exit",
    "load_config_or_exit",
    "parse_as_of",
    "settings_or_exit",
]

#: The environment variable holding the Codat API key.
API_KEY_ENV = "CODAT_API_KEY"


def api_key_or_exit() -> str:
    """The API key from ``CODAT_API_KEY``, registered as a secret (redacted from every log
    line); exits with code 2 when it is not set. The key itself is never printed."""
    api_key = os.environ.get(API_KEY_ENV, "")
    if not api_key:
        echo(f"error: set {API_KEY_ENV} to your Codat API key", err=True)
        raise typer.Exit(2)
    register_secret(api_key)
    return api_key


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
        echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def settings_or_exit(
    config: AuditConfig | None,
    *,
    store: str | Path | None = None,
    out: Path | None = None,
    base_url: str | None = None,
    snoozes: Path | None = None,
    rate_limit: float | None = None,
    default_out: str | None = None,
) -> RunSettings:
    """:func:`auditor.config.run_settings` for a command (CLI > environment > ``[run]`` >
    default); a bad environment variable exits with code 2."""
    try:
        return run_settings(
            config,
            store=store,
            out=out,
            base_url=base_url,
            snoozes=snoozes,
            rate_limit=rate_limit,
            default_out=default_out,
        )
    except ConfigError as exc:
        echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
