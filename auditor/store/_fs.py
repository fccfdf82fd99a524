"""Where the store's bytes go: a local directory or an object store (S3, GCS, Azure, ...).

Every read and write of the store goes through this module (and ``_lock``). A store is
either a local directory (a :class:`pathlib.Path`: everything works exactly as it always
has: temporary file, ``fsync``, atomic rename) or a URL such as ``s3://bucket/prefix``
(``gs://``, ``az://``, ``abfs://``, ``memory://``: any fsspec filesystem), represented by a
:class:`upath.UPath` over the fsspec filesystem (``s3fs`` for S3).

Object stores have no rename, but a single PUT is atomic: an object is visible whole or not
at all (a multipart upload becomes visible only when completed). So a remote file is written
in one PUT of its final bytes, never to a temporary name; the commit order (parts first,
the manifest last) is what makes a night visible, as it is locally. Listings are never
cached (``use_listings_cache=False``): another process's writes are seen at once (S3 is
strongly consistent for reads and listings since December 2020).

Credentials and endpoint come the standard way, read by botocore itself: ``AWS_ENDPOINT_URL``
(MinIO, a test server), ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_DEFAULT_REGION`` (or a profile, an instance role, IRSA on EKS). Nothing here logs or
stores them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, TypeAlias

import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]
import pyarrow.parquet as pq  # type: ignore[import-untyped,unused-ignore]
from upath import UPath

from auditor.logs import register_secret

__all__ = [
    "StoreDir",
    "create_exclusive",
    "ensure_dir",
    "is_remote",
    "list_dirs",
    "parquet_rows",
    "pop_uploaded",
    "read_all",
    "read_table",
    "remove_tree",
    "store_root",
    "write_bytes",
    "write_table",
]

#: Credentials the object stores' SDKs read (looked up here only to keep them out of logs).
_SECRET_VARS: Final = (
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AZURE_STORAGE_KEY",
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_CLIENT_SECRET",
)

#: A store directory, or a directory/file inside one: local, or on an object store.
StoreDir: TypeAlias = Path | UPath

# A URL scheme (two letters at least, so a Windows drive "C:" is a path); ``file`` stays local.
_URL: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+)://")
# What pathlib makes of a URL ("s3://b/p" -> "s3:/b/p"): repaired, so a URL that went
# through Path() somewhere (a typer Path option, a config value) still names the bucket.
_MANGLED: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):/(?!/)")


def store_root(store: str | os.PathLike[str] | UPath) -> StoreDir:
    """The store at ``store``: a local :class:`~pathlib.Path`, or a :class:`~upath.UPath`
    for a URL (``s3://bucket/prefix``; ``file://`` is local)."""
    if isinstance(store, UPath) and not isinstance(store, Path):
        return store
    text = os.fspath(store) if isinstance(store, os.PathLike) else str(store)
    if isinstance(store, Path):
        text = _MANGLED.sub(r"\1://", text)
    match = _URL.match(text)
    if match is None:
        return Path(text)
    if match.group(1).lower() == "file":
        return Path(text[len(match.group(0)) :] or "/")
    # The SDK reads these itself; registered so that no log line (ours, or a library's
    # debug output) can ever show them.
    for name in _SECRET_VARS:
        register_secret(os.environ.get(name))
    return UPath(text.rstrip("/"), use_listings_cache=False)


def is_remote(path: StoreDir) -> bool:
    """Whether ``path`` is on an object store (not a local file system)."""
    return not isinstance(path, Path)


#: SHA-256 and size of the remote files this process uploaded last (by URL), so that the
#: writer records a part's checksum from the bytes it sent instead of downloading it again.
_UPLOADED: dict[str, tuple[int, str]] = {}
_UPLOADED_MAX: Final = 256


def _uploaded(path: UPath, data: bytes) -> None:
    if len(_UPLOADED) >= _UPLOADED_MAX:
        _UPLOADED.pop(next(iter(_UPLOADED)))
    _UPLOADED[str(path)] = (len(data), hashlib.sha256(data).hexdigest())


def pop_uploaded(path: StoreDir) -> tuple[int, str] | None:
    """``(size, sha256)`` of the bytes this process last uploaded to ``path`` (once); None
    for a local path or a file it did not write."""
    return None if isinstance(path, Path) else _UPLOADED.pop(str(path), None)


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def ensure_dir(path: StoreDir) -> None:
    """Create the local directory ``path`` (with parents). Object stores have no directories
    (a prefix exists once an object is under it): nothing to do, and no bucket is created."""
    if isinstance(path, Path):
        path.mkdir(parents=True, exist_ok=True)


def write_bytes(path: StoreDir, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the whole file or none of it: locally
    a temporary file, ``fsync`` and an atomic rename; remotely one PUT of the final bytes."""
    if isinstance(path, Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _tmp_name(path)
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return
    path.fs.pipe_file(path.path, data)
    _uploaded(path, data)


def create_exclusive(path: StoreDir, data: bytes) -> bool:
    """Write ``data`` to ``path`` only if no such file exists; False if one does.

    Locally ``O_CREAT | O_EXCL`` (the file appears whole: written to a temporary name and
    hard-linked into place); on S3 a conditional PUT (``If-None-Match: *``, AWS S3 since
    2024, MinIO, moto); other object stores use their fsspec backend's ``mode="create"``.
    """
    if isinstance(path, Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _tmp_name(path)
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)
        return True
    try:
        path.fs.pipe_file(path.path, data, mode="create")
    except FileExistsError:
        return False
    return True


def write_table(path: StoreDir, table: pa.Table, **options: Any) -> None:
    """Write the Arrow ``table`` as Parquet to ``path`` (whole file or none, as
    :func:`write_bytes`); ``options`` go to :func:`pyarrow.parquet.write_table`."""
    if isinstance(path, Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _tmp_name(path)
        pq.write_table(table, tmp, **options)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **options)
    data = sink.getvalue().to_pybytes()
    path.fs.pipe_file(path.path, data)
    _uploaded(path, data)


def read_table(
    path: StoreDir,
    *,
    data: bytes | None = None,
    columns: list[str] | None = None,
    read_dictionary: list[str] | None = None,
) -> pa.Table:
    """The Parquet file at ``path`` as an Arrow table (from ``data``, its bytes, when the
    caller already holds them: one download per remote part, verified and parsed)."""
    if data is not None:
        source: Any = pa.BufferReader(data)
    elif isinstance(path, Path):
        source = path
    else:
        return pq.read_table(
            path.path, filesystem=path.fs, columns=columns, read_dictionary=read_dictionary
        )
    return pq.read_table(source, columns=columns, read_dictionary=read_dictionary)


def parquet_rows(path: StoreDir) -> int:
    """Rows in the Parquet file at ``path``, from its footer (remotely: ranged reads)."""
    if isinstance(path, Path):
        return int(pq.ParquetFile(path).metadata.num_rows)
    with path.open("rb") as fh:
        return int(pq.ParquetFile(fh).metadata.num_rows)


def list_dirs(path: StoreDir) -> list[StoreDir]:
    """The sub-directories of ``path``, by name (one listing request on an object store)."""
    if isinstance(path, Path):
        if not path.is_dir():
            return []
        return sorted(p for p in path.iterdir() if p.is_dir())
    try:
        entries: list[Mapping[str, Any]] = path.fs.ls(path.path, detail=True)
    except FileNotFoundError:
        return []
    names = sorted(
        str(e["name"]).rstrip("/").rsplit("/", 1)[-1]
        for e in entries
        if e.get("type") == "directory"
    )
    return [path / name for name in names if name]


def remove_tree(path: StoreDir) -> None:
    """Delete ``path`` and everything under it (missing: nothing to do)."""
    if isinstance(path, Path):
        shutil.rmtree(path, ignore_errors=True)
        return
    with contextlib.suppress(FileNotFoundError):
        path.fs.rm(path.path, recursive=True)


def read_all(path: StoreDir) -> bytes:
    """The bytes of the file at ``path`` (:class:`FileNotFoundError` if it is absent)."""
    if isinstance(path, Path):
        with open(path, "rb") as fh:
            return fh.read()
    return bytes(path.fs.cat_file(path.path))
