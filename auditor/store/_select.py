"""Picking one night: the one selector every reader of the store uses.

``which`` is ``"latest"``, ``"previous"`` (the one before the latest), a date ``YYYY-MM-DD``
(the latest snapshot of that day) or a snapshot id. Only complete snapshots (those with a
manifest) are ever selected; ``audited=True`` narrows the choice to snapshots with stored
findings, ``before`` to snapshots older than a given snapshot id.

The Python API (:func:`auditor.load_snapshot`, :func:`auditor.load_findings`), the pipeline
and every CLI option ``--snapshot`` go through :func:`select_snapshot`, so
``auditor audit --snapshot previous`` and ``auditor.load_snapshot(store, "previous")`` pick
the same night.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import pandas as pd

from auditor.snapshot import FRAME_NAMES, SCHEMAS, Snapshot
from auditor.store._canonical import canonical
from auditor.store._fs import StoreDir, store_root
from auditor.store._integrity import StoreCorruptionError, count_rows, read_manifest, read_parts
from auditor.store._layout import (
    MANIFEST,
    check_snapshot_id,
    iter_snapshot_dirs,
)
from auditor.store._snapshots import SnapshotNotFoundError, StorePath, list_snapshots

__all__ = [
    "PARTITION_COMPANIES",
    "SNAPSHOT_SELECTORS",
    "SnapshotRef",
    "is_selector",
    "iter_partitions",
    "load_snapshot",
    "partition_count",
    "resolve_snapshot_dir",
    "select_snapshot",
    "select_snapshots",
]

#: What ``which`` may be, for help texts and error messages.
SNAPSHOT_SELECTORS: Final = "latest, previous, a date YYYY-MM-DD or a snapshot id"

_DATE: Final = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SHOWN: Final = 5  # snapshot ids listed in an error message


@dataclass(frozen=True)
class SnapshotRef:
    """A complete snapshot in a store, as :func:`select_snapshot` found it."""

    snapshot_id: str
    snapshot_date: str
    snapshot_at: datetime
    path: StoreDir
    has_findings: bool


def is_selector(which: str) -> bool:
    """Whether ``which`` is a valid selector (a keyword, a date, or a valid snapshot id)."""
    if which in ("latest", "previous") or _DATE.match(which):
        return True
    try:
        check_snapshot_id(which)
    except ValueError:
        return False
    return True


def _candidates(store: StorePath, *, audited: bool, before: str | None) -> pd.DataFrame:
    """Complete snapshots (oldest first), narrowed by ``audited`` and ``before``."""
    snaps = list_snapshots(store, include_incomplete=False)
    if before is not None:
        match = snaps.index[snaps["snapshot_id"] == before]
        if len(match):
            snaps = snaps.loc[snaps.index < match[0]]
    if audited:
        snaps = snaps.loc[snaps["has_findings"]]
    return snaps.reset_index(drop=True)


def _ref(row: pd.Series) -> SnapshotRef:
    return SnapshotRef(
        snapshot_id=str(row["snapshot_id"]),
        snapshot_date=str(row["snapshot_date"]),
        snapshot_at=pd.Timestamp(row["snapshot_at"]).to_pydatetime(),
        path=store_root(str(row["path"])),
        has_findings=bool(row["has_findings"]),
    )


def select_snapshots(
    store: StorePath, *, audited: bool = False, before: str | None = None
) -> list[SnapshotRef]:
    """Every complete snapshot :func:`select_snapshot` could pick with these filters, oldest
    first (``"latest"`` is the last one)."""
    snaps = _candidates(store, audited=audited, before=before)
    return [_ref(row) for _, row in snaps.iterrows()]


def _what(audited: bool, before: str | None) -> str:
    what = "audited snapshot" if audited else "complete snapshot"
    return f"{what} before {before}" if before is not None else what


def _not_found(
    store: StorePath, which: str, snaps: pd.DataFrame, *, audited: bool, before: str | None
) -> SnapshotNotFoundError:
    what = _what(audited, before)
    if snaps.empty:
        if which in ("latest", "previous"):
            return SnapshotNotFoundError(f"no {what} in {store}")
        return SnapshotNotFoundError(f"no {what} {which!r} in {store}: there is none")
    ids = snaps["snapshot_id"].astype(str).tolist()
    shown = ", ".join(ids[-_SHOWN:])
    more = f" (and {len(ids) - _SHOWN} older)" if len(ids) > _SHOWN else ""
    there = f"{len(ids)} {what}{'s' if len(ids) != 1 else ''}: {shown}{more}"
    if which == "previous":
        return SnapshotNotFoundError(f"no {what} before the latest one in {store}; {there}")
    return SnapshotNotFoundError(f"no {what} {which!r} in {store}; {there}")


def select_snapshot(
    store: StorePath,
    which: str = "latest",
    *,
    audited: bool = False,
    before: str | None = None,
) -> SnapshotRef:
    """The complete snapshot of ``store`` that ``which`` names.

    ``which``: ``"latest"``, ``"previous"`` (the one before the latest), a date
    ``YYYY-MM-DD`` (the latest snapshot of that day; dates are the store's UTC dates) or a
    snapshot id. ``audited``: only snapshots whose findings are stored count (``"latest"``
    is then the most recent audit). ``before``: a snapshot id; only snapshots older than it
    count (ignored when the store has no complete snapshot of that id).

    Raises :class:`SnapshotNotFoundError` (a :class:`LookupError`) naming what the store
    holds when nothing matches, or saying so when the snapshot exists but is not complete
    yet; :class:`ValueError` when ``which`` is not a valid selector.
    """
    if not is_selector(which):
        raise ValueError(f"invalid snapshot {which!r}: use {SNAPSHOT_SELECTORS}")
    snaps = _candidates(store, audited=audited, before=before)
    row: pd.Series | None = None
    if which == "latest":
        row = snaps.iloc[-1] if len(snaps) else None
    elif which == "previous":
        row = snaps.iloc[-2] if len(snaps) >= 2 else None
    else:
        match = snaps.loc[snaps["snapshot_id"] == which]
        if match.empty and _DATE.match(which):
            match = snaps.loc[snaps["snapshot_date"] == which]
        row = match.iloc[-1] if len(match) else None
    if row is None:
        if which not in ("latest", "previous"):
            _raise_if_incomplete(store, which, audited=audited)
        raise _not_found(store, which, snaps, audited=audited, before=before)
    return _ref(row)


def _raise_if_incomplete(store: StorePath, which: str, *, audited: bool) -> None:
    """A clearer message for a snapshot that exists but cannot be read (yet)."""
    for path in iter_snapshot_dirs(store_root(store)):
        if path.name != which:
            continue
        if not (path / MANIFEST).exists():
            raise SnapshotNotFoundError(f"snapshot {which} is not complete (no manifest yet)")
        if audited and not (path / "findings.parquet").exists():
            raise SnapshotNotFoundError(f"snapshot {which} has not been audited yet")


def resolve_snapshot_dir(
    store: StorePath, which: str = "latest", *, before: str | None = None
) -> StoreDir:
    """The directory of the complete snapshot ``which`` names (see :func:`select_snapshot`)."""
    return select_snapshot(store, which, before=before).path


def load_snapshot(
    store: StorePath,
    which: str = "latest",
    *,
    frames: Sequence[str] = FRAME_NAMES,
) -> Snapshot:
    """A complete snapshot from the store (``which``: see :func:`select_snapshot`).

    This is the one place where stored frames are conformed to their schemas: only files
    listed in the manifest are read, and frames come back in canonical form (schema dtypes,
    sorted categories, rows in the order written), so nothing downstream converts them
    again. ``frames`` limits what is read (the others are empty). ``meta`` is the manifest.
    """
    unknown = sorted(set(frames) - set(FRAME_NAMES))
    if unknown:
        raise ValueError(f"unknown frame(s) {unknown}; choose from {list(FRAME_NAMES)}")
    path = select_snapshot(store, which).path
    manifest = read_manifest(path)  # validated: a corrupt night raises, never falls back
    out: dict[str, pd.DataFrame] = {}
    for name in frames:
        files = manifest["files"].get(name, [])
        schema = SCHEMAS[name]
        dictionary = [c for c, kind in schema.items() if kind == "category"]
        raw = (
            read_parts(  # each part checked: present, size, sha256, readable, row count
                path,
                files,
                checksums=manifest.get("checksums"),
                dictionary=dictionary,
                expected_rows=manifest["rows"].get(name),
            )
            if files
            else pd.DataFrame({c: [] for c in schema})
        )
        out[name] = canonical(raw, schema)
    return Snapshot(
        snapshot_id=str(manifest["snapshot_id"]),
        snapshot_at=datetime.fromisoformat(str(manifest["snapshot_at"])).astimezone(UTC),
        meta=manifest,
        **out,
    )


#: Companies per partition :func:`iter_partitions` aims at (whole batches are never split).
PARTITION_COMPANIES: Final = 25_000

#: Frames read per partition; the others (``companies``, ``errors``: one row per company at
#: most, and problems) are small enough to read whole for the fleet-level steps.
_PART_FRAMES: Final = ("status", "pull_operations", "errors", "sync_settings", "companies")


def _batch_of(rel: str) -> str:
    """``status/part-s0of1-00003.parquet`` -> ``part-s0of1-00003.parquet`` (the batch)."""
    return rel.rsplit("/", 1)[-1]


def _groups(path: StoreDir, manifest: dict[str, object], companies: int) -> list[list[str]]:
    """The batches of the snapshot in ``path`` (part names), in written order, grouped into
    runs of about ``companies`` companies (a batch is never split)."""
    files = manifest["files"]
    assert isinstance(files, dict)
    batches = [_batch_of(r) for r in files.get("companies", [])]
    known = set(batches)
    for name in _PART_FRAMES:
        for rel in files.get(name, []):
            if name == "sync_settings" and not _batch_of(rel).startswith("part-"):
                continue  # the client-level profile: in every partition
            if _batch_of(rel) not in known:
                raise StoreCorruptionError(
                    path / MANIFEST, f"lists {rel}, which belongs to no batch of companies"
                )
    out: list[list[str]] = []
    size = 0
    for batch in batches:
        n = count_rows([path / "companies" / batch])
        if out and size + n <= companies:
            out[-1].append(batch)
            size += n
        else:
            out.append([batch])
            size = n
    return out


def partition_count(
    store: StorePath, which: str = "latest", *, companies: int = PARTITION_COMPANIES
) -> int:
    """How many partitions :func:`iter_partitions` gives for this snapshot."""
    path = select_snapshot(store, which).path
    return len(_groups(path, read_manifest(path), companies))


def iter_partitions(
    store: StorePath, which: str = "latest", *, companies: int = PARTITION_COMPANIES
) -> Iterator[Snapshot]:
    """The snapshot ``which`` names, one company-complete partition at a time.

    Each partition is a run of the batches the collector wrote (about ``companies`` companies;
    a batch is never split), read and conformed exactly as :func:`load_snapshot` reads the
    whole snapshot, with what :meth:`Snapshot.partition` keeps in every partition: the
    client-level sync settings and the fleet-wide collection errors (``company_id`` null).
    Only one partition is in memory at a time (drop it before taking the next), so the peak
    does not grow with the fleet. Every part is verified (size, SHA-256, readable) as it is
    read; the row counts of the whole snapshot are checked when the last partition has been
    given. A company is in one batch only (the writer skips committed companies on resume),
    so partitions are company-complete; callers that must be sure check that no company id
    comes twice (the audit does).
    """
    path = select_snapshot(store, which).path
    manifest = read_manifest(path)
    files: dict[str, list[str]] = manifest["files"]
    checksums = manifest.get("checksums")
    groups = _groups(path, manifest, companies)
    fleet_errors = _read_frame(path, files.get("errors", []), "errors", checksums)
    fleet_errors = fleet_errors.loc[fleet_errors["company_id"].isna()].reset_index(drop=True)
    profile = [r for r in files.get("sync_settings", []) if not _batch_of(r).startswith("part-")]
    rows = dict.fromkeys(_PART_FRAMES, 0)
    at = datetime.fromisoformat(str(manifest["snapshot_at"])).astimezone(UTC)
    for group in groups:
        batch = set(group)
        out: dict[str, pd.DataFrame] = {}
        for name in _PART_FRAMES:
            rels = [r for r in files.get(name, []) if _batch_of(r) in batch]
            rows[name] += count_rows([path / r for r in rels]) if rels else 0
            if name == "sync_settings":
                rels = profile + rels
            frame = _read_frame(path, rels, name, checksums)
            if name == "errors":
                frame = pd.concat(
                    [frame.loc[frame["company_id"].notna()], fleet_errors], ignore_index=True
                )
                frame = canonical(frame, SCHEMAS[name])
            out[name] = frame
        yield Snapshot(snapshot_id=str(manifest["snapshot_id"]), snapshot_at=at, meta=manifest,
                       **out)
    rows["sync_settings"] += count_rows([path / r for r in profile]) if profile else 0
    for name, n in rows.items():
        want = manifest["rows"].get(name)
        if want is not None and int(want) != n:
            raise StoreCorruptionError(
                path / MANIFEST, f"records {want} rows for {name}, its parts hold {n}"
            )


def _read_frame(
    path: StoreDir, rels: list[str], name: str, checksums: object
) -> pd.DataFrame:
    """One frame of the parts ``rels``, verified and in canonical form (as load_snapshot)."""
    schema = SCHEMAS[name]
    dictionary = [c for c, kind in schema.items() if kind == "category"]
    raw = (
        read_parts(
            path,
            rels,
            checksums=checksums if isinstance(checksums, dict) else None,
            dictionary=dictionary,
        )
        if rels
        else pd.DataFrame({c: [] for c in schema})
    )
    return canonical(raw, schema)
