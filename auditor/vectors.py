"""Vectorised helpers on pandas/pyarrow columns, shared by the rules, the engine, the API and
the ledger.

Nothing here knows about rules or findings: these are column operations (look-ups, membership,
text, formatting, ages) written to stay cheap on millions of rows (categoricals are handled by
their codes, strings by pyarrow kernels). The rule contract itself is :mod:`auditor.rules._base`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]

__all__ = [
    "as_utc_timestamp",
    "concat",
    "fmt_hours",
    "fmt_ts",
    "hours_since",
    "isin",
    "map_values",
    "text",
]


def map_values(keys: pd.Series, mapping: Mapping[Any, Any], default: Any = np.nan) -> pd.Series:
    """``keys.map(mapping)`` computed once per distinct key (categoricals stay cheap)."""
    codes, uniques = pd.factorize(keys, use_na_sentinel=True)
    values = [mapping.get(u, default) for u in uniques] + [default]
    numeric = all(
        v is None or (isinstance(v, int | float | np.number) and not isinstance(v, bool))
        for v in values
    )
    table = np.array(
        [np.nan if v is None else v for v in values] if numeric else values,
        dtype="float64" if numeric else object,
    )
    out = pd.Series(table[codes], index=keys.index)  # code -1 (NA) takes the trailing default
    return out if numeric else out.infer_objects()


def _arrow_strings(values: Any) -> pa.Array | pa.ChunkedArray:
    if isinstance(values, np.ndarray | pd.api.extensions.ExtensionArray):
        values = pd.Series(values)
    if isinstance(values, pd.Series | pd.Index):
        if not isinstance(values.dtype, pd.StringDtype):
            values = values.astype("string")
        return pa.array(values.array)
    return pa.array(list(values), type=pa.string(), from_pandas=True)


def isin(series: pd.Series, values: Iterable[Any]) -> np.ndarray:
    """``series.isin(values)`` as a bool array (pyarrow hashing: fast for big string columns)."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        return np.asarray(series.isin(list(values)), dtype=bool)
    found = pc.is_in(_arrow_strings(series), value_set=_arrow_strings(values), skip_nulls=True)
    return np.asarray(found.to_numpy(zero_copy_only=False), dtype=bool)


def _arrow_text(array: pa.Array, index: pd.Index) -> pd.Series:
    return pd.Series(pd.arrays.ArrowStringArray(array), index=index, dtype="string")


def text(series: pd.Series, fill: str | None = None) -> pd.Series:
    """``series`` as a ``string`` Series, cheaply for categoricals (one take of the categories).

    ``fill`` replaces nulls (``text(s, "")`` for keys built from several columns).
    """
    if isinstance(series.dtype, pd.CategoricalDtype):
        categories = pd.Series(series.cat.categories, dtype="string").array
        taken = categories.take(series.cat.codes.to_numpy(), allow_fill=True)
        out = pd.Series(taken, index=series.index, dtype="string")
    else:
        out = series.astype("string")
    return out if fill is None else out.fillna(fill)


def hours_since(ts: pd.Series, as_of: pd.Timestamp) -> pd.Series:
    """Hours from each timestamp to ``as_of`` (NaN for NaT).

    A column that is not of a time dtype (an all-missing column a merge left as objects or
    floats) is read as UTC times, anything unreadable missing: a rule never crashes on it.
    """
    if not pd.api.types.is_datetime64_any_dtype(ts.dtype):
        ts = pd.Series(
            pd.to_datetime(ts, utc=True, errors="coerce", format="mixed"), index=ts.index
        )
    if ts.dt.tz is None:
        ts = ts.dt.tz_localize("UTC")
    values = ts.dt.tz_convert("UTC").to_numpy(dtype="datetime64[ns]")
    now = np.datetime64(as_of.tz_convert("UTC").tz_localize(None).as_unit("ns"))
    return pd.Series((now - values) / np.timedelta64(1, "h"), index=ts.index, dtype="float64")


def concat(*parts: pd.Series | str) -> pd.Series:
    """Element-wise string concatenation of Series and literals in one pass (null if any null).

    Same result as ``a + "x" + b + ...`` on ``string`` Series, without the intermediate arrays.
    """
    index = next(p.index for p in parts if isinstance(p, pd.Series))
    arrays = [
        pa.scalar(p, pa.large_string())
        if isinstance(p, str)
        else pc.cast(_arrow_strings(p), pa.large_string())
        for p in parts
    ]
    joined = pc.binary_join_element_wise(*arrays, pa.scalar("", pa.large_string()))
    if isinstance(joined, pa.ChunkedArray):
        joined = joined.combine_chunks()
    return _arrow_text(joined, index)


def fmt_ts(ts: pd.Series) -> pd.Series:
    """``YYYY-MM-DD HH:MM UTC`` for each timestamp (``never`` for NaT), vectorised."""
    if ts.empty:
        return pd.Series([], index=ts.index, dtype="string")
    utc = ts.dt.tz_convert("UTC") if ts.dt.tz is not None else ts.dt.tz_localize("UTC")
    minutes = utc.dt.tz_localize(None).to_numpy(dtype="datetime64[m]")
    iso = pa.array(np.datetime_as_string(minutes, unit="m"))  # numpy's C formatter
    formatted = pc.binary_join_element_wise(
        pc.replace_substring(iso, "T", " "), pa.scalar(" UTC"), pa.scalar("")
    )
    text_ = _arrow_text(formatted, ts.index)
    return text_.where(ts.notna().to_numpy(), "never")


def fmt_hours(hours: pd.Series) -> pd.Series:
    """Hours rounded to a whole number, as text (``?`` for NaN)."""
    whole = pa.array(hours.round(0).to_numpy(dtype="float64"), from_pandas=True)
    as_text = pc.cast(pc.cast(whole, pa.int64()), pa.string())
    return _arrow_text(as_text, hours.index).fillna("?")


def as_utc_timestamp(as_of: datetime) -> pd.Timestamp:
    """``as_of`` (a given instant, never the clock) as a UTC Timestamp; naive means UTC."""
    ts = pd.Timestamp(as_of)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
