"""A data type the company should have has never synced.

What it flags
    For each company with at least one ``Linked`` connection, each expected data type that has
    no ``currentStatus`` and no ``lastSuccessfulSync``, or is missing from its dataStatus.
    Expected means: its sync setting has ``fetchOnFirstLink`` true (a company's own setting
    wins over the client's), or ``[rules.never-synced] expected_data_types`` lists it. A type is
    only expected from a company with a Linked connection of its source type (accounting,
    ``banking-*``, ``commerce-*``; a connection with no source type counts as accounting).
    Companies whose data status could not be collected are left to ``not-collected``; a
    ``lastSuccessfulSync`` that was sent but could not be read is not "never synced" (it is
    left to ``unknown-status``). Warning;
    ``age_hours`` is the time since the connection was created, when known.

When it is not raised
    For a company that is not monitored (every connection ``Unlinked``, or none); a company
    whose connections are all ``PendingAuth`` is left to ``never-linked``.

Why it matters
    The company linked, but the data type the product relies on never arrived: no sync was
    queued, or the platform does not return it and nobody noticed.

How to fix
    Queue a sync of the data type (``POST /companies/{id}/data/queue/{dataType}``). If Codat
    answers that the type is not supported by the platform, remove it from
    ``expected_data_types`` or turn ``fetchOnFirstLink`` off for it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import Field

from auditor.constants import source_type_of
from auditor.rules._base import Rule, RuleContext, RuleOptions
from auditor.rules._shared import monitored_rows, unreadable_sync_time
from auditor.vectors import hours_since, isin, map_values, text

__all__ = ["RULE", "NeverSyncedOptions", "check", "expected_types"]


class NeverSyncedOptions(RuleOptions):
    """``[rules.never-synced]``: the data types expected beyond ``fetchOnFirstLink``."""

    expected_data_types: list[str] = Field(
        default_factory=list,
        description="Data types every company with a Linked connection (of their source type) "
        "should have synced, in addition to those whose sync setting has fetchOnFirstLink.",
    )


def expected_types(ctx: RuleContext) -> list[str]:
    """Every data type some company may be expected to have (client, overrides, options)."""
    settings = ctx.sync_settings
    fetch = settings["fetch_on_first_link"].astype("boolean").fillna(False).astype(bool)
    types = [str(t) for t in settings.loc[fetch, "data_type"].dropna().astype("string")]
    configured = ctx.opts(NeverSyncedOptions).expected_data_types
    return list(dict.fromkeys([*types, *configured]))


def check(ctx: RuleContext) -> pd.DataFrame:
    """Expected data types that never synced, for companies with a Linked connection."""
    configured = ctx.opts(NeverSyncedOptions).expected_data_types
    expected = expected_types(ctx)
    companies = ctx.companies
    linked = companies.loc[
        isin(companies["connection_status"], ["Linked"])
        & ~isin(companies["company_id"], ctx.errors["company_id"].dropna())
        & monitored_rows(ctx, companies)
    ]
    if linked.empty or not expected:
        return pd.DataFrame()
    linked = linked.assign(
        company_id=text(linked["company_id"]),
        source_type=text(linked["source_type"]).fillna("Accounting"),
    ).drop_duplicates(["company_id", "source_type"])
    wanted = pd.DataFrame(
        {"data_type": expected, "source_type": [source_type_of(t) for t in expected]}
    )

    # Fast path: count, per company x source type, the expected types that have a status or a
    # sync; companies that have all the types they could be expected to have are skipped.
    status = ctx.status
    codes, company_index = ctx.company_codes
    sources = sorted(set(wanted["source_type"]) | set(linked["source_type"].unique()))
    source_code = {name: i for i, name in enumerate(sources)}
    # A lastSuccessfulSync sent but unreadable is not "never synced" (unknown-status).
    synced = status["last_successful_sync"].notna().to_numpy() | unreadable_sync_time(status)
    present = (status["current_status"].notna().to_numpy() | synced) & isin(
        status["data_type"], expected
    )
    present_source = map_values(
        status.loc[present, "data_type"],
        {t: source_code[source_type_of(t)] for t in expected},
    ).to_numpy(dtype="int64")
    n_sources = len(sources)
    have = np.bincount(
        codes[present] * n_sources + present_source, minlength=(len(company_index) + 1) * n_sources
    )
    linked_codes = company_index.get_indexer(linked["company_id"])
    linked_source = linked["source_type"].map(source_code).to_numpy(dtype="int64")
    slot = np.maximum(linked_codes, 0) * n_sources + linked_source
    got = np.where(linked_codes >= 0, have[slot], 0)
    per_source = wanted.groupby("source_type").size()
    need = per_source.reindex(linked["source_type"]).fillna(0).to_numpy()
    short = linked["company_id"].loc[need > got].unique()
    if len(short) == 0:
        return pd.DataFrame()

    pairs = linked.loc[isin(linked["company_id"], short)].merge(wanted, on="source_type")
    flagged_by_setting = ctx.setting(pairs, "fetch_on_first_link")
    by_setting = flagged_by_setting.astype("boolean").fillna(False).astype(bool)
    by_config = pairs["data_type"].isin(configured)
    pairs = pairs.assign(by_setting=by_setting.to_numpy(), by_config=by_config.to_numpy())
    pairs = pairs.loc[pairs["by_setting"] | pairs["by_config"]]

    # Each pair's status row, by an integer key (company code x expected type): the first row
    # of that company and data type, or none.
    type_index = pd.Index(expected)
    n_expected = len(type_index)
    pair_company = company_index.get_indexer(pairs["company_id"])
    pair_type = type_index.get_indexer(pairs["data_type"])
    categories = status["data_type"].cat.categories
    type_of_code = np.append(type_index.get_indexer(categories.astype(str)), -1)
    row_type = type_of_code[status["data_type"].cat.codes.to_numpy()]
    short_codes = company_index.get_indexer(pd.Index(short))
    is_short = np.zeros(len(company_index) + 1, dtype=bool)
    is_short[short_codes[short_codes >= 0]] = True
    candidates = np.flatnonzero(is_short[codes] & (row_type >= 0))
    first_row = np.full(len(company_index) * n_expected + 1, len(status))
    np.minimum.at(first_row, codes[candidates] * n_expected + row_type[candidates], candidates)
    slot = np.where(
        (pair_company >= 0) & (pair_type >= 0), pair_company * n_expected + pair_type, -1
    )
    at = first_row[slot]  # slot -1 hits the trailing "no row"
    found = at < len(status)
    where = np.minimum(at, max(len(status) - 1, 0))
    no_status = status["current_status"].isna().to_numpy()
    no_sync = ~synced
    empty = found & no_status[where] & no_sync[where] if len(status) else found
    hit = ~found | empty
    hits = pairs.reset_index(drop=True).loc[hit]
    if hits.empty:
        return pd.DataFrame()
    was_missing = ~found[hit]
    why = pd.Series(
        np.where(hits["by_setting"].to_numpy(dtype=bool), "fetchOnFirstLink", "the config"),
        index=hits.index,
        dtype="string",
    )
    state = pd.Series(
        np.where(was_missing, "is missing from its data status", "has no status yet"),
        index=hits.index,
        dtype="string",
    )
    platform = hits["platform"].astype("string").fillna("its platform")
    message = (
        hits["data_type"].astype("string")
        + " has never synced ("
        + state
        + ") although the connection to "
        + platform
        + " is Linked; it is expected because of "
        + why
        + "."
    )
    remedy = (
        "Queue a sync of "
        + hits["data_type"].astype("string")
        + " (POST /companies/"
        + hits["company_id"].astype("string")
        + "/data/queue/"
        + hits["data_type"].astype("string")
        + "); if the platform does not support it, stop expecting it."
    )
    return pd.DataFrame(
        {
            "company_id": hits["company_id"],
            "company_name": hits["company_name"],
            "platform": hits["platform"],
            "connection_id": hits["connection_id"],
            "data_type": hits["data_type"],
            "age_hours": hours_since(hits["connection_created"], ctx.as_of),
            "message": message,
            "remedy": remedy,
        }
    )


RULE = Rule(
    code="FA204",
    name="never-synced",
    default_severity="warning",
    options_model=NeverSyncedOptions,
    check=check,
    doc=__doc__ or "",
)
