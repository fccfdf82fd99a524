"""One canonical form for snapshot frames, so memory and Parquet round trips compare equal."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from auditor.snapshot import ColumnKind, conform

__all__ = ["canonical"]


def canonical(frame: pd.DataFrame, schema: Mapping[str, ColumnKind]) -> pd.DataFrame:
    """``frame`` conformed to ``schema``, categories sorted, rows ordered by company.

    * columns and dtypes as :func:`auditor.snapshot.conform` gives them;
    * each categorical's categories are exactly its observed values, sorted;
    * rows sorted by ``company_id`` (stable: order within a company is kept; nulls last).
    """
    prepared = frame
    cats = [n for n, k in schema.items() if k == "category" and n in frame.columns]
    if cats:
        prepared = frame.copy(deep=False)
        for name in cats:
            col = prepared[name]
            if isinstance(col.dtype, pd.CategoricalDtype):
                # conform() rebuilds it from strings: observed values, sorted, string dtype.
                prepared[name] = col.astype("string")
    out = conform(prepared, schema)
    if "company_id" in out.columns and len(out) > 1:
        ids = out["company_id"]
        if not ids.is_monotonic_increasing:
            out = out.sort_values("company_id", kind="stable", na_position="last")
            out = out.reset_index(drop=True)
    return out
