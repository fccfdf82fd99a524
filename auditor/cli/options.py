"""The options several commands share, declared once: name, help, environment variable.

Each alias is an ``Annotated`` type; a command writes ``store: StoreOption = None``. Options
that the ``[run]`` table of the config file can also set (``--store``, ``--out``,
``--base-url``, ``--snoozes``, ``--rate-limit``) default to None here and are resolved by
:func:`auditor.config.run_settings`: command line > environment variable > ``[run]`` >
default. Defaults and variable names live in :mod:`auditor.config` (``RUN_DEFAULTS``,
``ENV_VARS``), so the help text, the environment and the config layer cannot disagree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Final

import typer

from auditor.collector import ProgressMode
from auditor.config import DEFAULT_BASE_URL, DEFAULT_RATE_LIMIT, DEFAULT_STORE, ENV_VARS
from auditor.logs import LogFormat
from auditor.store import SNAPSHOT_SELECTORS, is_selector

__all__ = [
    "DEFAULT_LOG_FORMAT",
    "DEFAULT_PROGRESS",
    "AsOfOption",
    "BaseUrlOption",
    "ConfigOption",
    "LogFormatOption",
    "NoNotifyOption",
    "OutOption",
    "ProgressOption",
    "RateLimitOption",
    "SnapshotOption",
    "SnoozesOption",
    "StoreOption",
]

#: ``--log-format`` when neither the option nor ``AUDITOR_LOG_FORMAT`` says.
DEFAULT_LOG_FORMAT: Final[LogFormat] = "human"
#: ``--progress`` when neither the option nor ``AUDITOR_PROGRESS`` says.
DEFAULT_PROGRESS: Final[ProgressMode] = "auto"


def _check_snapshot(value: str) -> str:
    if not is_selector(value):
        raise typer.BadParameter(f"{value!r}: use {SNAPSHOT_SELECTORS}")
    return value


ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        envvar=ENV_VARS["config"],
        help="TOML configuration file (see config.example.toml); its [run] table gives "
        "defaults for --store, --out, --base-url, --snoozes and --rate-limit.",
    ),
]

StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        envvar=ENV_VARS["store"],
        help="Snapshot store: a directory, or an object store URL such as s3://bucket/prefix "
        f"(AWS_* variables: docs/store.md) [default: run.store, else ./{DEFAULT_STORE}].",
    ),
]

#: ``--out``: where the reports go; the default differs by command (``default_out`` of
#: :func:`auditor.config.run_settings`), so the command's docstring names it.
OutOption = Annotated[
    Path | None,
    typer.Option(
        "--out",
        envvar=ENV_VARS["out"],
        help="Where report.html and the CSVs go [default: run.out, else as described above].",
    ),
]

BaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--base-url",
        envvar=ENV_VARS["base_url"],
        help=f"Codat API base URL, or a sandbox's [default: run.base_url, else "
        f"{DEFAULT_BASE_URL}].",
    ),
]

RateLimitOption = Annotated[
    float | None,
    typer.Option(
        "--rate-limit",
        min=0,
        envvar=ENV_VARS["rate_limit"],
        help=f"Requests per minute to Codat, 0: no limit [default: run.rate_limit, else "
        f"{DEFAULT_RATE_LIMIT:,.0f}].",
    ),
]

SnoozesOption = Annotated[
    Path | None,
    typer.Option(
        "--snoozes",
        envvar=ENV_VARS["snoozes"],
        help="Snooze file (TOML) [default: run.snoozes, else none].",
    ),
]

LogFormatOption = Annotated[
    LogFormat,
    typer.Option(
        "--log-format",
        envvar=ENV_VARS["log_format"],
        help="Log lines on stderr: human, or json (JSON lines for log collectors).",
    ),
]

ProgressOption = Annotated[
    ProgressMode,
    typer.Option(
        "--progress",
        envvar=ENV_VARS["progress"],
        help="auto: a bar on a terminal, else log lines; bar; log; off.",
    ),
]

SnapshotOption = Annotated[
    str,
    typer.Option(
        "--snapshot",
        callback=_check_snapshot,
        help="The night to read: latest, previous, YYYY-MM-DD (that day's latest) or a "
        "snapshot id.",
    ),
]

AsOfOption = Annotated[
    str | None,
    typer.Option(
        "--as-of",
        help="The command's 'now', ISO-8601; a date means midnight UTC [default: now, UTC].",
    ),
]

NoNotifyOption = Annotated[
    bool,
    typer.Option(
        "--no-notify",
        help="Send no Slack / Teams / webhook notification (the config's [notify] routes); "
        "--dry-run writes them as OUT/notify-*.json instead.",
    ),
]
