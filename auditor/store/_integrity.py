"""Integrity of the store: checksums, manifest validation, corruption errors, recovery.

* Every Parquet part of a snapshot is recorded with its size and SHA-256 (``checksums`` in
  the shard records ``_shards/*.json`` and in ``manifest.json``). Readers verify a part before
  reading it; a mismatch, a missing part, an unreadable manifest (invalid JSON, wrong type,
  missing or mistyped keys) or an unreadable Parquet part raises
  :class:`StoreCorruptionError`, whose message names the file and what is wrong. Manifests
  written before checksums existed (no ``checksums`` key) stay readable: their parts are
  still checked for existence, readability and row counts.
* A snapshot whose shards have all finished (every ``_shards/sKofN.json`` present) but that
  has no manifest (a run killed between the last shard record and the manifest) is
  *completable*: :func:`auditor.store._snapshots.complete_stranded` writes its manifest from
  the shard records.

See ``docs/store.md`` ("Integrity" and "Kill points").
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]

from auditor.store._fs import (
    StoreDir,
    is_remote,
    parquet_rows,
    pop_uploaded,
    read_all,
    read_table,
)
from auditor.store._layout import MANIFEST, RUN_FILE, SHARDS_DIR, frame_from_tables, shard_key

__all__ = [
    "CHECKSUM_ALGORITHM",
    "FindingsConflictError",
    "StoreCorruptionError",
    "StoreError",
    "checksum_of",
    "checksum_of_bytes",
    "completable",
    "count_rows",
    "listing_manifest",
    "read_manifest",
    "read_parts",
    "read_record",
    "read_verified",
    "shard_checksums",
    "verify_part",
    "written_checksum",
]

CHECKSUM_ALGORITHM: Final = "sha256"
_CHUNK: Final = 1 << 20


class StoreError(Exception):
    """Base of the store's own errors (not a ValueError/OSError: never skipped as "absent")."""


class StoreCorruptionError(StoreError):
    """A file of the store is damaged: unreadable, truncated, missing or not what was written.

    ``path`` is the file; the message names it and says what is wrong.
    """

    def __init__(self, path: StoreDir | str, problem: str) -> None:
        self.path: StoreDir = Path(path) if isinstance(path, str) else path
        self.problem = problem
        super().__init__(f"store corruption: {self.path}: {problem}")


class FindingsConflictError(StoreError):
    """Storing these findings would replace the night's own audit with a different one."""


def checksum_of(path: StoreDir) -> dict[str, Any]:
    """``{"size": bytes, "sha256": hex}`` of the file at ``path``."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return {"size": size, CHECKSUM_ALGORITHM: digest.hexdigest()}


def written_checksum(path: StoreDir) -> dict[str, Any]:
    """:func:`checksum_of` a file this process has just written; for a remote file from the
    bytes it uploaded (no download back)."""
    uploaded = pop_uploaded(path)
    if uploaded is not None:
        return {"size": uploaded[0], CHECKSUM_ALGORITHM: uploaded[1]}
    return checksum_of(path)


def checksum_of_bytes(data: bytes) -> dict[str, Any]:
    """``{"size": bytes, "sha256": hex}`` of ``data``."""
    return {"size": len(data), CHECKSUM_ALGORITHM: hashlib.sha256(data).hexdigest()}


def verify_bytes(path: StoreDir, data: bytes, expected: Mapping[str, Any] | None) -> None:
    """As :func:`verify_part`, for the bytes ``data`` read from ``path`` (one download of a
    remote part serves both the check and the read)."""
    if expected is None:
        return
    want_size = expected.get("size")
    if isinstance(want_size, int) and len(data) != want_size:
        raise StoreCorruptionError(
            path,
            f"size {len(data)} bytes, the manifest recorded {want_size} (truncated or altered)",
        )
    want = expected.get(CHECKSUM_ALGORITHM)
    if isinstance(want, str):
        got = hashlib.sha256(data).hexdigest()
        if got != want:
            raise StoreCorruptionError(
                path, f"{CHECKSUM_ALGORITHM} {got[:16]}… does not match the recorded {want[:16]}…"
            )


def read_verified(
    path: StoreDir,
    expected: Mapping[str, Any] | None,
    *,
    columns: list[str] | None = None,
    read_dictionary: list[str] | None = None,
) -> pa.Table:
    """The Parquet part at ``path``, verified against ``expected`` first (see
    :func:`verify_part`); any problem is :class:`StoreCorruptionError` naming the file."""
    data: bytes | None = None
    if is_remote(path):
        try:
            data = read_all(path)
        except FileNotFoundError:
            raise StoreCorruptionError(path, "listed in the manifest but missing") from None
        verify_bytes(path, data, expected)
    else:
        verify_part(path, expected)
    try:
        return read_table(path, data=data, columns=columns, read_dictionary=read_dictionary)
    except (OSError, pa.ArrowException, ValueError) as exc:
        raise StoreCorruptionError(path, f"is not a readable Parquet file: {exc}") from None


def verify_part(path: StoreDir, expected: Mapping[str, Any] | None) -> None:
    """:class:`StoreCorruptionError` unless ``path`` exists and matches ``expected`` (size and
    SHA-256; ``None``: an old manifest without checksums, only existence is checked)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise StoreCorruptionError(path, "listed in the manifest but missing") from None
    if expected is None:
        return
    want_size = expected.get("size")
    if isinstance(want_size, int) and size != want_size:
        raise StoreCorruptionError(
            path, f"size {size} bytes, the manifest recorded {want_size} (truncated or altered)"
        )
    want = expected.get(CHECKSUM_ALGORITHM)
    if isinstance(want, str):
        got = checksum_of(path)[CHECKSUM_ALGORITHM]
        if got != want:
            raise StoreCorruptionError(
                path, f"{CHECKSUM_ALGORITHM} {got[:16]}… does not match the recorded {want[:16]}…"
            )


def read_record(path: StoreDir) -> dict[str, Any]:
    """A JSON object the store wrote (run file, shard record, manifest, findings.json);
    :class:`StoreCorruptionError` if it cannot be read as one. A missing file is an
    :class:`OSError` as usual (the caller decides whether absence is corruption)."""
    try:
        raw = read_all(path)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise StoreCorruptionError(path, f"cannot be read: {exc}") from None
    if not raw.strip():
        raise StoreCorruptionError(path, "is empty")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise StoreCorruptionError(path, "is not UTF-8 text (garbage bytes)") from None
    except json.JSONDecodeError as exc:
        raise StoreCorruptionError(path, f"is not valid JSON (truncated?): {exc}") from None
    if not isinstance(doc, dict):
        raise StoreCorruptionError(path, f"holds a JSON {type(doc).__name__}, not an object")
    return doc


def _check_relative(path: StoreDir, rel: object) -> str:
    if not isinstance(rel, str) or not rel or rel.startswith("/") or ".." in Path(rel).parts:
        raise StoreCorruptionError(path, f"lists an invalid file name {rel!r}")
    return rel


def _check_files(path: StoreDir, files: object) -> dict[str, list[str]]:
    if not isinstance(files, dict):
        raise StoreCorruptionError(path, "'files' is not an object of frame -> file list")
    out: dict[str, list[str]] = {}
    for frame, rels in files.items():
        if not isinstance(rels, list):
            raise StoreCorruptionError(path, f"'files.{frame}' is not a list")
        out[str(frame)] = [_check_relative(path, rel) for rel in rels]
    return out


def _check_checksums(path: StoreDir, checksums: object) -> dict[str, dict[str, Any]]:
    if not isinstance(checksums, dict):
        raise StoreCorruptionError(path, "'checksums' is not an object of file -> checksum")
    for rel, entry in checksums.items():
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("size"), int)
            or not isinstance(entry.get(CHECKSUM_ALGORITHM), str)
        ):
            raise StoreCorruptionError(path, f"'checksums' entry of {rel!r} is malformed")
    return checksums


def read_manifest(snapshot: StoreDir) -> dict[str, Any]:
    """The validated ``manifest.json`` of the snapshot directory ``snapshot``.

    :class:`StoreCorruptionError` for invalid JSON, a non-object, missing or mistyped keys
    (``snapshot_id``, ``snapshot_at``, ``files``, ``rows``; ``checksums`` when present), a
    ``snapshot_id`` that is not the directory's name, or a file listed without a checksum
    while others have one.
    """
    path = snapshot / MANIFEST
    doc = read_record(path)
    for key in ("snapshot_id", "snapshot_at", "files", "rows"):
        if key not in doc:
            raise StoreCorruptionError(path, f"has no {key!r}")
    if not isinstance(doc["snapshot_id"], str) or doc["snapshot_id"] != snapshot.name:
        raise StoreCorruptionError(
            path, f"'snapshot_id' {doc['snapshot_id']!r} is not the directory's {snapshot.name!r}"
        )
    try:
        at = datetime.fromisoformat(str(doc["snapshot_at"]))
    except ValueError:
        raise StoreCorruptionError(
            path, f"'snapshot_at' {doc['snapshot_at']!r} is not a time"
        ) from None
    if at.tzinfo is None:
        raise StoreCorruptionError(path, "'snapshot_at' has no time zone")
    files = _check_files(path, doc["files"])
    rows = doc["rows"]
    if not isinstance(rows, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in rows.values()
    ):
        raise StoreCorruptionError(path, "'rows' is not an object of frame -> row count")
    if "checksums" in doc:
        checksums = _check_checksums(path, doc["checksums"])
        for rels in files.values():
            for rel in rels:
                if rel not in checksums:
                    raise StoreCorruptionError(path, f"no checksum for listed file {rel!r}")
    doc["files"] = files
    return doc


def listing_manifest(snapshot: StoreDir) -> dict[str, Any]:
    """The manifest as :func:`~auditor.store.list_snapshots` shows it.

    A corrupt manifest is not hidden (hiding it would make ``latest`` silently fall back to
    the night before): the snapshot is listed as complete, from what its directory and
    ``_run.json`` say, with zero counts; reading it (:func:`read_manifest`) raises.
    """
    try:
        return read_manifest(snapshot)
    except StoreCorruptionError:
        pass
    run: dict[str, Any] = {}
    try:
        run = read_record(snapshot / RUN_FILE)
    except (OSError, StoreCorruptionError):
        run = {}
    shards = run.get("shards", 1)
    return {
        "snapshot_id": snapshot.name,
        "snapshot_date": snapshot.parent.name.split("=", 1)[1],
        "snapshot_at": run.get("snapshot_at"),
        "shards": shards if isinstance(shards, int) else 1,
        "companies": 0,
        "rows": {},
        "corrupt": True,
    }


def count_rows(files: Sequence[StoreDir]) -> int:
    """Rows in the Parquet ``files`` (from their footers); corruption names the file."""
    total = 0
    for f in files:
        try:
            total += parquet_rows(f)
        except FileNotFoundError:
            raise StoreCorruptionError(f, "missing") from None
        except (OSError, pa.ArrowException, ValueError) as exc:
            raise StoreCorruptionError(f, f"is not a readable Parquet file: {exc}") from None
    return total


def read_parts(
    snapshot: StoreDir,
    rels: Sequence[str],
    *,
    checksums: Mapping[str, Mapping[str, Any]] | None = None,
    columns: list[str] | None = None,
    dictionary: Collection[str] = (),
    expected_rows: int | None = None,
) -> pd.DataFrame:
    """The rows of the parts ``rels`` (relative to ``snapshot``), each verified first.

    ``checksums``: the manifest's (None for an old manifest). ``expected_rows``: the
    manifest's row count of the frame, checked after reading. Any problem raises
    :class:`StoreCorruptionError` naming the file.
    """
    want = list(dictionary) or None
    tables: list[pa.Table] = []
    for rel in rels:
        path = snapshot / rel
        expected = None if checksums is None else checksums.get(rel)
        tables.append(read_verified(path, expected, columns=columns, read_dictionary=want))
    rows = sum(t.num_rows for t in tables)
    if expected_rows is not None and rows != expected_rows:
        raise StoreCorruptionError(
            snapshot / MANIFEST, f"records {expected_rows} rows for {rels[0].split('/')[0]}, "
            f"its parts hold {rows}"
        )
    if not tables:
        return pd.DataFrame({c: [] for c in columns or []})
    return frame_from_tables(tables)


def completable(snapshot: StoreDir) -> bool:
    """Whether every shard of ``snapshot`` has finished but its manifest is missing (a run
    killed after the last shard record): its manifest can be written from the records."""
    if (snapshot / MANIFEST).exists() or not (snapshot / RUN_FILE).exists():
        return False
    n = read_record(snapshot / RUN_FILE).get("shards", 1)
    if not isinstance(n, int) or n < 1:
        raise StoreCorruptionError(snapshot / RUN_FILE, f"'shards' {n!r} is not a count")
    return all((snapshot / SHARDS_DIR / f"{shard_key(k, n)}.json").exists() for k in range(n))


def shard_checksums(
    snapshot: StoreDir, rels: Sequence[str], known: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Checksums of the parts ``rels``: those recorded when they were written (``known``),
    else computed now (parts written by an earlier, killed run of the shard)."""
    out: dict[str, dict[str, Any]] = {}
    for rel in rels:
        entry = known.get(rel)
        out[rel] = dict(entry) if entry is not None else checksum_of(snapshot / rel)
    return out

