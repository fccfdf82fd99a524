"""Turning API objects into snapshot frames: column lists per batch, one DataFrame per frame.

The collector hands each company to a :class:`BatchBuilder` as soon as its requests are done;
the builder appends plain Python values to one list per column (no pandas per company) and
:meth:`BatchBuilder.build` turns a whole batch into frames at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Final

import numpy as np
import pandas as pd

from auditor.codat import (
    EARLIEST,
    LATEST,
    Company,
    CompanySyncSettings,
    Connection,
    DataStatus,
    PullOperation,
    SyncSetting,
    SyncSettings,
)
from auditor.constants import IN_PROGRESS_STATUSES, source_type_of
from auditor.snapshot import (
    COMPANIES_SCHEMA,
    ERRORS_SCHEMA,
    PULL_OPERATIONS_SCHEMA,
    STATUS_SCHEMA,
    SYNC_SETTINGS_SCHEMA,
    ColumnKind,
    conform,
    tags_json,
)

__all__ = [
    "BatchBuilder",
    "ErrorRow",
    "KnownPullOperations",
    "KnownSettings",
    "KnownSyncSettings",
    "choose_connections",
    "in_progress_syncs",
    "known_pull_operations",
    "known_sync_settings",
    "sync_settings_frame",
]

_NO_CONNECTION: tuple[None, None, None, None] = (None, None, None, None)


@lru_cache(maxsize=1024)
def _source_type(data_type: str) -> str:
    return source_type_of(data_type)


def _rank(conn: Connection) -> tuple[int, float]:
    linked = 1 if conn.status == "Linked" else 0
    when = conn.last_sync or conn.created
    return (linked, when.timestamp() if when is not None else float("-inf"))


def choose_connections(
    connections: Sequence[Connection],
) -> dict[str | None, tuple[str | None, str | None, str, str | None]]:
    """Per ``sourceType``: the connection serving it as ``(platform, key, id, status)``.

    Among several connections of one source type a ``Linked`` one wins, then the one synced
    (or created) most recently. A connection without ``sourceType`` is filed under None and
    serves Accounting data when no Accounting connection exists.
    """
    best: dict[str | None, Connection] = {}
    for conn in connections:
        current = best.get(conn.source_type)
        if current is None or _rank(conn) > _rank(current):
            best[conn.source_type] = conn
    out = {st: (c.platform_name, c.integration_key, c.id, c.status) for st, c in best.items()}
    if "Accounting" not in out and None in out:
        out["Accounting"] = out[None]
    return out


def in_progress_syncs(statuses: Mapping[str, DataStatus]) -> list[str]:
    """``latestSyncId`` of every data type whose current status is a sync in progress."""
    return [
        s.latest_sync_id
        for s in statuses.values()
        if s.current_status in IN_PROGRESS_STATUSES and s.latest_sync_id
    ]


KnownPullOperations = Mapping[str, Mapping[str, PullOperation]]
"""Pull operations already fetched, by company id then dataset id."""


def _value(v: Any) -> Any:
    """A frame cell as a plain Python value (null -> None, Timestamp -> datetime)."""
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, float) and np.isnan(v):
        return None
    if isinstance(v, pd.Timestamp):
        return v.to_pydatetime()
    if isinstance(v, np.generic):
        return v.item()
    return v


def known_pull_operations(frame: pd.DataFrame) -> dict[str, dict[str, PullOperation]]:
    """A ``pull_operations`` frame (e.g. the previous snapshot's) as ``{company: {id: op}}``.

    Only operations with a ``requested`` time are kept: they are what a stuck sync is timed
    by, and a pull operation's ``requested`` time never changes.
    """
    out: dict[str, dict[str, PullOperation]] = {}
    if frame.empty:
        return out
    rows = frame.loc[
        frame["requested"].notna() & frame["company_id"].notna() & frame["dataset_id"].notna()
    ]
    fields = [c for c in PULL_OPERATIONS_SCHEMA if c in rows.columns]
    for values in zip(*(rows[c].tolist() for c in fields), strict=True):
        row = dict(zip(fields, (_value(v) for v in values), strict=True))
        op = PullOperation.model_construct(
            id=str(row["dataset_id"]),
            company_id=str(row["company_id"]),
            connection_id=row.get("connection_id"),
            data_type=row.get("data_type"),
            status=row.get("status"),
            status_description=row.get("status_description"),
            error_message=row.get("error_message"),
            requested=row.get("requested"),
            completed=row.get("completed"),
            progress=row.get("progress"),
            is_completed=row.get("is_completed"),
            is_errored=row.get("is_errored"),
        )
        out.setdefault(str(row["company_id"]), {})[op.id] = op
    return out


@dataclass(frozen=True, slots=True)
class KnownSettings:
    """A company's sync-settings override as last read: the settings and when (None: a
    snapshot from before ``read_at`` was recorded)."""

    settings: CompanySyncSettings
    read_at: datetime | None


KnownSyncSettings = Mapping[str, KnownSettings]
"""Company overrides already read, by company id (see :func:`known_sync_settings`)."""


def known_sync_settings(frame: pd.DataFrame) -> dict[str, KnownSettings]:
    """A ``sync_settings`` frame (e.g. the previous snapshot's) as ``{company: KnownSettings}``.

    Only company overrides (``company_id`` set) are kept; the client-level rows are read
    again every night. A company's ``read_at`` is the latest of its rows'.
    """
    out: dict[str, KnownSettings] = {}
    if frame.empty:
        return out
    rows = frame.loc[frame["company_id"].notna() & frame["data_type"].notna()]
    if rows.empty:
        return out
    fields = [c for c in SYNC_SETTINGS_SCHEMA if c in rows.columns]
    items: dict[str, list[SyncSetting]] = {}
    read: dict[str, datetime | None] = {}
    for values in zip(*(rows[c].tolist() for c in fields), strict=True):
        row = dict(zip(fields, (_value(v) for v in values), strict=True))
        cid = str(row["company_id"])
        hours = row.get("sync_schedule_hours")
        items.setdefault(cid, []).append(
            SyncSetting.model_construct(
                data_type=str(row["data_type"]),
                fetch_on_first_link=bool(row.get("fetch_on_first_link") or False),
                sync_schedule=None if hours is None else int(hours),
                sync_order=row.get("sync_order"),
                sync_from_utc=row.get("sync_from_utc"),
                sync_from_window=row.get("sync_from_window_months"),
                months_to_sync=row.get("months_to_sync"),
                is_locked=row.get("is_locked"),
            )
        )
        at, before = row.get("read_at"), read.get(cid)
        if at is not None and (before is None or at > before):
            read[cid] = at
        else:
            read.setdefault(cid, None)
    for cid, settings in items.items():
        out[cid] = KnownSettings(
            CompanySyncSettings.model_construct(
                company_id=cid, settings=settings, overrides_defaults=True
            ),
            read.get(cid),
        )
    return out


@dataclass(frozen=True, slots=True)
class ErrorRow:
    """One collection error (a row of the errors frame)."""

    company_id: str | None
    company_name: str | None
    endpoint: str
    status_code: int | None
    error: str
    correlation_id: str | None = None
    attempts: int | None = None


def _timestamps(values: list[Any]) -> pd.Series:
    """Aware datetimes / None -> ``datetime64[ns, UTC]`` (out-of-range values become NaT).

    The client's parsers already refuse times outside the nanosecond range (see
    ``auditor.codat.EARLIEST``); this keeps one that got here otherwise from failing the
    batch: pandas would read it at a coarser unit and refuse the cast to nanoseconds.
    """
    if not values:
        return pd.Series([], dtype="datetime64[ns, UTC]")
    parsed = pd.Series(pd.to_datetime(values, utc=True, errors="coerce"))
    if parsed.dtype != _NS_UTC:
        parsed = parsed.where((parsed >= _EARLIEST) & (parsed <= _LATEST)).dt.as_unit("ns")
    return parsed.astype(_NS_UTC)


_NS_UTC: Final = pd.DatetimeTZDtype("ns", "UTC")
_EARLIEST: Final = pd.Timestamp(EARLIEST)
_LATEST: Final = pd.Timestamp(LATEST)


def _frame(columns: Mapping[str, Any], schema: Mapping[str, ColumnKind], n: int) -> pd.DataFrame:
    data: dict[str, Any] = {}
    for name, kind in schema.items():
        values = columns.get(name)
        if values is None:
            data[name] = pd.Series([None] * n, dtype="object")
        elif kind == "timestamp" and not isinstance(values, pd.Series):
            data[name] = _timestamps(values)
        elif kind == "category" and isinstance(values, list) and any(v is not None for v in values):
            # Straight to a categorical: a third of the cost of str -> string -> category.
            data[name] = pd.Categorical(values)
        else:
            data[name] = values
    return conform(pd.DataFrame(data), schema)


class BatchBuilder:
    """Accumulates companies as column lists; :meth:`build` makes the batch's frames."""

    def __init__(self, snapshot_at: datetime) -> None:
        self.snapshot_at = snapshot_at.astimezone(UTC)
        self._at64 = np.datetime64(self.snapshot_at.replace(tzinfo=None), "ns")
        self.companies = 0
        self._status: dict[str, list[Any]] = {
            k: [] for k in STATUS_SCHEMA if k not in ("snapshot_at", "latest_sync_requested")
        }
        self._requested: list[datetime | None] = []
        self._companies: dict[str, list[Any]] = {k: [] for k in COMPANIES_SCHEMA}
        self._pulls: dict[str, list[Any]] = {k: [] for k in PULL_OPERATIONS_SCHEMA}
        self._errors: list[ErrorRow] = []
        self._overrides: dict[str, KnownSettings] = {}

    def add_company(
        self,
        company: Company,
        statuses: Mapping[str, DataStatus] | None,
        pull_operations: Iterable[PullOperation] = (),
        errors: Iterable[ErrorRow] = (),
        sync_settings: CompanySyncSettings | KnownSettings | None = None,
    ) -> None:
        """Add one company: its connections, its data statuses (None when they could not be
        read), the pull operations fetched for it, its collection errors, and its own sync
        settings: read tonight (kept only when they override the defaults, ``read_at`` =
        the snapshot time) or carried from an earlier snapshot (:class:`KnownSettings`)."""
        self.companies += 1
        if isinstance(sync_settings, KnownSettings):
            self._overrides[company.id] = sync_settings
        elif sync_settings is not None and sync_settings.overrides_defaults:
            self._overrides[company.id] = KnownSettings(sync_settings, self.snapshot_at)
        cid = company.id
        name = company.name
        conns = company.data_connections
        self._add_connections(company, conns)
        for err in errors:
            self._errors.append(err)
        requested: dict[str, datetime | None] = {}
        for op in pull_operations:
            requested[op.id] = op.requested
            self._add_pull(cid, op)
        if not statuses:
            return
        chosen = choose_connections(conns)
        n = len(statuses)
        s = self._status
        s["company_id"].extend([cid] * n)
        s["company_name"].extend([name] * n)
        plat, key, conn_id, conn_status = (
            s["platform"],
            s["integration_key"],
            s["connection_id"],
            s["connection_status"],
        )
        st_col, dt_col, cs_col = s["source_type"], s["data_type"], s["current_status"]
        lss_col, lsi_col, lssi_col, bad_col, raw_col = (
            s["last_successful_sync"],
            s["latest_sync_id"],
            s["latest_successful_sync_id"],
            s["unreadable_fields"],
            s["last_successful_sync_raw"],
        )
        req_col = self._requested
        for data_type, status in statuses.items():
            st = _source_type(data_type)
            p, k, c, cs = chosen.get(st, _NO_CONNECTION)
            plat.append(p)
            key.append(k)
            conn_id.append(c)
            conn_status.append(cs)
            st_col.append(st)
            dt_col.append(data_type)
            cs_col.append(status.current_status)
            lss_col.append(status.last_successful_sync)
            lsi_col.append(status.latest_sync_id)
            lssi_col.append(status.latest_successful_sync_id)
            bad = status.unreadable
            if bad:
                bad_col.append(",".join(sorted(bad)))
                raw_col.append(bad.get("lastSuccessfulSync"))
            else:
                bad_col.append(None)
                raw_col.append(None)
            # In-progress types only (the schema's contract): an error type's pull operation
            # may or may not have been fetched tonight (the error-text budget), and the status
            # frame must not depend on that.
            req_col.append(
                requested.get(status.latest_sync_id)
                if requested
                and status.latest_sync_id
                and status.current_status in IN_PROGRESS_STATUSES
                else None
            )

    def add_error(self, error: ErrorRow) -> None:
        """An error not tied to one company's collection (e.g. the sync settings call)."""
        self._errors.append(error)

    def _add_connections(self, company: Company, conns: Sequence[Connection]) -> None:
        c = self._companies
        tags = tags_json(company.tags)
        for conn in conns or (None,):
            error = conn.latest_error() if conn else None
            c["company_tags"].append(tags)
            c["connection_error"].append(error.text if error else None)
            c["connection_error_at"].append(error.errored_on_utc if error else None)
            c["connection_info"].append(tags_json(conn.connection_info) if conn else None)
            c["company_id"].append(company.id)
            c["company_name"].append(company.name)
            c["company_created"].append(company.created)
            c["company_last_sync"].append(company.last_sync)
            c["connection_id"].append(conn.id if conn else None)
            c["platform"].append(conn.platform_name if conn else None)
            c["integration_key"].append(conn.integration_key if conn else None)
            c["source_type"].append(conn.source_type if conn else None)
            c["connection_status"].append(conn.status if conn else None)
            c["link_url"].append(conn.link_url if conn else None)
            c["connection_created"].append(conn.created if conn else None)
            c["connection_last_sync"].append(conn.last_sync if conn else None)

    def _add_pull(self, company_id: str, op: PullOperation) -> None:
        p = self._pulls
        p["company_id"].append(op.company_id or company_id)
        p["dataset_id"].append(op.id)
        p["connection_id"].append(op.connection_id)
        p["data_type"].append(op.data_type)
        p["status"].append(op.status)
        p["status_description"].append(op.status_description)
        p["error_message"].append(op.error_message)
        p["requested"].append(op.requested)
        p["completed"].append(op.completed)
        p["progress"].append(op.progress)
        p["is_completed"].append(op.is_completed)
        p["is_errored"].append(op.is_errored)

    def _snapshot_col(self, n: int) -> pd.Series:
        return pd.Series(np.full(n, self._at64), dtype="datetime64[ns]").dt.tz_localize(UTC)

    def build(self) -> dict[str, pd.DataFrame]:
        """The batch's frames: ``status``, ``companies``, ``errors``, ``pull_operations`` and
        ``sync_settings`` (company overrides only)."""
        n_status = len(self._requested)
        status = _frame(
            {
                **self._status,
                "latest_sync_requested": self._requested,
                "snapshot_at": self._snapshot_col(n_status),
            },
            STATUS_SCHEMA,
            n_status,
        )
        n_comp = len(self._companies["company_id"])
        companies = _frame(
            {**self._companies, "snapshot_at": self._snapshot_col(n_comp)},
            COMPANIES_SCHEMA,
            n_comp,
        )
        n_pull = len(self._pulls["dataset_id"])
        pulls = _frame(self._pulls, PULL_OPERATIONS_SCHEMA, n_pull)
        errs = self._errors
        errors = _frame(
            {
                "company_id": [e.company_id for e in errs],
                "company_name": [e.company_name for e in errs],
                "endpoint": [e.endpoint for e in errs],
                "status_code": pd.array([e.status_code for e in errs], dtype="Int64"),
                "error": [e.error for e in errs],
                "correlation_id": [e.correlation_id for e in errs],
                "attempts": pd.array([e.attempts for e in errs], dtype="Int64"),
                "snapshot_at": self._snapshot_col(len(errs)),
            },
            ERRORS_SCHEMA,
            len(errs),
        )
        return {
            "status": status,
            "companies": companies,
            "errors": errors,
            "pull_operations": pulls,
            "sync_settings": sync_settings_frame(None, self._overrides),
        }


def sync_settings_frame(
    settings: SyncSettings | None,
    overrides: Mapping[str, CompanySyncSettings | KnownSettings] | None = None,
    *,
    read_at: datetime | None = None,
) -> pd.DataFrame:
    """The ``sync_settings`` frame: client-level rows (``company_id`` null) then overrides.

    ``read_at`` is the time of the client-level rows and of overrides given as
    :class:`~auditor.codat.CompanySyncSettings`; a :class:`KnownSettings` keeps its own.
    """
    cols: dict[str, list[Any]] = {k: [] for k in SYNC_SETTINGS_SCHEMA}
    sources: list[tuple[str | None, SyncSettings | CompanySyncSettings, datetime | None]] = []
    if settings is not None:
        sources.append((None, settings, read_at))
    for cid, override in (overrides or {}).items():
        if isinstance(override, KnownSettings):
            sources.append((cid, override.settings, override.read_at))
        else:
            sources.append((cid, override, read_at))
    for owner, s, at in sources:
        for item in s.settings:
            cols["company_id"].append(owner)
            cols["data_type"].append(item.data_type)
            cols["fetch_on_first_link"].append(item.fetch_on_first_link)
            cols["sync_schedule_hours"].append(item.sync_schedule)
            cols["sync_order"].append(item.sync_order)
            cols["is_locked"].append(item.is_locked)
            cols["sync_from_utc"].append(item.sync_from_utc)
            cols["sync_from_window_months"].append(item.sync_from_window)
            cols["months_to_sync"].append(item.months_to_sync)
            cols["read_at"].append(at)
    n = len(cols["company_id"])
    return _frame(cols, SYNC_SETTINGS_SCHEMA, n)
