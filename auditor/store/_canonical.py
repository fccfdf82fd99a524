"""One canonical form for snapshot frames, so memory and Parquet round trips compare equal."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from auditor.snapshot import ColumnKind, conform

__all__ = ["canonical"]


def canonical(frame: pd.DataFrame, schema: Mapping[str, ColumnKind]) -> pd.DataFrame:
    """``frame`` conformed to ``schema``, with each categorical's categories exactly its
    observed values, sorted (columns and dtypes as :func:`auditor.snapshot.conform` gives them).

    Rows keep their order (the order batches were collected and written): sorting 4.3 million
    rows would cost a second copy of the frame. Compare frames of different runs after
    sorting them (e.g. by ``company_id, data_type``).
    """
    prepared = frame
    cats = [n for n, k in schema.items() if k == "category" and n in frame.columns]
    if cats:
        prepared = frame.copy(deep=False)
        for name in cats:
            col = prepared[name]
            if isinstance(col.dtype, pd.CategoricalDtype):
                # Observed values only, sorted, as a ``string`` index: recodes, no decoding.
                used = col.cat.remove_unused_categories()
                order = pd.Index(sorted(str(c) for c in used.cat.categories), dtype="string")
                prepared[name] = used.cat.set_categories(order)
    return conform(prepared, schema)
