"""``auditor.store``: snapshots and findings as Parquet files on disk.

Layout (see ``docs/store.md``)::

    STORE/snapshot_date=YYYY-MM-DD/<snapshot_id>/{status,companies,errors,...}/part-*.parquet
                                                 manifest.json   (written last)

A snapshot without ``manifest.json`` is never read.
"""

from __future__ import annotations

from auditor.store._canonical import canonical
from auditor.store._findings import history, load_findings, prune, write_findings
from auditor.store._integrity import FindingsConflictError, StoreCorruptionError, StoreError
from auditor.store._layout import frame_from_tables
from auditor.store._refreshes import REFRESHES_FILE, load_refreshes, write_refreshes
from auditor.store._snapshots import (
    SnapshotNotFoundError,
    SnapshotWriter,
    complete_stranded,
    list_snapshots,
    load_snapshot,
    resolve_snapshot_dir,
    write_snapshot,
)

__all__ = [
    "REFRESHES_FILE",
    "FindingsConflictError",
    "SnapshotNotFoundError",
    "SnapshotWriter",
    "StoreCorruptionError",
    "StoreError",
    "canonical",
    "complete_stranded",
    "frame_from_tables",
    "history",
    "list_snapshots",
    "load_findings",
    "load_refreshes",
    "load_snapshot",
    "prune",
    "resolve_snapshot_dir",
    "write_findings",
    "write_refreshes",
    "write_snapshot",
]
