"""Findings next to their snapshot, the history of nightly counts, and pruning old nights."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from auditor.findings import SEVERITIES, conform_findings
from auditor.freshness import FleetFreshness
from auditor.result import EXPIRED_SNOOZE_COLUMNS, AuditResult
from auditor.store._fs import StoreDir, remove_tree, store_root
from auditor.store._integrity import (
    FindingsConflictError,
    StoreCorruptionError,
    read_parts,
    read_record,
    written_checksum,
)
from auditor.store._layout import (
    FORMAT_VERSION,
    MANIFEST,
    atomic_write_json,
    iter_snapshot_dirs,
    utc_now,
    write_parquet,
)
from auditor.store._select import resolve_snapshot_dir, select_snapshot
from auditor.store._snapshots import SnapshotNotFoundError, StorePath, list_snapshots

__all__ = [
    "freshness_history",
    "history",
    "load_findings",
    "prune",
    "stored_audit",
    "write_findings",
]

log = logging.getLogger("auditor.store")

FINDINGS_FILE = "findings.parquet"
RESOLVED_FILE = "resolved.parquet"
EXPIRED_FILE = "expired_snoozes.parquet"
FINDINGS_META = "findings.json"

HISTORY_COLUMNS = ("snapshot_date", "snapshot_id", "severity", "count")
FRESHNESS_COLUMNS = ("snapshot_date", "snapshot_id", "monitored", "fresh")


def stored_audit(store: StorePath, snapshot_id: str) -> dict[str, Any] | None:
    """The identity of the audit stored with ``snapshot_id`` (the night's own audit): its
    ``findings.json`` (``as_of``, ``config_hash``, counts; written last), or None if it has
    none.
    An unreadable ``findings.json`` is :class:`~auditor.store.StoreCorruptionError`."""
    path = resolve_snapshot_dir(store, snapshot_id)
    meta = path / FINDINGS_META
    if not meta.exists():  # none, or an audit killed before its findings.json (uncommitted)
        return None
    doc = read_record(meta)
    if not isinstance(doc.get("as_of"), str):
        raise StoreCorruptionError(meta, "has no 'as_of'")
    return doc


def same_audit(stored: dict[str, Any], as_of: datetime, config_hash: str | None) -> bool:
    """Whether ``stored`` (a :func:`stored_audit`) is the audit at ``as_of`` with the config
    ``config_hash`` (re-running it is idempotent)."""
    try:
        then = datetime.fromisoformat(str(stored["as_of"]))
    except ValueError:
        return False
    return then == as_of and stored.get("config_hash") == config_hash


def write_findings(
    store: StorePath,
    result: AuditResult,
    *,
    config_hash: str | None = None,
    overwrite: bool = False,
) -> StoreDir:
    """Store an audit's findings (and resolved, expired snoozes) next to its snapshot.

    Writes ``findings.parquet``, ``resolved.parquet``, ``expired_snoozes.parquet`` and
    ``findings.json`` (``as_of``, ``config_hash``, counts; written last) into the snapshot's
    directory. The first audit stored for a snapshot is the night's own; storing a different
    one (another ``as_of`` or ``config_hash``) raises
    :class:`~auditor.store.FindingsConflictError` unless ``overwrite`` (history is never
    silently rewritten); the same audit again is rewritten (idempotent). Returns the
    findings file.
    """
    path = resolve_snapshot_dir(store, result.snapshot_id)
    stored = stored_audit(store, result.snapshot_id)
    replaces: dict[str, Any] | None = None
    if stored is not None and not same_audit(stored, result.as_of, config_hash):
        if not overwrite:
            raise FindingsConflictError(
                f"snapshot {result.snapshot_id} already has its own audit (as_of "
                f"{stored.get('as_of')}, config {stored.get('config_hash') or 'unknown'}); "
                "not replacing it with a different one without overwrite"
            )
        replaces = {k: stored.get(k) for k in ("as_of", "config_hash", "written_at")}
    findings = conform_findings(result.findings)
    resolved = conform_findings(result.resolved)
    expired = result.expired_snoozes
    for col in EXPIRED_SNOOZE_COLUMNS:
        if col not in expired.columns:
            expired = expired.assign(**{col: pd.Series([None] * len(expired), dtype="string")})
    # Uncommit the stored audit first: a kill below leaves no findings.json (no audit, the
    # next one is stored), never a findings.json whose checksums disagree with the files.
    (path / FINDINGS_META).unlink(missing_ok=True)
    write_parquet(path / FINDINGS_FILE, findings)
    write_parquet(path / RESOLVED_FILE, resolved)
    write_parquet(path / EXPIRED_FILE, _stringify_objects(expired))
    checksums = {
        n: written_checksum(path / n) for n in (FINDINGS_FILE, RESOLVED_FILE, EXPIRED_FILE)
    }
    atomic_write_json(
        path / FINDINGS_META,
        {
            "format": FORMAT_VERSION,
            "snapshot_id": result.snapshot_id,
            "as_of": result.as_of.astimezone(UTC).isoformat(),
            "config_hash": config_hash,
            "findings": len(findings),
            "resolved": len(resolved),
            **(
                {"freshness": result.freshness.to_json()}
                if result.freshness is not None
                else {}
            ),
            "checksums": checksums,
            "written_at": utc_now().isoformat(),
            **({"replaces": replaces} if replaces is not None else {}),
        },
    )
    return path / FINDINGS_FILE


def _read_stored(path: StoreDir, name: str, columns: list[str] | None = None) -> pd.DataFrame:
    """A stored findings table, verified against ``findings.json``'s checksums (when it has
    them); damage is :class:`~auditor.store.StoreCorruptionError` naming the file."""
    checksums = None
    if (path / FINDINGS_META).exists():
        recorded = read_record(path / FINDINGS_META).get("checksums")
        if recorded is not None and not isinstance(recorded, dict):
            raise StoreCorruptionError(path / FINDINGS_META, "'checksums' is not an object")
        checksums = recorded
    return read_parts(path, [name], checksums=checksums, columns=columns)


def _stringify_objects(frame: pd.DataFrame) -> pd.DataFrame:
    """Object columns as strings, so Parquet gets one type per column."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object:
            out[col] = out[col].astype("string")
    return out


def _with_findings(store: StorePath) -> pd.DataFrame:
    snaps = list_snapshots(store, include_incomplete=False)
    return snaps.loc[snaps["has_findings"]].reset_index(drop=True)


def load_findings(
    store: StorePath,
    which: str = "latest",
    *,
    kind: Literal["findings", "resolved", "expired_snoozes"] = "findings",
    before: str | None = None,
) -> pd.DataFrame | None:
    """Stored findings, or None when there are none.

    ``which`` selects among the *audited* snapshots (:func:`select_snapshot` with
    ``audited=True``): ``"latest"`` = the most recent complete snapshot that has findings;
    ``"previous"`` = the one before it; a date ``YYYY-MM-DD``; or a snapshot id. ``before`` =
    a snapshot id: only snapshots older than it count (the ledger asks for ``"latest"``
    before tonight's id). ``kind`` selects the table (findings, resolved or expired snoozes).
    """
    try:
        path = select_snapshot(store, which, audited=True, before=before).path
    except (SnapshotNotFoundError, ValueError):  # nothing audited matches (or can match)
        return None
    file = path / {"findings": FINDINGS_FILE, "resolved": RESOLVED_FILE}.get(kind, EXPIRED_FILE)
    if not file.exists():
        return None
    frame = _read_stored(path, file.name)
    if kind == "expired_snoozes":
        return frame
    return conform_findings(frame)


def history(store: StorePath, days: int = 30, *, as_of: datetime | None = None) -> pd.DataFrame:
    """Non-snoozed findings per night and severity, from stored findings.

    Columns ``snapshot_date, snapshot_id, severity, count``; one row per snapshot with
    findings in the ``days`` days up to ``as_of`` (default: the latest such snapshot) and per
    severity (zero counts included), oldest first.
    """
    snaps = _with_findings(store)
    columns = list(HISTORY_COLUMNS)
    if snaps.empty:
        return _history_frame(pd.DataFrame({c: [] for c in columns}))
    end = as_of.astimezone(UTC) if as_of is not None else snaps["snapshot_at"].max()
    start = end - timedelta(days=days)
    snaps = snaps.loc[(snaps["snapshot_at"] > start) & (snaps["snapshot_at"] <= end)]
    rows: list[dict[str, object]] = []
    for snap in snaps.itertuples(index=False):
        file = store_root(str(snap.path)) / FINDINGS_FILE
        frame = _read_stored(file.parent, FINDINGS_FILE, columns=["severity", "snoozed"])
        active = frame.loc[~frame["snoozed"].fillna(False).astype(bool)]
        counts = active["severity"].astype("string").value_counts()
        severities = list(SEVERITIES) + sorted(set(counts.index) - set(SEVERITIES))
        for sev in severities:
            rows.append(
                {
                    "snapshot_date": snap.snapshot_date,
                    "snapshot_id": snap.snapshot_id,
                    "severity": sev,
                    "count": int(counts.get(sev, 0)),
                }
            )
    return _history_frame(pd.DataFrame(rows, columns=columns))


def freshness_history(
    store: StorePath, days: int = 30, *, as_of: datetime | None = None
) -> pd.DataFrame:
    """The fleet freshness figure of each audited night (:mod:`auditor.freshness`), read from
    the nights' ``findings.json`` only (no findings loaded: cheap at any fleet size).

    Columns ``snapshot_date, snapshot_id, monitored, fresh``; the nights as :func:`history`
    selects them; a night stored before the figure existed is left out (a gap in the trend).
    """
    snaps = _with_findings(store)
    if snaps.empty:
        return _freshness_frame([])
    end = as_of.astimezone(UTC) if as_of is not None else snaps["snapshot_at"].max()
    start = end - timedelta(days=days)
    snaps = snaps.loc[(snaps["snapshot_at"] > start) & (snaps["snapshot_at"] <= end)]
    rows: list[dict[str, object]] = []
    for snap in snaps.itertuples(index=False):
        meta = store_root(str(snap.path)) / FINDINGS_META
        figure = FleetFreshness.from_json(read_record(meta).get("freshness"))
        if figure is None:
            continue
        rows.append(
            {
                "snapshot_date": snap.snapshot_date,
                "snapshot_id": snap.snapshot_id,
                "monitored": figure.monitored,
                "fresh": figure.fresh,
            }
        )
    return _freshness_frame(rows)


def _freshness_frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    out = pd.DataFrame(rows, columns=list(FRESHNESS_COLUMNS))
    out["snapshot_date"] = pd.to_datetime(out["snapshot_date"]).dt.date
    out["snapshot_id"] = out["snapshot_id"].astype("string")
    out["monitored"] = out["monitored"].astype("int64")
    out["fresh"] = out["fresh"].astype("int64")
    return out.reset_index(drop=True)


def _history_frame(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out["snapshot_date"] = pd.to_datetime(out["snapshot_date"]).dt.date
    out["snapshot_id"] = out["snapshot_id"].astype("string")
    out["severity"] = out["severity"].astype("string")
    out["count"] = out["count"].astype("int64")
    return out.reset_index(drop=True)


def prune(store: StorePath, keep_days: int, *, as_of: datetime | None = None) -> list[StoreDir]:
    """Delete snapshots dated more than ``keep_days`` days before ``as_of`` (default now).

    The latest complete snapshot is always kept. Returns the directories deleted.
    """
    if keep_days < 0:
        raise ValueError("keep_days must be >= 0")
    end = (as_of or datetime.now(UTC)).astimezone(UTC).date()
    cutoff = end - timedelta(days=keep_days)
    root = store_root(store)
    try:
        keep: StoreDir | None = select_snapshot(root, "latest").path
    except SnapshotNotFoundError:
        keep = None
    deleted: list[StoreDir] = []
    for path in iter_snapshot_dirs(root):
        day = datetime.strptime(path.parent.name.split("=", 1)[1], "%Y-%m-%d").date()
        if day >= cutoff or (keep is not None and str(path) == str(keep)):
            continue
        # Remove the manifest first: a half-deleted snapshot is never read.
        (path / MANIFEST).unlink(missing_ok=True)
        remove_tree(path)
        deleted.append(path)
        log.info("pruned snapshot %s", path.name)
    for day_dir in {str(p.parent): p.parent for p in deleted}.values():
        # An object store has no empty directories: a prefix goes with its last object.
        if isinstance(day_dir, Path) and day_dir.is_dir() and not any(day_dir.iterdir()):
            day_dir.rmdir()
    return deleted
