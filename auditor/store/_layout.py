"""Where things live in a store, and the small file primitives everything else uses.

::

    STORE/
      snapshot_date=YYYY-MM-DD/
        <snapshot_id>/
          _run.json                     the run's identity (id, snapshot_at, shard count)
          status/part-s0of1-00000.parquet   one part per frame per batch
          companies/part-s0of1-00000.parquet  (written last in a batch: the batch commit)
          errors/part-...               pull_operations/part-...
          sync_settings/profile.parquet     client-level settings (one copy per snapshot)
          sync_settings/part-...            company overrides, if collected
          _shards/s0of1.json            one per finished shard
          manifest.json                 written LAST (atomic rename): the snapshot is complete
          findings.parquet, resolved.parquet, findings.json   written by the audit

Every file is written to a temporary name in the same directory and renamed into place, so a
reader sees either the whole file or no file (on an object store: one PUT of the final bytes,
see ``_fs``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Any, Final

import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]

from auditor.store._fs import StoreDir, list_dirs, read_all, read_table, write_bytes, write_table

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST",
    "RUN_FILE",
    "SHARDS_DIR",
    "atomic_write_bytes",
    "atomic_write_json",
    "check_snapshot_id",
    "find_snapshot_dir",
    "frame_from_tables",
    "iter_snapshot_dirs",
    "json_bytes",
    "read_json",
    "read_parquet_files",
    "shard_key",
    "snapshot_dir",
    "write_parquet",
]

FORMAT_VERSION: Final = 1
MANIFEST: Final = "manifest.json"
RUN_FILE: Final = "_run.json"
SHARDS_DIR: Final = "_shards"
_DATE_PREFIX: Final = "snapshot_date="
_ID_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_snapshot_id(snapshot_id: str) -> str:
    """``snapshot_id`` if it is a safe directory name, else :class:`ValueError`."""
    if not _ID_RE.match(snapshot_id) or ".." in snapshot_id:
        raise ValueError(
            f"invalid snapshot id {snapshot_id!r}: use letters, digits, '.', '_' and '-' "
            "(at most 128 characters, not starting with a punctuation mark)"
        )
    return snapshot_id


def snapshot_dir(store: StoreDir, snapshot_at: datetime, snapshot_id: str) -> StoreDir:
    """``STORE/snapshot_date=YYYY-MM-DD/<snapshot_id>`` for a snapshot taken at ``snapshot_at``."""
    day = snapshot_at.astimezone(UTC).date().isoformat()
    return store / f"{_DATE_PREFIX}{day}" / check_snapshot_id(snapshot_id)


def iter_snapshot_dirs(store: StoreDir) -> list[StoreDir]:
    """Every snapshot directory in the store (complete or not), by date then name."""
    out: list[StoreDir] = []
    for day in list_dirs(store):
        if day.name.startswith(_DATE_PREFIX):
            out.extend(list_dirs(day))
    return out


def find_snapshot_dir(store: StoreDir, snapshot_id: str) -> StoreDir | None:
    """The directory of ``snapshot_id`` under any date, or None."""
    check_snapshot_id(snapshot_id)
    for path in iter_snapshot_dirs(store):
        if path.name == snapshot_id:
            return path
    return None


def shard_key(shard: int, shards: int) -> str:
    """The name part that identifies one shard's files: ``s0of1``."""
    return f"s{shard}of{shards}"


def atomic_write_bytes(path: StoreDir, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and an atomic rename (remotely: one
    PUT)."""
    write_bytes(path, data)


def json_bytes(payload: Mapping[str, Any]) -> bytes:
    """``payload`` as the store writes JSON: indented, one trailing newline."""
    return (json.dumps(payload, indent=2, default=str) + "\n").encode()


def atomic_write_json(path: StoreDir, payload: Mapping[str, Any]) -> None:
    """Write ``payload`` as indented JSON, atomically."""
    atomic_write_bytes(path, json_bytes(payload))


def read_json(path: StoreDir) -> dict[str, Any]:
    """A JSON object from ``path``."""
    data = json.loads(read_all(path).decode("utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    return data


def write_parquet(path: StoreDir, frame: pd.DataFrame, *, plain: Collection[str] = ()) -> int:
    """Write ``frame`` (no index) to ``path`` atomically; the number of rows written.

    Categorical columns named in ``plain`` are written as plain strings (Parquet still
    dictionary-encodes their pages, so the file is as small): other tools then see them as
    ``VARCHAR`` / ``str`` and can join them with string columns; read them back as
    categoricals with ``read_parquet_files(..., dictionary=...)``.
    """
    table = pa.Table.from_pandas(frame, preserve_index=False)
    decode = [
        i for i, f in enumerate(table.schema) if f.name in plain and pa.types.is_dictionary(f.type)
    ]
    for i in decode:
        name = table.schema.field(i).name
        table = table.set_column(i, name, table.column(i).cast(pa.string()))
    if decode:
        table = table.replace_schema_metadata(None)
    # Microsecond timestamps: what every Parquet reader understands (Codat's 7th fractional
    # digit is below what the client keeps anyway).
    write_table(
        path, table, compression="zstd", coerce_timestamps="us", allow_truncated_timestamps=True
    )
    return len(frame)


def read_parquet_files(
    files: list[StoreDir], columns: list[str] | None = None, *, dictionary: Collection[str] = ()
) -> pd.DataFrame:
    """The rows of ``files`` concatenated, in order (strings as pandas strings; the string
    columns named in ``dictionary`` as categoricals, built from Parquet's own dictionary
    pages without decoding every value)."""
    want = list(dictionary)
    tables = [read_table(f, columns=columns, read_dictionary=want or None) for f in files]
    if not tables:
        return pd.DataFrame({c: [] for c in columns or []})
    return frame_from_tables(tables)


def frame_from_tables(tables: list[pa.Table]) -> pd.DataFrame:
    """Arrow tables (same columns) as one DataFrame, in order, without a second copy.

    String columns stay Arrow-backed (pandas' ``string[pyarrow]``, zero-copy) and the tables
    are released as they are converted, so the peak is about one copy of the data.
    """
    same = [t.replace_schema_metadata(None) for t in _dictionaries_alike(tables)]
    tables.clear()
    table = pa.concat_tables(same, promote_options="default").unify_dictionaries()
    del same
    pool = pa.default_memory_pool()
    pool.release_unused()
    frame: pd.DataFrame = table.to_pandas(
        types_mapper=_types_mapper, self_destruct=True, split_blocks=True
    )
    del table
    # Hand the Arrow buffers freed by self_destruct back to the system now (mimalloc and
    # jemalloc keep them otherwise): for 4.3 million status rows that is a few hundred MB.
    pool.release_unused()
    return frame


_INDEX_TYPES: Final = (pa.int8(), pa.int16(), pa.int32())


def _dictionaries_alike(tables: list[pa.Table]) -> list[pa.Table]:
    """Dictionary columns with one index type across ``tables``, wide enough for the union
    of their dictionaries (so they concatenate and unify; categoricals stay categoricals,
    no string decoding). A column already alike and wide enough is left as it is: casting
    4.3 million int8 indices to int32 would cost 13 MB per column."""
    if not tables:
        return tables
    want: dict[str, pa.DataType] = {}
    names = dict.fromkeys(
        f.name for t in tables for f in t.schema if pa.types.is_dictionary(f.type)
    )
    for name in names:
        chunks = [t.column(name) for t in tables if name in t.column_names]
        if not all(pa.types.is_dictionary(col.type) for col in chunks):
            want[name] = pa.dictionary(pa.int32(), pa.string())
            continue
        dicts = [c.dictionary.cast(pa.string()) for col in chunks for c in col.chunks]
        distinct = len(pa.chunked_array(dicts, pa.string()).unique()) if dicts else 0
        kinds = {col.type.index_type for col in chunks}
        fits = [t for t in _INDEX_TYPES if distinct < 2 ** (t.bit_width - 1)]
        index = fits[0] if fits else pa.int64()
        if len(kinds) == 1 and all(pa.types.is_string(col.type.value_type) for col in chunks):
            only = next(iter(kinds))
            if only.bit_width >= index.bit_width:
                continue  # already alike and wide enough
        want[name] = pa.dictionary(index, pa.string())
    if not want:
        return tables
    out = []
    for t in tables:
        schema = pa.schema([pa.field(f.name, want.get(f.name, f.type)) for f in t.schema])
        out.append(t.cast(schema) if schema != t.schema else t)
    return out


def _types_mapper(t: pa.DataType) -> Any:
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return pd.StringDtype("pyarrow")
    return None


def utc_now() -> datetime:
    """The wall clock, UTC (only for bookkeeping fields such as ``written_at``)."""
    return datetime.now(UTC)
