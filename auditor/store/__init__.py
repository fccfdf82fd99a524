"""``auditor.store``: snapshots and findings as Parquet files on disk.

Layout (see ``docs/store.md``)::

    STORE/snapshot_date=YYYY-MM-DD/<snapshot_id>/{status,companies,errors,...}/part-*.parquet
                                                 manifest.json   (written last)

A snapshot without ``manifest.json`` is never read. One selector picks a night for every
reader (:func:`select_snapshot`: ``latest``, ``previous``, ``YYYY-MM-DD`` or an id).
"""

from __future__ import annotations

from auditor.store._canonical import canonical
from auditor.store._findings import (
    FINDINGS_META,
    freshness_history,
    history,
    load_findings,
    prune,
    write_findings,
)
from auditor.store._fs import StoreDir, is_remote, store_root
from auditor.store._integrity import FindingsConflictError, StoreCorruptionError, StoreError
from auditor.store._layout import frame_from_tables
from auditor.store._refreshes import REFRESHES_FILE, load_refreshes, write_refreshes
from auditor.store._select import (
    PARTITION_COMPANIES,
    SNAPSHOT_SELECTORS,
    SnapshotRef,
    is_selector,
    iter_partitions,
    load_snapshot,
    partition_count,
    resolve_snapshot_dir,
    select_snapshot,
    select_snapshots,
)
from auditor.store._snapshots import (
    SnapshotNotFoundError,
    SnapshotWriter,
    StorePath,
    complete_stranded,
    list_snapshots,
    write_snapshot,
)

__all__ = [
    "FINDINGS_META",
    "PARTITION_COMPANIES",
    "REFRESHES_FILE",
    "SNAPSHOT_SELECTORS",
    "FindingsConflictError",
    "SnapshotNotFoundError",
    "SnapshotRef",
    "SnapshotWriter",
    "StoreCorruptionError",
    "StoreDir",
    "StoreError",
    "StorePath",
    "canonical",
    "complete_stranded",
    "frame_from_tables",
    "freshness_history",
    "history",
    "is_remote",
    "is_selector",
    "iter_partitions",
    "list_snapshots",
    "load_findings",
    "load_refreshes",
    "load_snapshot",
    "partition_count",
    "prune",
    "resolve_snapshot_dir",
    "select_snapshot",
    "select_snapshots",
    "store_root",
    "write_findings",
    "write_refreshes",
    "write_snapshot",
]
