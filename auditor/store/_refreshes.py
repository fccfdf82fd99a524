"""Refreshes queued by ``auditor refresh``, stored next to the snapshot they were planned from."""

from __future__ import annotations

from typing import Final

import pandas as pd

from auditor.store._fs import StoreDir
from auditor.store._layout import read_parquet_files, write_parquet
from auditor.store._select import resolve_snapshot_dir, select_snapshot
from auditor.store._snapshots import SnapshotNotFoundError, StorePath

__all__ = ["REFRESHES_FILE", "load_refreshes", "write_refreshes"]

#: Refreshes queued after auditing a snapshot live next to it, in this file.
REFRESHES_FILE: Final[str] = "refreshes.parquet"


def write_refreshes(store: StorePath, snapshot_id: str, outcomes: pd.DataFrame) -> StoreDir:
    """Record what was queued after auditing ``snapshot_id`` (appended to earlier runs)."""
    path = resolve_snapshot_dir(store, snapshot_id) / REFRESHES_FILE
    frame = outcomes
    if path.exists():
        frame = pd.concat([read_parquet_files([path]), frame], ignore_index=True)
    text_cols = [c for c in frame.columns if frame[c].dtype == object]
    write_parquet(path, frame.astype({c: "string" for c in text_cols}))
    return path


def load_refreshes(store: StorePath, *, before: str) -> pd.DataFrame | None:
    """The refreshes queued after the last complete snapshot older than ``before``."""
    try:
        path = select_snapshot(store, "latest", before=before).path / REFRESHES_FILE
    except SnapshotNotFoundError:
        return None
    if not path.exists():
        return None
    frame = read_parquet_files([path])
    frame["requested_at"] = pd.to_datetime(frame["requested_at"], utc=True)
    return frame
