"""The one Jinja environment of the reports, and its formatting filters.

Templates hold all markup; these filters only turn values into plain text (autoescape is on, so
whatever they return is escaped). Times are shown in the display timezone; the templates put the
UTC time in a ``title`` attribute so that it shows on hover.
"""

from __future__ import annotations

import base64
import hashlib
import math
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2
import pandas as pd

import auditor

__all__ = [
    "csp_sha256",
    "format_count",
    "format_hours",
    "format_local",
    "format_percent",
    "format_utc",
    "get_environment",
    "iso_utc",
    "resolve_tz",
    "templates_dir",
]


def templates_dir() -> Path:
    """Where the templates are: inside the installed package, else the checkout's ``templates/``."""
    packaged = Path(auditor.__file__).parent / "templates"
    if packaged.is_dir():
        return packaged
    return Path(auditor.__file__).resolve().parent.parent / "templates"


def resolve_tz(name: str) -> ZoneInfo:
    """The IANA timezone ``name``; a clear ``ValueError`` when it does not exist."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown display timezone {name!r} (expected an IANA name)") from exc


def _as_utc(value: object) -> datetime | None:
    """``value`` as an aware UTC datetime, or None for null-like values."""
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def format_local(
    value: object,
    tz: str | ZoneInfo = "UTC",
    fmt: str = "%Y-%m-%d %H:%M",
    zone_name: bool = True,
) -> str:
    """``value`` in the display timezone, e.g. ``2026-11-23 02:00 CET`` (``—`` for nulls)."""
    dt = _as_utc(value)
    if dt is None:
        return "—"
    zone = tz if isinstance(tz, ZoneInfo) else _zone(tz)
    local = dt.astimezone(zone)
    text = local.strftime(fmt)
    return f"{text} {local.tzname() or ''}".rstrip() if zone_name else text


@cache
def _zone(name: str) -> ZoneInfo:
    return resolve_tz(name)


def format_utc(value: object) -> str:
    """``value`` as ``2026-11-23 01:00 UTC`` (for the hover title)."""
    dt = _as_utc(value)
    return "" if dt is None else dt.strftime("%Y-%m-%d %H:%M UTC")


def iso_utc(value: object) -> str:
    """``value`` as ISO 8601 UTC (``2026-11-23T01:00:00Z``), for attributes and sort keys."""
    dt = _as_utc(value)
    return "" if dt is None else dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def format_hours(value: object) -> str:
    """A duration in hours for people: ``45 min``, ``13.5 h``, ``3.2 d``."""
    if value is None or value is pd.NA:
        return "—"
    try:
        hours = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "—"
    if math.isnan(hours):
        return "—"
    if math.isinf(hours):
        return "∞"
    sign = "−" if hours < 0 else ""
    hours = abs(hours)
    if hours < 1:
        return f"{sign}{hours * 60:.0f} min"
    if hours < 48:
        return f"{sign}{hours:.1f} h"
    return f"{sign}{hours / 24:.1f} d"


def format_count(value: object) -> str:
    """An integer with thousands separators (``12,345``); ``—`` for nulls."""
    if value is None or value is pd.NA:
        return "—"
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(number):
        return "—"
    if number.is_integer():
        return f"{int(number):,}"
    return f"{number:,.1f}"


def format_percent(share: object) -> str:
    """A share in [0, 1] as a percentage: ``95%`` when whole, else one decimal cut down
    (``99.96`` shows as ``99.9%``, never a ``100%`` that is not), ``—`` when unknown."""
    if share is None or share is pd.NA:
        return "—"
    try:
        value = float(share)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "—"
    if math.isnan(value):
        return "—"
    pct = value * 100
    if abs(pct - round(pct)) < 1e-9:
        return f"{round(pct)}%"
    return f"{math.floor(pct * 10 + 1e-9) / 10:.1f}%"


def _plural(count: int, singular: str, plural: str | None = None) -> str:
    return singular if count == 1 else (plural or singular + "s")


def csp_sha256(text: object) -> str:
    """The CSP source expression (``sha256-…``) that allows exactly this inline script/style."""
    digest = hashlib.sha256(str(text).encode("utf-8")).digest()
    return "sha256-" + base64.b64encode(digest).decode("ascii")


@cache
def get_environment() -> jinja2.Environment:
    """The reports' Jinja environment: built once, autoescaped, strict about undefined names."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html", "htm", "xml", "svg"),
            disabled_extensions=("txt",),
            default_for_string=True,
            default=True,
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        local=format_local,
        utc=format_utc,
        iso=iso_utc,
        hours=format_hours,
        count=format_count,
        percent=format_percent,
        plural=_plural,
        csp_sha256=csp_sha256,
    )
    return env
