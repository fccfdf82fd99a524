"""Per-tenant thresholds below the YAML cases: company tags read once per partition
(:class:`CompanyTags`) for categorical and plain ``company_id`` columns, and the resolution
order of :func:`resolve_thresholds` on rows whose company has no tags or is unknown."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from auditor.rules._base import CompanyTags, resolve_thresholds
from auditor.rules.stale import StaleOptions
from auditor.snapshot import tags_json

COMPANIES = pd.DataFrame(
    {
        "company_id": ["gold", "gold", "eu", "none", "hostile"],
        "connection_id": ["a", "b", "a", "a", "a"],
        "company_tags": [
            tags_json({"tier": "gold"}),
            tags_json({"tier": "gold"}),
            tags_json({"region": "eu", "tier": "gold"}),
            None,
            tags_json({"note": '"tier":"gold"'}),
        ],
    }
)


@pytest.mark.parametrize("categorical", [True, False])
def test_company_tags_match_each_row_by_company(categorical: bool) -> None:
    ids = pd.Series(["gold", "eu", "none", "hostile", "unknown", None, "gold"])
    if categorical:
        ids = ids.astype("category")
    frame = pd.DataFrame({"company_id": ids})
    tags = CompanyTags(COMPANIES)
    codes = tags.codes(frame)
    gold = tags.pair("tier", "gold")[codes]
    eu = tags.pair("region", "eu")[codes]
    assert gold.tolist() == [True, True, False, False, False, False, True]
    assert eu.tolist() == [False, True, False, False, False, False, False]
    assert not tags.empty
    assert CompanyTags(COMPANIES.drop(columns="company_tags")).empty


def test_resolution_order_per_threshold_and_lowest_of_two_tags() -> None:
    options = StaleOptions.model_validate(
        {
            "warn_after": 100,
            "data_types": {"invoices": {"warn_after": 20}},
            "tags": {
                "tier": {
                    "gold": {"warn_after": 50, "data_types": {"invoices": {"warn_after": 10}}}
                },
                "region": {"eu": {"warn_after": 30, "error_after": 60}},
            },
        }
    )
    frame = pd.DataFrame(
        {
            "company_id": ["gold", "gold", "eu", "eu", "none", "unknown"],
            "data_type": ["invoices", "bills", "invoices", "bills", "bills", "invoices"],
            "platform": "Xero",
        }
    )
    warn, error = resolve_thresholds(frame, options, 1.0, 999.0, tags=CompanyTags(COMPANIES))
    # gold+invoices: tag+type 10; gold bills: tag 50; eu (also gold) invoices: gold's
    # tag+type 10 beats the fleet type 20; eu bills: lower of gold 50 and eu 30; untagged and
    # unknown companies: the fleet's levels.
    assert warn.tolist() == [10, 50, 10, 30, 100, 20]
    # error_after is set only by region.eu: the default elsewhere.
    assert error.tolist() == [999, 999, 60, 60, 999, 999]
    assert warn.index.equals(frame.index)
    assert np.issubdtype(warn.dtype, np.floating)
