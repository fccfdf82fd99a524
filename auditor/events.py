"""What the audit reads of the webhook event log: the events received since the previous audit.

The listener (``auditor listen``, :mod:`auditor.listen`) keeps every Codat webhook in
``STORE/events``. Before an audit, :func:`read_event_window` reads the events received in
``[since, until)`` — from the previous audit's ``as_of`` (or, without one, the previous
snapshot's time) to tonight's ``as_of`` — and turns them into two frames:

``events``       one row per event and data type about a company (``read.completed``,
                 ``read.completed.initial``, ``connection.*``, …), :data:`EVENTS_SCHEMA`; it is
                 partitioned with the snapshot (``Snapshot.events``), so a rule sees the events
                 of exactly the companies of its partition (``RuleContext.events``)
``rate_limits``  the client-level ``client.rateLimit.reached`` / ``reset`` events
                 (:data:`RATE_LIMIT_SCHEMA`): they explain companies not collected for quota

Whether the log could be read is :attr:`EventWindow.state`: ``on``; ``off`` (no
``STORE/events``: the listener is not used; nothing is said); ``missing`` (no log although
``[events] expected = true``: the report says "no event log"); ``unreadable`` (a Parquet part
that does not read, a damaged line in a segment: corruption is an error, the audit is
incomplete and says so, never "all clear"). A torn last line (a write cut short by a kill,
never acknowledged) is not damage: every reader skips it.

Everything here is pure but the one read; times are UTC.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]

from auditor.listen.eventlog import (
    EVENTS_DIR,
    EventLogError,
    LogScan,
    _items,
    _partitions,
    load_raw_events,
)
from auditor.snapshot import ColumnKind, conform, empty_frame
from auditor.vectors import isin, text

__all__ = [
    "CONNECTION_EVENTS",
    "EVENTS_SCHEMA",
    "RATE_LIMIT_SCHEMA",
    "READ_EVENTS",
    "EventState",
    "EventWindow",
    "companies_without_reads",
    "connection_timelines",
    "event_frames",
    "prune_events",
    "rate_limit_reached",
    "read_event_window",
    "types_without_reads",
]

log = logging.getLogger("auditor.events")

#: The events that report a data read (per data type: status, recordsModified, issues).
READ_EVENTS: Final[tuple[str, ...]] = ("read.completed", "read.completed.initial")
#: The connection events the report and the ledger show, and what each is called there.
CONNECTION_EVENTS: Final[dict[str, str]] = {
    "connection.created": "created",
    "connection.connected": "connected",
    "connection.disconnected": "disconnected",
    "connection.reconnected": "reconnected",
    "connection.failed": "failed to link",
    "connection.deleted": "deleted",
}
RATE_LIMIT_EVENTS: Final[tuple[str, ...]] = ("client.rateLimit.reached", "client.rateLimit.reset")

#: One row per event and data type about a company. ``at``: Codat's ``generatedDate``, else
#: when the listener received the event. ``issue_*``: the first of the data type's
#: ``issues`` (``issue_count`` of them), as Codat sent them (the rule cleans what it shows).
EVENTS_SCHEMA: Final[dict[str, ColumnKind]] = {
    "event_id": "str",
    "event_type": "category",
    "at": "timestamp",
    "received_at": "timestamp",
    "company_id": "str",
    "company_name": "str",
    "connection_id": "str",
    "platform": "str",
    "data_type": "category",
    "status": "category",
    "records_modified": "bool",
    "issue_count": "int",
    "issue_type": "str",
    "issue_message": "str",
    "issue_logs": "str",
}

#: ``client.rateLimit.*`` events (client-level: no company).
RATE_LIMIT_SCHEMA: Final[dict[str, ColumnKind]] = {
    "event_id": "str",
    "event_type": "category",
    "at": "timestamp",
    "daily_quota": "int",
    "quota_remaining": "int",
    "expiry": "timestamp",
}

EventState = Literal["on", "off", "missing", "unreadable"]


def _empty_events() -> pd.DataFrame:
    return empty_frame(EVENTS_SCHEMA)


def _empty_rate_limits() -> pd.DataFrame:
    return empty_frame(RATE_LIMIT_SCHEMA)


@dataclass(frozen=True)
class EventWindow:
    """The events received in ``[since, until)`` and whether the log could be read."""

    state: EventState
    since: datetime | None = None
    until: datetime | None = None
    events: pd.DataFrame = field(default_factory=_empty_events)
    rate_limits: pd.DataFrame = field(default_factory=_empty_rate_limits)
    #: Why the log is ``unreadable`` (or ``missing``), one sentence; empty when ``on``.
    detail: str = ""
    #: Torn last lines skipped (writes a kill cut short; never acknowledged, so redelivered).
    torn_tails: int = 0

    @property
    def enabled(self) -> bool:
        return self.state == "on"


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _time(value: object) -> pd.Timestamp | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, OverflowError):
        return None
    if pd.isna(ts):
        return None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _first_issue(issues: object) -> tuple[int | None, str | None, str | None, str | None]:
    if not isinstance(issues, list):
        return None, None, None, None
    first = next((i for i in issues if isinstance(i, dict)), None)
    if first is None:
        return len(issues), None, None, None
    links = first.get("links")
    logs = links.get("logs") if isinstance(links, dict) else None
    return len(issues), _text(first.get("type")), _text(first.get("message")), _text(logs)


def event_frames(raw: pa.Table) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(company events, rate-limit events) from the listener's raw rows (one per event)."""
    rows: list[dict[str, Any]] = []
    limits: list[dict[str, Any]] = []
    names = ("event_id", "event_type", "received_at", "generated_at", "company_id", "raw")
    for event_id, event_type, received, generated, company, body in zip(
        *(raw.column(n).to_pylist() for n in names), strict=True
    ):
        try:
            event = json.loads(body)
        except ValueError:
            event = {}
        payload = event.get("payload") if isinstance(event, dict) else None
        payload = payload if isinstance(payload, dict) else {}
        at = generated or received
        kind = event_type or ""
        if kind in RATE_LIMIT_EVENTS:
            limits.append(
                {
                    "event_id": event_id,
                    "event_type": kind,
                    "at": at,
                    "daily_quota": _int(payload.get("dailyQuota")),
                    "quota_remaining": _int(payload.get("quotaRemaining")),
                    "expiry": _time(payload.get("expiryDate")),
                }
            )
            continue
        if company is None:
            continue
        ref = payload.get("referenceCompany")
        connection = payload.get("connection")
        connection = connection if isinstance(connection, dict) else {}
        for item in _items(kind, payload):
            issues = item["issues"]
            count, issue_type, message, logs = _first_issue(issues)
            data_types = payload.get("dataTypes")
            modified = None
            if isinstance(data_types, list):
                match = next(
                    (d for d in data_types if isinstance(d, dict)
                     and d.get("dataType") == item["data_type"]),
                    None,
                )
                value = match.get("recordsModified") if match else None
                modified = value if isinstance(value, bool) else None
            rows.append(
                {
                    "event_id": event_id,
                    "event_type": kind or None,
                    "at": at,
                    "received_at": received,
                    "company_id": company,
                    "company_name": _text(ref.get("name")) if isinstance(ref, dict) else None,
                    "connection_id": _text(item["connection_id"]),
                    "platform": _text(connection.get("platformName")),
                    "data_type": _text(item["data_type"]),
                    "status": _text(item["status"]),
                    "records_modified": modified,
                    "issue_count": count,
                    "issue_type": issue_type,
                    "issue_message": message,
                    "issue_logs": logs,
                }
            )
    events = pd.DataFrame(rows, columns=list(EVENTS_SCHEMA))
    rate_limits = pd.DataFrame(limits, columns=list(RATE_LIMIT_SCHEMA))
    return conform(events, EVENTS_SCHEMA), conform(rate_limits, RATE_LIMIT_SCHEMA)


def read_event_window(
    store: Path | str,
    *,
    since: datetime | None,
    until: datetime | None,
    expected: bool = False,
) -> EventWindow:
    """The events the listener stored in ``STORE/events``, received in ``[since, until)``.

    Never raises for the log's content: a log that cannot be read is ``state="unreadable"``
    with the reason in ``detail`` (the pipeline makes it a fleet-level ``not-collected``
    finding: the audit is incomplete)."""
    root = Path(store) / EVENTS_DIR
    if not root.is_dir():
        if expected:
            return EventWindow(
                "missing", since, until,
                detail=f"no event log: {root} does not exist (is `auditor listen` running "
                "and writing into this store?)",
            )  # fmt: skip
        return EventWindow("off", since, until)
    scan = LogScan()
    try:
        raw = load_raw_events(store, since=since, until=until, scan=scan)
        events, rate_limits = event_frames(raw)
    except (OSError, ValueError, EventLogError, pa.ArrowException) as exc:
        detail = f"the webhook event log {root} could not be read ({type(exc).__name__}: {exc})"
        log.error("%s", detail)
        return EventWindow("unreadable", since, until, detail=detail[:500])
    if scan.damaged_lines:
        detail = (
            f"the webhook event log {root} holds {scan.damaged_lines} damaged "
            f"line{'' if scan.damaged_lines == 1 else 's'} (CRC or JSON not matching): "
            "it is corrupt"
        )
        log.error("%s", detail)
        return EventWindow("unreadable", since, until, detail=detail)
    return EventWindow(
        "on", since, until, events=events, rate_limits=rate_limits, torn_tails=scan.torn_tails
    )


def connection_timelines(events: pd.DataFrame | None) -> pd.DataFrame:
    """The connection events, one row each, ordered by company, connection and time, with
    ``what`` (``disconnected``, ``reconnected``, …)."""
    columns = ["company_id", "company_name", "connection_id", "platform", "event_type", "what",
               "at", "status"]  # fmt: skip
    if events is None or events.empty:
        return pd.DataFrame({c: [] for c in columns})
    kind = events["event_type"].astype("string")
    rows = events.loc[kind.isin(list(CONNECTION_EVENTS)).fillna(False).to_numpy(bool)]
    if rows.empty:
        return pd.DataFrame({c: [] for c in columns})
    rows = rows.drop_duplicates("event_id").sort_values(
        ["company_id", "connection_id", "at", "event_id"], kind="stable", na_position="last"
    )
    out = rows.assign(what=rows["event_type"].astype("string").map(CONNECTION_EVENTS))
    return out[columns].reset_index(drop=True)


def rate_limit_reached(
    rate_limits: pd.DataFrame,
) -> tuple[pd.Timestamp, pd.Timestamp | None] | None:
    """(when Codat last reported the rate limit reached, when it resets) or None."""
    if rate_limits.empty:
        return None
    reached = rate_limits.loc[
        (rate_limits["event_type"].astype("string") == "client.rateLimit.reached")
        .fillna(False)
        .to_numpy(bool)
    ].sort_values("at", kind="stable")
    if reached.empty:
        return None
    last = reached.iloc[-1]
    expiry = last["expiry"]
    return pd.Timestamp(last["at"]), (None if pd.isna(expiry) else pd.Timestamp(expiry))


def companies_without_reads(events: pd.DataFrame | None, company_ids: pd.Index) -> np.ndarray:
    """The companies of ``company_ids`` with no read event in ``events`` (all when None)."""
    ids = pd.Series(company_ids, dtype="string")
    if events is None:
        return ids.to_numpy(dtype=object)
    reads = events.loc[isin(events["event_type"], READ_EVENTS), "company_id"].dropna()
    return ids[~isin(ids, reads.unique())].to_numpy(dtype=object)


def types_without_reads(
    events: pd.DataFrame, previous: pd.DataFrame | None, rule: str
) -> list[tuple[str, str, str]]:
    """``(rule, company_id, data_type)`` of the incidents of ``rule`` open in ``previous``
    whose company x data type had no read event in ``events``: not re-checked tonight, so
    carried over, never "resolved" (a read of the company's other types says nothing of it)."""
    if previous is None or previous.empty:
        return []
    prev = previous.loc[isin(previous["rule"], [rule])
                        & ~isin(previous["state"], ["resolved"])]  # fmt: skip
    if prev.empty:
        return []
    reads = events.loc[isin(events["event_type"], READ_EVENTS)]
    read_keys = text(reads["company_id"], "") + "|" + text(reads["data_type"], "")
    keys = text(prev["company_id"], "") + "|" + text(prev["data_type"], "")
    gone = prev.loc[~isin(keys, read_keys.unique())]
    return [
        (rule, str(c), str(t))
        for c, t in zip(text(gone["company_id"], ""), text(gone["data_type"], ""), strict=True)
    ]


def prune_events(
    store: Path | str,
    keep_days: int,
    *,
    as_of: datetime,
    keep_from: datetime | None = None,
) -> list[Path]:
    """Delete the event log's day partitions older than ``keep_days`` days before ``as_of``.

    Never deleted: the last two days (today's open segment, and yesterday's, which the
    listener may still be compacting), and any day on or after ``keep_from`` minus a day
    (the start of the next audit's window: the events it has not read yet). A partition is
    renamed out of the ``date=`` namespace first (atomic: readers never see half of a day),
    then removed. Returns the partitions deleted. Safe while a listener runs: it writes and
    compacts only the recent days kept here."""
    if keep_days < 0:
        raise ValueError("keep_days must be >= 0")
    today = as_of.astimezone(UTC).date()
    cutoff = min(today - timedelta(days=keep_days), today - timedelta(days=1))
    if keep_from is not None:
        cutoff = min(cutoff, keep_from.astimezone(UTC).date() - timedelta(days=1))
    deleted: list[Path] = []
    for day, day_dir in _partitions(Path(store)):
        if day >= cutoff:
            continue
        doomed = day_dir.with_name(f".pruning-{day_dir.name}")
        day_dir.rename(doomed)
        shutil.rmtree(doomed, ignore_errors=True)
        deleted.append(day_dir)
        log.info("pruned event log day %s", day.isoformat())
    for leftover in (Path(store) / EVENTS_DIR).glob(".pruning-date=*"):  # a crashed prune's
        shutil.rmtree(leftover, ignore_errors=True)
    return deleted
