"""The report's and the digest's view of the webhook events read for the audit: connection
events per company since the previous audit ("disconnected at 14:02, reconnected at 16:40"),
reads with issues, and the client's rate-limit events. Nothing here produces markup."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import pandas as pd

from auditor.events import READ_EVENTS, EventWindow, connection_timelines, rate_limit_reached
from auditor.safe_text import DISPLAY_LIMITS, clip

__all__ = ["ConnectionEvents", "EventsView", "build_events_view", "rate_limit_sentence"]


@dataclass(frozen=True)
class ConnectionEvents:
    """One connection's events since the previous audit, oldest first: (what, when)."""

    company_id: str
    company_name: str | None
    connection_id: str | None
    platform: str | None
    items: tuple[tuple[str, datetime], ...]


@dataclass(frozen=True)
class EventsView:
    """What the events section shows."""

    #: ``on``, ``missing`` (expected but no log) or ``unreadable`` (said as a notice too).
    state: str
    since: datetime | None
    until: datetime | None
    connections: tuple[ConnectionEvents, ...]
    connections_total: int
    companies_total: int
    reads: int
    reads_with_issues: int
    #: ``client.rateLimit.*`` events: (reached / reset, when, quota resets at).
    rate_limits: tuple[tuple[str, datetime, datetime | None], ...]
    detail: str = ""


def _when(value: object) -> datetime | None:
    if value is None or value is pd.NaT or pd.isna(value):  # type: ignore[call-overload]
        return None
    return pd.Timestamp(value).to_pydatetime()  # type: ignore[arg-type]


#: Control characters, line/paragraph separators, bidirectional overrides: shown as a space.
_UNSAFE: Final = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\u200e\u200f]"
)


def _text(value: object, limit: int) -> str | None:
    """Text from a webhook, one line and bounded (markup is escaped by the templates)."""
    if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)):
        return None
    return clip(_UNSAFE.sub(" ", str(value)), limit)


def build_events_view(window: EventWindow | None, *, limit: int = 200) -> EventsView | None:
    """The events section (None when the event log is not used: no section at all).
    ``limit`` bounds the connections listed (those with the most recent events first)."""
    if window is None or window.state == "off":
        return None
    events = window.events
    timelines = connection_timelines(events)
    groups: list[ConnectionEvents] = []
    if len(timelines):
        keys = timelines["company_id"].astype("string").fillna("") + "\x00" + timelines[
            "connection_id"
        ].astype("string").fillna("")
        latest = timelines.groupby(keys, sort=False)["at"].max().sort_values(ascending=False)
        for key in latest.index[:limit]:
            rows = timelines.loc[(keys == key).to_numpy()]
            first = rows.iloc[-1]
            groups.append(
                ConnectionEvents(
                    company_id=_text(first["company_id"], DISPLAY_LIMITS["id"]) or "",
                    company_name=_text(first["company_name"], DISPLAY_LIMITS["company_name"]),
                    connection_id=_text(first["connection_id"], DISPLAY_LIMITS["id"]),
                    platform=_text(first["platform"], DISPLAY_LIMITS["platform"]),
                    items=tuple(
                        (str(w), at)
                        for w, t in zip(rows["what"], rows["at"], strict=True)
                        if (at := _when(t)) is not None
                    ),
                )
            )
        groups.sort(key=lambda g: ((g.company_name or g.company_id).lower(), g.connection_id or ""))
        total = len(latest)
        companies = int(timelines["company_id"].nunique())
    else:
        total = companies = 0
    reads = events.loc[events["event_type"].astype("string").isin(list(READ_EVENTS)).fillna(False)]
    issues = int((reads["issue_count"].fillna(0) > 0).sum()) if len(reads) else 0
    limits = window.rate_limits.sort_values("at", kind="stable")
    rate_limits = tuple(
        (
            "reached" if str(kind).endswith("reached") else "reset",
            at,
            _when(expiry),
        )
        for kind, t, expiry in zip(
            limits["event_type"], limits["at"], limits["expiry"], strict=True
        )
        if (at := _when(t)) is not None
    )
    return EventsView(
        state=window.state,
        since=window.since,
        until=window.until,
        connections=tuple(groups),
        connections_total=total,
        companies_total=companies,
        reads=len(reads),
        reads_with_issues=issues,
        rate_limits=rate_limits,
        detail=window.detail,
    )


def _utc(ts: pd.Timestamp) -> str:
    return ts.tz_convert("UTC").strftime("%Y-%m-%d %H:%M UTC")


def rate_limit_sentence(window: EventWindow | None) -> str | None:
    """``Codat reported the rate limit reached at … (reset at …).`` or None."""
    if window is None or not window.enabled:
        return None
    reached = rate_limit_reached(window.rate_limits)
    if reached is None:
        return None
    at, reset = reached
    until = f" (reset at {_utc(reset)})" if reset is not None else ""
    return f"Codat reported the rate limit reached at {_utc(at)}{until}."
