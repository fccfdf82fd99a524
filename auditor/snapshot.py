"""The snapshot: what one night's collection holds, as pandas DataFrames with fixed schemas.

This module is the contract between the collector (which builds a :class:`Snapshot`), the
store (which writes and reads one) and the rules (which read one partition of it). Each frame
has a fixed, documented column order; :func:`conform` gives any frame that order and the
dtypes below, so that frames built in memory and frames read back from Parquet are the same.

Frames
------
``status``          one row per company x data type (the dataStatus payload, flattened)
``companies``       one row per company x connection (a company with no connection: one row,
                    connection columns null)
``errors``          one row per company whose data could not be collected (the run went on)
``pull_operations`` pull operations fetched for data types in progress (to time stuck syncs)
``sync_settings``   the client's sync settings (``company_id`` null) and the latest known
                    override of each company (read on a rolling slice, see ``read_at``)

All timestamps are timezone-aware UTC (``datetime64[ns, UTC]``). Repeated strings are
categoricals, so that 100,000 companies x 43 data types stay well under 2 GB.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Final, Literal

import numpy as np
import pandas as pd

__all__ = [
    "COMPANIES_SCHEMA",
    "ERRORS_SCHEMA",
    "FRAME_NAMES",
    "PULL_OPERATIONS_SCHEMA",
    "SCHEMAS",
    "STATUS_SCHEMA",
    "SYNC_SETTINGS_SCHEMA",
    "ColumnKind",
    "Snapshot",
    "conform",
    "empty_frame",
    "tags_json",
]

ColumnKind = Literal["str", "category", "timestamp", "int", "float", "bool"]

#: company x data type. ``platform``/``connection_id``/``connection_status`` are those of the
#: company's connection that serves the data type (by ``source_type``; Linked preferred).
#: ``latest_sync_requested`` is the ``requested`` time of the pull operation ``latest_sync_id``
#: when the collector fetched it (in-progress types only), else null.
#: ``company_id``, ``company_name`` and ``connection_id`` repeat once per data type (43 times
#: per company), so they are categoricals here (strings in the other frames): this takes
#: 100,000 companies x 43 types from 922 MB to under 600 MB. Group with ``observed=True``.
#: ``unreadable_fields``: the entry's fields that Codat sent but that could not be read and
#: were left null, as their wire names joined by ``,`` (``lastSuccessfulSync``), null when
#: every field was read. ``last_successful_sync_raw``: when ``lastSuccessfulSync`` was sent
#: but is unreadable (``"yesterday"``, a time outside 1677-2262 such as .NET's
#: ``0001-01-01T00:00:00``), its raw text (at most 200 characters); else null. A row with
#: ``last_successful_sync`` null and this set is "unreadable", not "never synced".
STATUS_SCHEMA: Final[dict[str, ColumnKind]] = {
    "company_id": "category",
    "company_name": "category",
    "platform": "category",
    "integration_key": "category",
    "source_type": "category",
    "connection_id": "category",
    "connection_status": "category",
    "data_type": "category",
    "current_status": "category",
    "last_successful_sync": "timestamp",
    "latest_sync_id": "str",
    "latest_successful_sync_id": "str",
    "latest_sync_requested": "timestamp",
    "snapshot_at": "timestamp",
    "unreadable_fields": "str",
    "last_successful_sync_raw": "str",
}

#: company x connection (``dataConnections`` of the company objects).
#: ``company_tags``: the company's ``tags`` as JSON text (keys sorted, compact: see
#: :func:`tags_json`), null when Codat sent none. ``connection_error`` /
#: ``connection_error_at``: the text (``errorMessage``, else ``statusText``, else
#: ``statusCode``) and the ``erroredOnUtc`` of the connection's newest unresolved entry of
#: ``dataConnectionErrors``, null when there is none. ``connection_info``: the connection's
#: ``connectionInfo`` object as JSON text, null when absent. Full values: the report bounds
#: what it shows.
COMPANIES_SCHEMA: Final[dict[str, ColumnKind]] = {
    "company_id": "str",
    "company_name": "str",
    "company_created": "timestamp",
    "company_last_sync": "timestamp",
    "connection_id": "str",
    "platform": "category",
    "integration_key": "category",
    "source_type": "category",
    "connection_status": "category",
    "link_url": "str",
    "connection_created": "timestamp",
    "connection_last_sync": "timestamp",
    "snapshot_at": "timestamp",
    "company_tags": "str",
    "connection_error": "str",
    "connection_error_at": "timestamp",
    "connection_info": "str",
}

#: A company (or a request about it) that failed after retries.
ERRORS_SCHEMA: Final[dict[str, ColumnKind]] = {
    "company_id": "str",
    "company_name": "str",
    "endpoint": "str",
    "status_code": "int",
    "error": "str",
    "correlation_id": "str",
    "attempts": "int",
    "snapshot_at": "timestamp",
}

PULL_OPERATIONS_SCHEMA: Final[dict[str, ColumnKind]] = {
    "company_id": "str",
    "dataset_id": "str",
    "connection_id": "str",
    "data_type": "category",
    "status": "category",
    "status_description": "str",
    "error_message": "str",
    "requested": "timestamp",
    "completed": "timestamp",
    "progress": "int",
    "is_completed": "bool",
    "is_errored": "bool",
}

#: ``company_id`` null: the client-level (profile) settings; else that company's override.
#: ``sync_schedule_hours`` is Codat's ``syncSchedule`` (hours between scheduled syncs).
#: History: ``sync_from_utc`` (``syncFromUtc``, a start date), ``sync_from_window_months``
#: (``syncFromWindow``, months back from each sync) and ``months_to_sync`` (``monthsToSync``,
#: financial statements only); null when Codat did not send them.
#: ``read_at``: when these settings were read. Company overrides are read on a rolling slice
#: of the fleet (``docs/collector.md``) and carried from snapshot to snapshot, so a
#: company's ``read_at`` may be up to ``company_settings_every_days`` nights old.
SYNC_SETTINGS_SCHEMA: Final[dict[str, ColumnKind]] = {
    "company_id": "str",
    "data_type": "category",
    "fetch_on_first_link": "bool",
    "sync_schedule_hours": "float",
    "sync_order": "int",
    "is_locked": "bool",
    "sync_from_utc": "timestamp",
    "sync_from_window_months": "int",
    "months_to_sync": "int",
    "read_at": "timestamp",
}

SCHEMAS: Final[dict[str, dict[str, ColumnKind]]] = {
    "status": STATUS_SCHEMA,
    "companies": COMPANIES_SCHEMA,
    "errors": ERRORS_SCHEMA,
    "pull_operations": PULL_OPERATIONS_SCHEMA,
    "sync_settings": SYNC_SETTINGS_SCHEMA,
}
FRAME_NAMES: Final[tuple[str, ...]] = tuple(SCHEMAS)


def tags_json(value: Mapping[str, Any] | None) -> str | None:
    """A JSON object as the text the store keeps: keys sorted, no spaces, UTF-8 as is
    (``{"region":"uk","tier":"gold"}``); None for None. DuckDB reads it with
    ``json_extract_string(company_tags, '$.region')``; a rule matches a pair ``k`` = ``v`` as
    the substring ``{"k":"v"`` or ``,"k":"v"`` (exact: a quote inside a string is escaped)."""
    if value is None:
        return None
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


_READY: Final[dict[str, str]] = {
    "timestamp": "datetime64[ns, UTC]",
    "int": "Int64",
    "float": "float64",
    "bool": "boolean",
}


def _convert(series: pd.Series, kind: ColumnKind) -> pd.Series:
    if str(series.dtype) == _READY.get(kind):
        return series  # already right: no copy (a 4.3-million-row column is 34 MB)
    if kind == "timestamp":
        return pd.to_datetime(series, utc=True, format="ISO8601").astype("datetime64[ns, UTC]")
    if kind == "category":
        if isinstance(series.dtype, pd.CategoricalDtype):
            return series
        return series.astype("string").astype("category")
    if kind == "int":
        numbers = pd.to_numeric(series, errors="coerce")
        if numbers.dtype.kind in "ib":
            return numbers.astype("Int64")
        # Floats (missing values), uint64 or objects (2**63 and up): whole numbers inside
        # int64's range are kept, anything else is missing, never an error for the frame.
        floats = pd.to_numeric(numbers, errors="coerce").astype("float64")
        whole = (floats.abs() < 2.0**63) & (floats == np.floor(floats))
        return floats.where(whole).astype("Int64")
    if kind == "float":
        return pd.to_numeric(series, errors="coerce").astype("float64")
    if kind == "bool":
        return series.astype("boolean")
    return series.astype("string")


def conform(frame: pd.DataFrame, schema: Mapping[str, ColumnKind]) -> pd.DataFrame:
    """Return ``frame`` with exactly the schema's columns, in order, with the schema's dtypes.

    Missing columns are added as nulls; extra columns are kept after the schema's columns.
    """
    out = {}
    n = len(frame)
    for name, kind in schema.items():
        col = frame[name] if name in frame.columns else pd.Series([None] * n, index=frame.index)
        out[name] = _convert(col, kind)
    extra = [c for c in frame.columns if c not in schema]
    result = pd.DataFrame(out, index=frame.index, copy=False)  # copy-on-write protects frame
    for c in extra:
        result[c] = frame[c]
    return result.reset_index(drop=True)


def empty_frame(schema: Mapping[str, ColumnKind]) -> pd.DataFrame:
    """An empty frame with the schema's columns and dtypes."""
    return conform(pd.DataFrame({name: [] for name in schema}), schema)


@dataclass(frozen=True)
class Snapshot:
    """One night's collection. Frames follow :data:`SCHEMAS`; ``meta`` is the manifest."""

    snapshot_id: str
    snapshot_at: datetime
    status: pd.DataFrame = field(default_factory=lambda: empty_frame(STATUS_SCHEMA))
    companies: pd.DataFrame = field(default_factory=lambda: empty_frame(COMPANIES_SCHEMA))
    errors: pd.DataFrame = field(default_factory=lambda: empty_frame(ERRORS_SCHEMA))
    pull_operations: pd.DataFrame = field(
        default_factory=lambda: empty_frame(PULL_OPERATIONS_SCHEMA)
    )
    sync_settings: pd.DataFrame = field(default_factory=lambda: empty_frame(SYNC_SETTINGS_SCHEMA))
    meta: Mapping[str, object] = field(default_factory=dict)
    #: The webhook events received since the previous audit (``auditor.events.EVENTS_SCHEMA``),
    #: per company; None when there is no event log. Not stored with the snapshot (the event
    #: log is its own store); partitioned with it.
    events: pd.DataFrame | None = None

    def frames(self) -> dict[str, pd.DataFrame]:
        """The frames by name, in :data:`FRAME_NAMES` order."""
        return {name: getattr(self, name) for name in FRAME_NAMES}

    def conformed(self) -> Snapshot:
        """A copy whose frames all follow their schemas."""
        return self._with_frames(
            {name: conform(f, SCHEMAS[name]) for name, f in self.frames().items()}
        )

    def _with_frames(self, frames: Mapping[str, pd.DataFrame]) -> Snapshot:
        """A copy with ``frames`` (by name) replaced."""
        return replace(
            self,
            status=frames.get("status", self.status),
            companies=frames.get("companies", self.companies),
            errors=frames.get("errors", self.errors),
            pull_operations=frames.get("pull_operations", self.pull_operations),
            sync_settings=frames.get("sync_settings", self.sync_settings),
        )

    @property
    def company_ids(self) -> pd.Index:
        """Every company in the snapshot: collected, erroring, or with no data types."""
        # Each frame's distinct ids first (cheap on a categorical: its codes), then the union,
        # in order of first appearance (companies, then status, then errors).
        ids = pd.concat(
            [
                pd.Series(frame["company_id"].dropna().unique()).astype("string")
                for frame in (self.companies, self.status, self.errors)
            ],
            ignore_index=True,
        )
        index: pd.Index = pd.Index(ids.drop_duplicates(), dtype="string")
        return index

    def partition(self, company_ids: Iterable[str]) -> Snapshot:
        """The company-complete part of the snapshot for ``company_ids``.

        Client-level sync settings and fleet-wide collection errors (``company_id`` null) are
        kept in every partition (the engine keeps one of the fleet-level findings they give).
        """
        ids = pd.Index(list(company_ids))
        parts: dict[str, pd.DataFrame] = {}
        for name, f in self.frames().items():
            mask = f["company_id"].isin(ids)
            if name in ("sync_settings", "errors"):
                mask = mask | f["company_id"].isna()
            parts[name] = f.loc[mask].reset_index(drop=True)
        out = self._with_frames(parts)
        if self.events is not None:
            events = self.events.loc[self.events["company_id"].isin(ids).to_numpy()]
            out = replace(out, events=events.reset_index(drop=True))
        return out
