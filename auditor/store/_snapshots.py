"""Writing snapshots in batches (resumable, sharded) and reading complete ones back.

A snapshot is *complete* when its ``manifest.json`` exists. The manifest lists every Parquet
file that belongs to the snapshot; readers read only those files, so anything a killed run
left behind (a part of an uncommitted batch, a temporary file) is never read.

Batches: the collector hands the writer one batch of companies at a time. The writer writes
the batch's part of each frame and the ``companies`` part LAST: a batch whose ``companies``
part exists is committed; on resume, parts of uncommitted batches are deleted and the
committed batches' company ids are skipped.

Shards: ``--shard K/N`` runs write under the same snapshot id. Each finished shard writes
``_shards/sKofN.json``; whichever shard finds all N shard files present writes the manifest.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped]
from filelock import FileLock
from upath import UPath

from auditor.snapshot import FRAME_NAMES, Snapshot
from auditor.store._fs import StoreDir, create_exclusive, ensure_dir, is_remote, store_root
from auditor.store._integrity import (
    StoreCorruptionError,
    checksum_of,
    completable,
    count_rows,
    listing_manifest,
    read_parts,
    read_record,
    read_verified,
    shard_checksums,
    written_checksum,
)
from auditor.store._layout import (
    FORMAT_VERSION,
    MANIFEST,
    RUN_FILE,
    SHARDS_DIR,
    atomic_write_json,
    check_snapshot_id,
    find_snapshot_dir,
    iter_snapshot_dirs,
    json_bytes,
    read_json,
    shard_key,
    snapshot_dir,
    utc_now,
    write_parquet,
)
from auditor.store._lock import StoreLock, check_lock, store_lock

__all__ = [
    "BATCH_FRAMES",
    "SnapshotNotFoundError",
    "SnapshotWriter",
    "complete_stranded",
    "finished_shard",
    "list_snapshots",
    "write_snapshot",
]


#: Join keys: categoricals in ``status`` (they repeat 43 times per company), strings in the
#: other frames. On disk they are plain strings in every frame (Parquet dictionary-encodes
#: the pages anyway), so DuckDB and polars join them without casts; ``load_snapshot``
#: reads them straight into categoricals where the schema says so.
PLAIN_ON_DISK: frozenset[str] = frozenset({"company_id", "company_name", "connection_id"})

log = logging.getLogger("auditor.store")

#: Frames written per batch, in write order: ``companies`` last commits the batch.
BATCH_FRAMES: tuple[str, ...] = (
    "status",
    "pull_operations",
    "errors",
    "sync_settings",
    "companies",
)
_PROFILE_SETTINGS = "profile.parquet"

#: A store: a local directory, or a URL (``s3://bucket/prefix``) or :class:`~upath.UPath`.
StorePath = str | os.PathLike[str] | UPath


class SnapshotNotFoundError(LookupError):
    """No complete snapshot matches the request."""


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("snapshot_at must be timezone-aware (UTC)")
    return value.astimezone(UTC)


@dataclass
class SnapshotWriter:
    """Writes one shard of one snapshot, batch by batch. Use :meth:`open`.

    Attributes after :meth:`open`: ``path`` (the snapshot directory), ``snapshot_id``,
    ``snapshot_at`` (the run's original time when resuming), ``done_company_ids`` (companies
    already committed by an earlier, killed run of this shard).
    """

    path: StoreDir
    snapshot_id: str
    snapshot_at: datetime
    shard: int
    shards: int
    done_company_ids: frozenset[str]
    _next_seq: int
    _lock: StoreLock
    _rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FRAME_NAMES, 0))
    _batches: int = 0
    #: Size and SHA-256 of each part this process wrote (by path relative to ``path``).
    _checksums: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def open(
        cls,
        store: StorePath,
        *,
        snapshot_id: str,
        snapshot_at: datetime,
        shard: tuple[int, int] = (0, 1),
        resume: bool = True,
    ) -> SnapshotWriter:
        """Start (or continue) writing ``snapshot_id``'s shard ``shard`` = ``(K, N)``.

        With ``resume`` (the default), an unfinished directory of the same id is continued:
        its committed batches are kept and its companies skipped. Raises :class:`ValueError`
        if the snapshot is already complete, or this shard already finished, or the shard
        count differs from the one the snapshot was started with. Takes a lock file (on an
        object store: a lease, see ``_lock``) so two processes never write the same shard.
        """
        root = store_root(store)
        check_snapshot_id(snapshot_id)
        k, n = shard
        if not (n >= 1 and 0 <= k < n):
            raise ValueError(f"invalid shard {k}/{n}: need 0 <= K < N")
        at = _utc(snapshot_at)
        existing = find_snapshot_dir(root, snapshot_id)
        path = existing if existing is not None else snapshot_dir(root, at, snapshot_id)
        ensure_dir(path)
        lock = store_lock(path / f".lock-{shard_key(k, n)}")
        lock.acquire(timeout=0)
        try:
            if (path / MANIFEST).exists():
                raise ValueError(f"snapshot {snapshot_id} is already complete")
            if (path / SHARDS_DIR / f"{shard_key(k, n)}.json").exists():
                raise ValueError(f"shard {k}/{n} of snapshot {snapshot_id} already finished")
            run_file = path / RUN_FILE
            if run_file.exists():
                run = read_record(run_file)
                if int(run.get("shards", 1)) != n:
                    raise ValueError(
                        f"snapshot {snapshot_id} was started with {run.get('shards')} shards, "
                        f"not {n}"
                    )
                at = datetime.fromisoformat(str(run["snapshot_at"]))
                if not resume and _committed_parts(path, k, n):
                    raise ValueError(
                        f"snapshot {snapshot_id} shard {k}/{n} has data already; resume it"
                    )
            else:
                atomic_write_json(
                    run_file,
                    {
                        "format": FORMAT_VERSION,
                        "snapshot_id": snapshot_id,
                        "snapshot_at": at.isoformat(),
                        "shards": n,
                        "started_at": utc_now().isoformat(),
                    },
                )
            done, next_seq = _recover(path, k, n)
        except BaseException:
            lock.release()
            raise
        if done:
            log.info(
                "resuming snapshot %s shard %d/%d: %d companies already written",
                snapshot_id,
                k,
                n,
                len(done),
            )
        return cls(
            path=path,
            snapshot_id=snapshot_id,
            snapshot_at=at,
            shard=k,
            shards=n,
            done_company_ids=frozenset(done),
            _next_seq=next_seq,
            _lock=lock,
        )

    @property
    def key(self) -> str:
        return shard_key(self.shard, self.shards)

    def write_batch(self, frames: Mapping[str, pd.DataFrame]) -> None:
        """Write one batch (frames from :data:`BATCH_FRAMES`); ``companies`` commits it."""
        check_lock(self._lock)  # a lease lost to another run: stop before writing more
        name = f"part-{self.key}-{self._next_seq:05d}.parquet"
        for frame_name in BATCH_FRAMES:
            frame = frames.get(frame_name)
            if frame is None:
                continue
            if frame_name == "sync_settings":  # company overrides; the profile is apart
                frame = frame.loc[frame["company_id"].notna()].reset_index(drop=True)
            if frame_name != "companies" and frame.empty:
                continue
            target = self.path / frame_name / name
            self._rows[frame_name] += write_parquet(target, frame, plain=PLAIN_ON_DISK)
            self._checksums[f"{frame_name}/{name}"] = written_checksum(target)
        self._next_seq += 1
        self._batches += 1

    def write_profile_settings(self, frame: pd.DataFrame) -> None:
        """The client-level sync settings (rows with null ``company_id``; one copy per
        snapshot, written by the first shard to get there). Company overrides go in batches."""
        profile = frame.loc[frame["company_id"].isna()].reset_index(drop=True)
        target = self.path / "sync_settings" / _PROFILE_SETTINGS
        if not target.exists():
            write_parquet(target, profile)
            self._checksums[f"sync_settings/{_PROFILE_SETTINGS}"] = written_checksum(target)

    def finish(self, meta: Mapping[str, Any] | None = None) -> bool:
        """Mark this shard finished; write the manifest if every shard has. True if complete."""
        try:
            check_lock(self._lock)
            files = {name: _shard_files(self.path, name, self.key) for name in FRAME_NAMES}
            rows = {name: _count_rows(f) for name, f in files.items()}
            rels = {n: [f"{n}/{p.name}" for p in f] for n, f in files.items()}
            checksums = shard_checksums(
                self.path, [r for rs in rels.values() for r in rs], self._checksums
            )
            atomic_write_json(
                self.path / SHARDS_DIR / f"{self.key}.json",
                {
                    "format": FORMAT_VERSION,
                    "shard": self.shard,
                    "shards": self.shards,
                    "snapshot_id": self.snapshot_id,
                    "finished_at": utc_now().isoformat(),
                    "files": rels,
                    "rows": rows,
                    "checksums": checksums,
                    "meta": dict(meta or {}),
                },
            )
            return _try_complete(self.path)
        finally:
            self.close()

    def close(self) -> None:
        """Release the shard's lock (without finishing)."""
        if self._lock.is_locked:
            self._lock.release()


def _parts(path: StoreDir, frame: str, key: str) -> list[StoreDir]:
    found: list[StoreDir] = list((path / frame).glob(f"part-{key}-*.parquet"))
    return sorted(found, key=lambda p: p.name)


def _committed_parts(path: StoreDir, k: int, n: int) -> list[StoreDir]:
    return _parts(path, "companies", shard_key(k, n))


def _recover(path: StoreDir, k: int, n: int) -> tuple[set[str], int]:
    """Delete what a killed run left half-written; committed company ids and next batch no."""
    key = shard_key(k, n)
    committed = {p.name for p in _committed_parts(path, k, n)}
    for frame in FRAME_NAMES:
        d = path / frame
        if not d.is_dir():
            continue
        for p in d.iterdir():
            if p.name.startswith(f".part-{key}-") and p.name.endswith(".tmp"):
                p.unlink(missing_ok=True)
            elif (
                p.name.startswith(f"part-{key}-")
                and frame in BATCH_FRAMES
                and p.name not in committed
            ):
                log.info("removing uncommitted part %s/%s", frame, p.name)
                p.unlink(missing_ok=True)
    done: set[str] = set()
    seqs = [int(name.rsplit("-", 1)[1].split(".")[0]) for name in committed]
    files = [f"companies/{name}" for name in sorted(committed)]
    if files:
        ids = read_parts(path, files, columns=["company_id"])["company_id"]
        done = set(ids.dropna().astype(str))
    return done, (max(seqs) + 1 if seqs else 0)


def _shard_files(path: StoreDir, frame: str, key: str) -> list[StoreDir]:
    parts = _parts(path, frame, key)
    if frame in BATCH_FRAMES and frame != "companies":
        committed = {p.name for p in _parts(path, "companies", key)}
        parts = [p for p in parts if p.name in committed]
    if frame == "sync_settings":
        profile = path / frame / _PROFILE_SETTINGS
        parts = ([profile] if profile.exists() else []) + parts
    return parts


def _count_rows(files: list[StoreDir]) -> int:
    return count_rows(files)


def _manifest_guard(path: StoreDir) -> contextlib.AbstractContextManager[object]:
    """Locally a lock file around writing the manifest; on an object store nothing: the
    manifest is created with a conditional PUT, so of two shards completing at once the
    first one's manifest stands (both are built from the same shard records)."""
    if is_remote(path):
        return contextlib.nullcontext()
    return FileLock(str(path / ".lock-manifest"))


def _distinct_companies(path: StoreDir, rels: list[str]) -> int:
    """The number of distinct company ids in the ``companies`` parts ``rels``, read one part
    at a time: the ids of the whole fleet are never held (1,000,000 of them as a frame cost
    the collector 0.3 GiB at the end of its run).

    Each part's distinct ids are counted, and a 64-bit hash of each is kept (8 bytes an id).
    When the hashes are all distinct, no id is in two parts and the sum is exact; otherwise
    (an id in two parts, or a hash collision) the ids are read whole and counted exactly.
    """
    total = 0
    hashes: list[np.ndarray] = []
    for rel in rels:
        column = read_verified(path / rel, None, columns=["company_id"]).column("company_id")
        distinct = column.unique().drop_null().cast(pa.string()).to_numpy(zero_copy_only=False)
        total += len(distinct)
        hashes.append(pd.util.hash_array(distinct))
    if not hashes or len(np.unique(np.concatenate(hashes))) == total:
        return total
    ids = read_parts(path, rels, columns=["company_id"])["company_id"]
    return int(ids.nunique())


def _try_complete(path: StoreDir) -> bool:
    """Write ``manifest.json`` if all shards of the snapshot in ``path`` have finished."""
    with _manifest_guard(path):
        if (path / MANIFEST).exists():
            return True
        run = read_record(path / RUN_FILE)
        n = int(run.get("shards", 1))
        shard_files = [path / SHARDS_DIR / f"{shard_key(k, n)}.json" for k in range(n)]
        if not all(p.exists() for p in shard_files):
            return False
        shard_docs = [_shard_record(p) for p in shard_files]
        files: dict[str, list[str]] = {name: [] for name in FRAME_NAMES}
        for doc in shard_docs:
            for name in FRAME_NAMES:
                for rel in doc["files"].get(name, []):
                    if rel not in files[name]:
                        files[name].append(rel)
        checksums = _verified_checksums(path, shard_docs, files)
        rows = {name: _count_rows([path / r for r in rels]) for name, rels in files.items()}
        companies = _distinct_companies(path, files["companies"])
        meta: dict[str, Any] = {}
        for doc in shard_docs:
            for k, v in dict(doc.get("meta") or {}).items():
                if isinstance(v, int | float) and not isinstance(v, bool):
                    meta[k] = meta.get(k, 0) + v
                elif (
                    isinstance(v, dict)
                    and isinstance(meta.get(k, {}), dict)
                    and all(type(n) is int for n in v.values())
                ):
                    # Counters by name (malformed_fields, skipped_records): summed too.
                    merged = dict(meta.get(k, {}))
                    for name, n in v.items():
                        merged[name] = merged.get(name, 0) + n
                    meta[k] = merged
                else:
                    meta.setdefault(k, v)
        manifest = {
            "format": FORMAT_VERSION,
            "snapshot_id": run["snapshot_id"],
            "snapshot_at": run["snapshot_at"],
            "snapshot_date": path.parent.name.split("=", 1)[1],
            "shards": n,
            "companies": companies,
            "rows": rows,
            "files": files,
            "checksums": checksums,
            "meta": meta,
            "started_at": run.get("started_at"),
            "completed_at": utc_now().isoformat(),
        }
        if is_remote(path):  # no rename there: created whole, once (the first shard wins)
            if not create_exclusive(path / MANIFEST, json_bytes(manifest)):
                log.info("snapshot %s: another shard wrote the manifest first", path.name)
        else:
            atomic_write_json(path / MANIFEST, manifest)
        return True


def _shard_record(path: StoreDir) -> dict[str, Any]:
    """A shard record, validated (its ``files`` lists are what the manifest is built from)."""
    doc = read_record(path)
    files = doc.get("files")
    if not isinstance(files, dict) or not all(isinstance(v, list) for v in files.values()):
        raise StoreCorruptionError(path, "'files' is not an object of frame -> file list")
    if "checksums" in doc and not isinstance(doc["checksums"], dict):
        raise StoreCorruptionError(path, "'checksums' is not an object")
    return doc


def _verified_checksums(
    path: StoreDir, shard_docs: list[dict[str, Any]], files: Mapping[str, list[str]]
) -> dict[str, dict[str, Any]]:
    """Checksums for the manifest: each part verified against its shard record's checksum
    (a part altered since its shard finished is corruption, not a new truth); parts of shard
    records written before checksums existed are hashed now."""
    recorded: dict[str, dict[str, Any]] = {}
    for doc in shard_docs:
        recorded.update(doc.get("checksums") or {})
    out: dict[str, dict[str, Any]] = {}
    for rel in (r for rels in files.values() for r in rels):
        part = path / rel
        if not part.exists():
            raise StoreCorruptionError(part, "listed in a shard record but missing")
        actual = checksum_of(part)
        want = recorded.get(rel)
        if want is not None and dict(want) != actual:
            raise StoreCorruptionError(
                part, f"does not match its shard record (now {actual}, recorded {dict(want)})"
            )
        out[rel] = actual
    return out


def complete_stranded(store: StorePath, snapshot_id: str | None = None) -> list[StoreDir]:
    """Write the manifest of every snapshot (or of ``snapshot_id`` only) whose shards have
    all finished but that has no manifest: a run killed after its last shard record and
    before the manifest. Returns the directories completed. Idempotent."""
    done: list[StoreDir] = []
    for path in iter_snapshot_dirs(store_root(store)):
        if snapshot_id is not None and path.name != snapshot_id:
            continue
        if completable(path) and _try_complete(path):
            log.info("completed snapshot %s from its shard records", path.name)
            done.append(path)
    return done


def finished_shard(
    store: StorePath, snapshot_id: str, shard: tuple[int, int]
) -> tuple[StoreDir, bool, dict[str, Any]] | None:
    """If shard ``(K, N)`` of ``snapshot_id`` already finished (its shard record exists) and
    the snapshot has no manifest yet: complete the snapshot if every shard has finished (a run
    killed between the last shard record and the manifest). Returns ``(path, complete, the
    shard record's meta)``; None if the shard has not finished (or the snapshot is complete,
    or absent), so it is written as usual."""
    path = find_snapshot_dir(store_root(store), snapshot_id)
    if path is None or (path / MANIFEST).exists():
        return None
    record = path / SHARDS_DIR / f"{shard_key(*shard)}.json"
    if not record.exists():
        return None
    meta = dict(_shard_record(record).get("meta") or {})
    return path, _try_complete(path), meta


def write_snapshot(store: StorePath, snapshot: Snapshot) -> StoreDir:
    """Write a whole in-memory snapshot as one batch; its directory (manifest written last)."""
    snap = snapshot.conformed()
    writer = SnapshotWriter.open(
        store, snapshot_id=snap.snapshot_id, snapshot_at=snap.snapshot_at, resume=False
    )
    try:
        if writer.done_company_ids:
            raise ValueError(f"snapshot {snap.snapshot_id} already has data in the store")
        writer.write_batch(snap.frames())
        writer.write_profile_settings(snap.sync_settings)
        meta = {k: v for k, v in snap.meta.items() if k not in _RESERVED_META}
        complete = writer.finish(meta)
    finally:
        writer.close()
    if not complete:  # pragma: no cover - single shard always completes
        raise RuntimeError("snapshot did not complete")
    return writer.path


_RESERVED_META = frozenset({"snapshot_id", "snapshot_at", "files", "rows", "shards"})


def _manifest_row(path: StoreDir) -> dict[str, Any]:
    manifest = path / MANIFEST
    if manifest.exists():
        doc = listing_manifest(path)  # a corrupt manifest is listed (and raises on load)
        rows = doc.get("rows", {})
        return {
            "snapshot_id": doc["snapshot_id"],
            "snapshot_date": doc.get("snapshot_date", path.parent.name.split("=", 1)[1]),
            "snapshot_at": doc["snapshot_at"],
            "complete": True,
            "shards": int(doc.get("shards", 1)),
            "shards_done": int(doc.get("shards", 1)),
            "companies": int(doc.get("companies", 0)),
            "status_rows": int(rows.get("status", 0)),
            "errors": int(rows.get("errors", 0)),
            "has_findings": (path / "findings.parquet").exists(),
            "path": str(path),
        }
    run = read_json(path / RUN_FILE) if (path / RUN_FILE).exists() else {}
    shards_dir = path / SHARDS_DIR
    return {
        "snapshot_id": run.get("snapshot_id", path.name),
        "snapshot_date": path.parent.name.split("=", 1)[1],
        "snapshot_at": run.get("snapshot_at"),
        "complete": False,
        "shards": int(run.get("shards", 1)),
        "shards_done": len(list(shards_dir.glob("*.json"))) if shards_dir.is_dir() else 0,
        "companies": None,
        "status_rows": None,
        "errors": None,
        "has_findings": False,
        "path": str(path),
    }


_LIST_COLUMNS = (
    "snapshot_id",
    "snapshot_date",
    "snapshot_at",
    "complete",
    "shards",
    "shards_done",
    "companies",
    "status_rows",
    "errors",
    "has_findings",
    "path",
)


def list_snapshots(store: StorePath, *, include_incomplete: bool = True) -> pd.DataFrame:
    """Every snapshot in the store, oldest first.

    Columns: ``snapshot_id, snapshot_date, snapshot_at, complete, shards, shards_done,
    companies, status_rows, errors, has_findings, path``. Incomplete snapshots (a run in
    progress or killed) have ``complete`` false and null counts.
    """
    rows = []
    for path in iter_snapshot_dirs(store_root(store)):
        with contextlib.suppress(OSError, ValueError, KeyError):
            row = _manifest_row(path)
            if row["complete"] or include_incomplete:
                rows.append(row)
    frame = pd.DataFrame(rows, columns=list(_LIST_COLUMNS))
    frame["snapshot_at"] = pd.to_datetime(frame["snapshot_at"], utc=True, format="ISO8601")
    for col in ("companies", "status_rows", "errors", "shards", "shards_done"):
        frame[col] = frame[col].astype("Int64")
    for col in ("complete", "has_findings"):
        frame[col] = frame[col].astype("bool")
    for col in ("snapshot_id", "snapshot_date", "path"):
        frame[col] = frame[col].astype("string")
    return frame.sort_values(["snapshot_at", "snapshot_id"], kind="stable").reset_index(drop=True)
