"""``auditor.collector``: snapshot a whole fleet of companies into snapshot frames.

* :func:`collect` (async) / :func:`collect_sync`: an in-memory :class:`~auditor.snapshot.Snapshot`;
* :func:`collect_to_store`: batch by batch into a store, resumable after a kill, shardable
  across machines (``shard=(K, N)``).
"""

from __future__ import annotations

from auditor.collector._collect import (
    DEFAULT_COMPANY_SETTINGS_EVERY_DAYS,
    CollectClient,
    StoreRun,
    collect,
    collect_sync,
    collect_to_store,
    default_snapshot_id,
    parse_shard,
    reads_settings_tonight,
    settings_day_of,
    shard_of,
)
from auditor.collector._frames import (
    BatchBuilder,
    ErrorRow,
    KnownPullOperations,
    KnownSettings,
    KnownSyncSettings,
    choose_connections,
    known_pull_operations,
    known_sync_settings,
)
from auditor.collector._progress import CollectStats, ProgressMode
from auditor.collector._transport import TransportName, collector_transport

__all__ = [
    "DEFAULT_COMPANY_SETTINGS_EVERY_DAYS",
    "BatchBuilder",
    "CollectClient",
    "CollectStats",
    "ErrorRow",
    "KnownPullOperations",
    "KnownSettings",
    "KnownSyncSettings",
    "ProgressMode",
    "StoreRun",
    "TransportName",
    "choose_connections",
    "collect",
    "collect_sync",
    "collect_to_store",
    "collector_transport",
    "default_snapshot_id",
    "known_pull_operations",
    "known_sync_settings",
    "parse_shard",
    "reads_settings_tonight",
    "settings_day_of",
    "shard_of",
]
