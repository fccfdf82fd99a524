"""The public Python API's own functions (re-exported by :mod:`auditor`; import from there).

Everything here reads the store the CLI writes (``auditor snapshot``/``demo``/``run``) or
audits in memory, so an analyst in a notebook sees exactly what the nightly job saw::

    import auditor

    snap = auditor.load_snapshot("reports/demo/store")              # latest night
    findings = auditor.load_findings("reports/demo/store")          # its audit
    result = auditor.audit(snap, as_of=snap.snapshot_at)            # re-audit in memory
    counts = auditor.history("reports/demo/store", days=30)         # per night x severity
    every = auditor.findings_history("reports/demo/store", days=7)  # the findings, stacked

Selecting a night (``which``): ``"latest"``, ``"previous"`` (the one before the latest), a
snapshot id (``20250310T020000Z``), or a date ``YYYY-MM-DD`` (the latest snapshot of that
day). Only complete snapshots (those with a manifest) are ever read. The one selector is
:func:`auditor.store.select_snapshot`; the CLI's ``--snapshot`` option uses it too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final, Literal

import pandas as pd

from auditor.config import AuditConfig, load_config
from auditor.engine import audit as _audit
from auditor.events import EVENTS_SCHEMA
from auditor.findings import FINDINGS_COLUMNS
from auditor.ledger import previous_tables
from auditor.result import AuditResult
from auditor.snapshot import FRAME_NAMES, SCHEMAS, Snapshot, conform
from auditor.snoozes import Snooze
from auditor.store import SnapshotNotFoundError, list_snapshots, select_snapshot
from auditor.store import history as _store_history
from auditor.store import load_findings as _store_load_findings
from auditor.store import load_snapshot as _store_load_snapshot
from auditor.vectors import as_utc_timestamp

__all__ = [
    "CONSISTENCY_COLUMNS",
    "FindingsNotFoundError",
    "StorePath",
    "audit",
    "findings_history",
    "group_consistency",
    "history",
    "load_findings",
    "load_snapshot",
    "snapshot_history",
]

StorePath = str | os.PathLike[str]
FindingsKind = Literal["findings", "resolved", "expired_snoozes"]


class FindingsNotFoundError(LookupError):
    """The store holds no audit matching the request (the snapshot was never audited)."""


def load_snapshot(
    store: StorePath,
    which: str = "latest",
    *,
    frames: Sequence[str] = FRAME_NAMES,
) -> Snapshot:
    """One night's collection from the store, as a :class:`~auditor.snapshot.Snapshot`.

    ``which``: ``"latest"``, ``"previous"``, a snapshot id, or a date ``YYYY-MM-DD``.
    ``frames`` reads only those frames (e.g. ``("status",)``, much faster on a big fleet);
    the others come back empty. Frames follow :data:`auditor.snapshot.SCHEMAS` (UTC
    timestamps, categoricals); ``meta`` is the snapshot's manifest. With every frame asked
    for and a webhook event log in the store, ``events`` holds the events the nightly audit of
    this night read (:func:`auditor.pipeline.event_window`), so :func:`audit` reproduces it.

    Raises :class:`~auditor.store.SnapshotNotFoundError` when nothing matches (the message
    lists what the store holds). The night is picked by :func:`auditor.store.select_snapshot`,
    as ``auditor audit --snapshot`` picks it.
    """
    snapshot = _store_load_snapshot(store, which, frames=frames)
    if tuple(frames) != tuple(FRAME_NAMES):
        return snapshot
    from auditor.pipeline import event_window, with_events  # the pipeline imports this module

    return with_events(snapshot, event_window(os.fspath(store), snapshot, snapshot.snapshot_at))


def load_findings(
    store: StorePath,
    which: str = "latest",
    *,
    kind: FindingsKind = "findings",
) -> pd.DataFrame:
    """A stored audit's findings table (:data:`~auditor.findings.FINDINGS_COLUMNS`).

    ``which``: ``"latest"`` (the most recent *audited* snapshot), ``"previous"`` (the audited
    one before it), a snapshot id, or a date ``YYYY-MM-DD``. ``kind``: ``"findings"``
    (tonight's, snoozed rows included with ``snoozed=True``), ``"resolved"`` (incidents that
    closed that night) or ``"expired_snoozes"``.

    Raises :class:`FindingsNotFoundError` when that snapshot was never audited
    (``auditor audit --store STORE`` audits the latest one).
    """
    try:
        ref = select_snapshot(store, which, audited=True)
    except SnapshotNotFoundError as exc:
        raise FindingsNotFoundError(
            f"{exc} (audit one with: auditor audit --store {store})"
        ) from None
    frame = _store_load_findings(store, ref.snapshot_id, kind=kind)
    if frame is None:
        raise FindingsNotFoundError(f"snapshot {ref.snapshot_id} has no stored {kind}")
    return frame


def audit(
    snapshot: Snapshot | Mapping[str, pd.DataFrame],
    config: AuditConfig | StorePath | None = None,
    *,
    as_of: datetime,
    previous: AuditResult | pd.DataFrame | None = None,
    snoozes: Sequence[Snooze] | StorePath | None = None,
    chunk_size: int | None = None,
) -> AuditResult:
    """Run the rules over a snapshot as of ``as_of``; nothing is read from or written to disk.

    ``snapshot``   a :class:`~auditor.snapshot.Snapshot` (e.g. from :func:`load_snapshot`) or
                   a mapping of frames by name (``{"status": df, ...}``; missing frames are
                   empty, columns are conformed to the schemas; an ``"events"`` frame is the
                   webhook events, :data:`auditor.events.EVENTS_SCHEMA`).
    ``config``     an :class:`~auditor.config.AuditConfig`, the path of a TOML file, or None
                   for the defaults.
    ``as_of``      the audit's "now" (naive datetimes are taken as UTC).
    ``previous``   the previous night, for the incident ledger (``state``, ``first_seen``,
                   ``nights_open``, resolved incidents): an :class:`AuditResult` or a
                   stored findings table (:func:`load_findings`); None: every finding is new.
    ``snoozes``    a list of :class:`~auditor.snoozes.Snooze` or the path of a snooze file.
    ``chunk_size`` audit this many companies at a time (flat memory on a huge fleet).

    Returns an :class:`~auditor.result.AuditResult`; ``.findings`` is the findings table,
    ``.active`` the rows that are not snoozed.
    """
    cfg = config if isinstance(config, AuditConfig) else (
        AuditConfig() if config is None else load_config(Path(config))
    )
    snap = snapshot if isinstance(snapshot, Snapshot) else _from_frames(snapshot, as_of)
    prev: pd.DataFrame | None
    if isinstance(previous, AuditResult):
        prev = previous_tables(previous.findings, [previous.resolved])
    else:
        prev = previous
    sz = Path(snoozes) if isinstance(snoozes, str | os.PathLike) else snoozes
    return _audit(snap, cfg, as_of=as_of, previous=prev, snoozes=sz, chunk_size=chunk_size)


def _from_frames(frames: Mapping[str, pd.DataFrame], as_of: datetime) -> Snapshot:
    unknown = sorted(set(frames) - set(FRAME_NAMES) - {"events"})
    if unknown:
        raise ValueError(
            f"unknown frames {unknown}; choose from {[*FRAME_NAMES, 'events']}"
        )
    at = as_utc_timestamp(as_of).to_pydatetime()
    def frame(name: str) -> pd.DataFrame:
        return conform(frames.get(name, pd.DataFrame()), SCHEMAS[name])

    return Snapshot(
        snapshot_id=f"{at:%Y%m%dT%H%M%SZ}",
        snapshot_at=at,
        status=frame("status"),
        companies=frame("companies"),
        errors=frame("errors"),
        pull_operations=frame("pull_operations"),
        sync_settings=frame("sync_settings"),
        events=conform(frames["events"], EVENTS_SCHEMA) if "events" in frames else None,
    )


def history(
    store: StorePath, days: int = 30, *, as_of: datetime | None = None
) -> pd.DataFrame:
    """Counts of open (not snoozed) findings per night and severity: the report's trend.

    Columns ``snapshot_date, snapshot_id, severity, count``; one row per audited night in
    the ``days`` days up to ``as_of`` (default: the latest audited night) and per severity,
    zero counts included, oldest first. For the findings themselves, night by night, use
    :func:`findings_history`.
    """
    return _store_history(store, days, as_of=as_of)


def _nights(store: StorePath, days: int, as_of: datetime | None, audited: bool) -> pd.DataFrame:
    snaps = list_snapshots(store, include_incomplete=False)
    if audited:
        snaps = snaps.loc[snaps["has_findings"]]
    if snaps.empty:
        return snaps
    end = as_utc_timestamp(as_of) if as_of is not None else snaps["snapshot_at"].max()
    start = end - timedelta(days=days)
    return snaps.loc[(snaps["snapshot_at"] > start) & (snaps["snapshot_at"] <= end)]


def _stack(parts: list[pd.DataFrame], empty: pd.DataFrame) -> pd.DataFrame:
    """Concatenate night tables; columns categorical in the first stay categorical."""
    if not parts:
        return empty
    out = pd.concat(parts, ignore_index=True)
    for name, dtype in parts[0].dtypes.items():
        if isinstance(dtype, pd.CategoricalDtype) and not isinstance(
            out[name].dtype, pd.CategoricalDtype
        ):
            out[name] = out[name].astype("string").astype("category")
    return out


def _tag(frame: pd.DataFrame, snapshot_id: str, snapshot_date: str) -> pd.DataFrame:
    return frame.assign(
        snapshot_id=pd.Series(snapshot_id, index=frame.index, dtype="string"),
        snapshot_date=pd.Series(snapshot_date, index=frame.index, dtype="string"),
    )[["snapshot_id", "snapshot_date", *frame.columns]]


def findings_history(
    store: StorePath,
    days: int = 30,
    *,
    as_of: datetime | None = None,
    kind: FindingsKind = "findings",
    include_snoozed: bool = True,
) -> pd.DataFrame:
    """Every audited night's findings in the ``days`` days up to ``as_of``, stacked.

    Columns ``snapshot_id, snapshot_date`` and then :data:`~auditor.findings.FINDINGS_COLUMNS`;
    nights oldest first. ``include_snoozed=False`` drops snoozed rows. An empty table (with
    those columns) when nothing was audited. ``kind="resolved"`` stacks the incidents each
    night closed instead.
    """
    parts = []
    for snap in _nights(store, days, as_of, audited=True).itertuples(index=False):
        frame = _store_load_findings(store, str(snap.snapshot_id), kind=kind)
        if frame is None:
            continue
        if not include_snoozed and "snoozed" in frame.columns:
            frame = frame.loc[~frame["snoozed"].fillna(False).astype(bool)]
        parts.append(_tag(frame, str(snap.snapshot_id), str(snap.snapshot_date)))
    empty = pd.DataFrame(
        {c: pd.Series(dtype="string") for c in ("snapshot_id", "snapshot_date", *FINDINGS_COLUMNS)}
    )
    return _stack(parts, empty)


def snapshot_history(
    store: StorePath,
    days: int = 30,
    *,
    frame: str = "status",
    columns: Sequence[str] | None = None,
    as_of: datetime | None = None,
) -> pd.DataFrame:
    """One frame of every complete snapshot in the ``days`` days up to ``as_of``, stacked.

    ``frame`` is a snapshot frame name (``status``, ``companies``, ``errors``,
    ``pull_operations``, ``sync_settings``); ``columns`` keeps only those columns (saves
    memory over many nights). Columns ``snapshot_id, snapshot_date`` come first; nights
    oldest first. Use it for trends of the raw data (e.g. ``lastSuccessfulSync`` ages night
    by night); :func:`findings_history` gives the audits' findings.
    """
    if frame not in SCHEMAS:
        raise ValueError(f"unknown frame {frame!r}; choose from {list(FRAME_NAMES)}")
    keep = list(SCHEMAS[frame]) if columns is None else list(columns)
    missing = sorted(set(keep) - set(SCHEMAS[frame]))
    if missing:
        raise ValueError(f"frame {frame!r} has no column(s) {missing}")
    parts = []
    for snap in _nights(store, days, as_of, audited=False).itertuples(index=False):
        loaded = _store_load_snapshot(store, str(snap.snapshot_id), frames=(frame,))
        part = getattr(loaded, frame)[keep]
        parts.append(_tag(part, str(snap.snapshot_id), str(snap.snapshot_date)))
    empty = pd.DataFrame(
        {c: pd.Series(dtype="string") for c in ("snapshot_id", "snapshot_date", *keep)}
    )
    return _stack(parts, empty)


#: Columns of :func:`group_consistency`.
CONSISTENCY_COLUMNS: Final[tuple[str, ...]] = (
    "company_id",
    "company_name",
    "group",
    "members",
    "members_synced",
    "oldest_type",
    "consistent_as_of",
    "newest_type",
    "newest_sync",
    "skew_hours",
)


def group_consistency(
    snapshot: Snapshot | pd.DataFrame, config: AuditConfig | None = None
) -> pd.DataFrame:
    """Per company x consistency group: the time as of which all members agree, and the skew.

    ``snapshot`` is a :class:`Snapshot` or a ``status`` frame (needs ``company_id``,
    ``data_type``, ``current_status``, ``last_successful_sync``; it may hold several nights,
    e.g. from :func:`snapshot_history`, and then ``snapshot_id`` is kept as the first column).
    Groups are ``config.consistency_groups``, the ``groups`` option of ``cross-type-skew``
    (the defaults: accounts-receivable, accounts-payable, cash). As in the rule, members in
    ``NotSupported`` or never synced are left out and a company needs two synced members of a
    group to get a row; ``consistent_as_of`` is the oldest member's ``last_successful_sync`` and
    ``skew_hours`` the newest minus the oldest. Every company gets a row, flagged or not
    (columns :data:`CONSISTENCY_COLUMNS`; ``members`` = the group's size).
    """
    cfg = config or AuditConfig()
    status = snapshot.status if isinstance(snapshot, Snapshot) else snapshot
    by_night = "snapshot_id" in status.columns
    keys = ["snapshot_id", "company_id"] if by_night else ["company_id"]
    columns = [*(["snapshot_id"] if by_night else []), *CONSISTENCY_COLUMNS]
    groups = {g: m for g, m in cfg.consistency_groups.items() if len(m) >= 2}
    membership = pd.DataFrame(
        [(g, m, len(ms)) for g, ms in groups.items() for m in ms],
        columns=["group", "data_type", "members"],
    ).astype({"group": "string", "data_type": "string"})
    eligible = status["last_successful_sync"].notna() & ~status["current_status"].astype(
        "string"
    ).fillna("").eq("NotSupported")
    if "company_name" not in status.columns:
        status = status.assign(company_name=pd.Series(pd.NA, index=status.index, dtype="string"))
    st = status.loc[
        eligible, [*keys, "company_name", "data_type", "last_successful_sync"]
    ].astype({"data_type": "string"})
    merged = st.merge(membership, on="data_type", how="inner")
    if merged.empty:
        return pd.DataFrame({c: [] for c in columns})
    merged = merged.sort_values([*keys, "group", "last_successful_sync", "data_type"])
    grouped = merged.groupby([*keys, "group"], sort=True, observed=True)
    out = grouped.agg(
        company_name=("company_name", "first"),
        members=("members", "first"),
        members_synced=("data_type", "size"),
        oldest_type=("data_type", "first"),
        consistent_as_of=("last_successful_sync", "first"),
        newest_type=("data_type", "last"),
        newest_sync=("last_successful_sync", "last"),
    ).reset_index()
    out = out.loc[out["members_synced"] >= 2]
    skew = out["newest_sync"] - out["consistent_as_of"]
    out["skew_hours"] = skew.dt.total_seconds() / 3600.0
    out["group"] = out["group"].astype("category")
    return out[columns].reset_index(drop=True)
