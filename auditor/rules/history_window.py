"""Sync settings fetch too little history, or different history for types that belong together.

What it flags
    Codat fetches all history for most data types and 24 months for the financial
    statements (``balanceSheet``, ``profitAndLoss``, ``cashFlowStatement``); advanced sync
    settings change that per data type: ``monthsToSync`` for the statements, ``syncFromUtc``
    (a start date) or ``syncFromWindow`` (months back) for the other types. The effective
    history start of a data type is, for a statement, as_of minus ``monthsToSync`` months
    (24 when not set); for another type ``syncFromUtc`` if set, else as_of minus
    ``syncFromWindow`` months, else all history. Two checks:

    (a) A statement type (``statement_types``) with fewer months of history than
    ``min_statement_months`` (24).

    (b) A consistency group (``groups``, the same defaults as ``cross-type-skew``) whose
    members do not cover the same history: transactional members starting at different
    dates; a reference-data member (``reference_types``: customers, suppliers, ...) starting
    after the earliest transactional member; statement members of different lengths; or a
    transactional member starting after a statement's history begins. A member with longer
    history than the statements, or reference data with all history (Codat's advice), is no
    mismatch. The finding's ``data_type`` is the member with the shortest history.

    The effective setting of a company and data type is the company's own row for that type
    when it has an override (``GET /companies/{id}/syncSettings``, read on a rolling slice
    of the fleet and carried with its ``read_at``), else the client's
    (``GET /profile/syncSettings``). A problem of the client's settings is one fleet-level
    finding (no company); a company override that has one is one finding for that company
    (statements: for a type the company has and supports; groups: over the members it has,
    at least two, with at least one of them in its override).

When it is not raised
    Without the client's settings (``GET /profile/syncSettings`` could not be read:
    ``not-collected`` says so) the client-level checks are skipped, and a company whose
    override has not been read yet (at most ``company_settings_every_days`` nights after it
    first appears) is checked against the client's settings.

Why it matters
    Reports over 24 months (trend, year-on-year comparisons, lending models) are wrong or
    empty with 12 months of statements. Types that are joined must cover the same period:
    receivables from invoices fetched since 2025 cannot match a balance sheet whose
    receivables include older open invoices, and payments fetched over a longer window than
    their invoices point at invoices that are not there.

How to fix
    Change the setting the message names: in the client's sync settings
    (``POST /profile/syncSettings``, or the Portal's data type settings) for a fleet-level
    finding, in the company's (``POST /companies/{id}/syncSettings``, or remove its override)
    for a company finding. Settle on one approach across the group (for example
    ``syncFromWindow = 24`` on every transactional type and ``monthsToSync = 24`` on the
    statements). Widen a window rather than shrink the others: a shorter window introduced
    after a sync deletes or voids the records before it.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import pandas as pd
from pydantic import Field, field_validator, model_validator

from auditor.rules._base import Rule, RuleContext, RuleOptions
from auditor.rules._shared import CONSISTENCY_GROUPS
from auditor.vectors import isin, text

__all__ = ["RULE", "HistoryWindowOptions", "check"]

#: Codat's financial statement data types (``monthsToSync`` applies to them only).
STATEMENT_TYPES: Final[tuple[str, ...]] = ("balanceSheet", "profitAndLoss", "cashFlowStatement")
#: Codat's default months of statements (docs.codat.io/knowledge-base/advanced-sync-settings).
DEFAULT_MONTHS_TO_SYNC: Final = 24
#: Reference data: Codat advises not to limit its history.
REFERENCE_TYPES: Final[tuple[str, ...]] = (
    "customers",
    "suppliers",
    "chartOfAccounts",
    "taxRates",
    "trackingCategories",
    "items",
)
_ALL: Final = np.iinfo(np.int64).min  # "all history": before every date
_CLIENT: Final = "client"
_COMPANY: Final = "company"


class HistoryWindowOptions(RuleOptions):
    """``[rules.history-window]``: the minimum months of statements and the groups."""

    min_statement_months: int = Field(
        default=24,
        ge=0,
        description="Warning when a financial statement type fetches fewer months of history "
        "(its effective monthsToSync).",
    )
    statement_types: list[str] = Field(
        default_factory=lambda: list(STATEMENT_TYPES),
        description="The financial statement types checked against min_statement_months.",
    )
    reference_types: list[str] = Field(
        default_factory=lambda: list(REFERENCE_TYPES),
        description="Reference data types: in a group, more history than the transactional "
        "members is fine for them, less is a mismatch.",
    )
    replace_default_groups: bool = Field(
        default=False,
        description="Start from no consistency groups instead of the defaults "
        "(accounts-receivable, accounts-payable, cash).",
    )
    groups: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in CONSISTENCY_GROUPS.items()},
        description="Consistency groups whose members must cover the same history (name = "
        "[members]; [] removes a default group). The defaults are cross-type-skew's.",
    )

    @field_validator("groups")
    @classmethod
    def _two_distinct_members(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, members in value.items():
            if len(members) == 1:
                raise ValueError(f"group {name}: needs at least two members (or [] to remove)")
            if len(set(members)) != len(members):
                raise ValueError(f"group {name}: lists a member twice")
        return value

    @model_validator(mode="before")
    @classmethod
    def _merge_default_groups(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("replace_default_groups") is True:
            return data
        given = data.get("groups", {})
        if not isinstance(given, dict):
            return data
        merged = {k: list(v) for k, v in CONSISTENCY_GROUPS.items()}
        return {**data, "groups": {**merged, **given}}


def _minus_months(months: pd.Series, as_of: pd.Timestamp) -> np.ndarray:
    """as_of minus each row's months (calendar months), as int64 ns; NaN -> :data:`_ALL`."""
    out = np.full(len(months), _ALL, dtype=np.int64)
    values = pd.to_numeric(months, errors="coerce").to_numpy(dtype="float64")
    for m in pd.unique(values[~np.isnan(values)]):  # a handful of distinct windows
        out[values == m] = (as_of - pd.DateOffset(months=int(m))).value
    return out


def _history(rows: pd.DataFrame, as_of: pd.Timestamp, statements: list[str]) -> pd.DataFrame:
    """Per settings row: ``start`` (int64 ns, :data:`_ALL` for all history), ``months``
    (statements' effective months, else NaN), ``setting`` (the property that sets the
    start, ``none`` for all history), ``since`` (the start as text) and ``detail`` (the
    setting with its value)."""
    is_stmt = isin(rows["data_type"], statements)
    months = (
        pd.to_numeric(rows["months_to_sync"], errors="coerce")
        .fillna(DEFAULT_MONTHS_TO_SYNC)
        .where(is_stmt)
    )
    utc = pd.DatetimeIndex(pd.to_datetime(rows["sync_from_utc"], utc=True))
    has_utc = ~np.asarray(utc.isna()) & ~is_stmt
    window = pd.to_numeric(rows["sync_from_window_months"], errors="coerce")
    has_window = window.notna().to_numpy() & ~is_stmt & ~has_utc
    start = np.where(is_stmt, _minus_months(months, as_of), _ALL)
    start = np.where(has_window, _minus_months(window, as_of), start)
    start = np.where(has_utc, utc.asi8, start)
    setting = np.select(
        [is_stmt, has_utc, has_window],
        ["monthsToSync", "syncFromUtc", "syncFromWindow"],
        default="none",
    )
    as_text = text(months.astype("Int64").astype("string"), "?")
    window_text = text(window.astype("Int64").astype("string"), "?")
    detail = np.select(
        [is_stmt, has_utc, has_window],
        ["monthsToSync " + as_text, pd.Series("syncFromUtc", index=rows.index),
         "syncFromWindow " + window_text],
        default="no window",
    )  # fmt: skip
    dates = pd.Series(pd.to_datetime(start, utc=True), index=rows.index)
    since = ("since " + dates.dt.strftime("%Y-%m-%d")).where(start != _ALL, "all history")
    return pd.DataFrame(
        {
            "start": start,
            "months": months,
            "setting": pd.Series(setting, index=rows.index, dtype="string"),
            "since": since.astype("string"),
            "detail": pd.Series(detail, index=rows.index, dtype="string"),
        },
        index=rows.index,
    )


_SETTING_COLUMNS: Final = ("sync_from_utc", "sync_from_window_months", "months_to_sync")


def _client_rows(settings: pd.DataFrame) -> pd.DataFrame:
    client = settings.loc[settings["company_id"].isna()]
    return client.drop_duplicates("data_type", keep="last")


def _override_rows(settings: pd.DataFrame) -> pd.DataFrame:
    own = settings.loc[settings["company_id"].notna() & settings["data_type"].notna()]
    return own.drop_duplicates(["company_id", "data_type"], keep="last")


def _supported(ctx: RuleContext, companies: Any, data_types: list[str]) -> pd.DataFrame:
    """(company, data type) pairs of ``companies`` x ``data_types`` that the company has and
    supports, with their status columns."""
    status = ctx.status
    keep = (
        isin(status["company_id"], companies)
        & isin(status["data_type"], data_types)
        & ~isin(status["current_status"], ["NotSupported"])
    )
    cols = ["company_id", "company_name", "platform", "connection_id", "data_type"]
    rows = status.loc[keep, cols].astype({"company_id": "string", "data_type": "string"})
    out: pd.DataFrame = rows.drop_duplicates(["company_id", "data_type"])
    return out


def _statement_findings(
    ctx: RuleContext, opts: HistoryWindowOptions, client: pd.DataFrame, own: pd.DataFrame
) -> list[pd.DataFrame]:
    as_of, minimum = ctx.as_of, opts.min_statement_months
    out: list[pd.DataFrame] = []
    if not client.empty:
        wanted = pd.DataFrame({"data_type": pd.Series(opts.statement_types, dtype="string")})
        rows = wanted.merge(
            client[["data_type", *_SETTING_COLUMNS]].astype({"data_type": "string"}),
            on="data_type",
            how="left",
        )
        hist = _history(rows, as_of, opts.statement_types)
        short = (hist["months"] < minimum).to_numpy()
        if short.any():
            rows, hist = rows.loc[short], hist.loc[short]
            out.append(
                pd.DataFrame(
                    {
                        "data_type": rows["data_type"],
                        "message": rows["data_type"]
                        + " fetches "
                        + hist["months"].astype("Int64").astype("string")
                        + f" months of history (monthsToSync in the client's sync settings); "
                        f"the minimum is {minimum}: reports over longer periods are empty "
                        "before "
                        + hist["since"].str.removeprefix("since ")
                        + ".",
                        "remedy": f"Set monthsToSync to at least {minimum} for "
                        + rows["data_type"]
                        + " in the client's sync settings (POST /profile/syncSettings or the "
                        "Portal's data type settings); the next sync fetches the longer "
                        "history.",
                    }
                )
            )
    rows = own.loc[isin(own["data_type"], opts.statement_types)]
    if rows.empty:
        return out
    supported = _supported(ctx, rows["company_id"].dropna().unique(), opts.statement_types)
    rows = rows.astype({"company_id": "string", "data_type": "string"}).merge(
        supported, on=["company_id", "data_type"], how="inner"
    )
    hist = _history(rows, as_of, opts.statement_types)
    short = (hist["months"] < minimum).to_numpy()
    if not short.any():
        return out
    rows, hist = rows.loc[short], hist.loc[short]
    out.append(
        pd.DataFrame(
            {
                "company_id": rows["company_id"],
                "company_name": rows["company_name"],
                "platform": rows["platform"],
                "connection_id": rows["connection_id"],
                "data_type": rows["data_type"],
                "message": rows["data_type"]
                + " fetches "
                + hist["months"].astype("Int64").astype("string")
                + " months of history (monthsToSync in this company's own sync settings, "
                + _read_at(rows)
                + f"); the minimum is {minimum}.",
                "remedy": f"Set monthsToSync to at least {minimum} for "
                + rows["data_type"]
                + " in this company's sync settings (POST /companies/"
                + rows["company_id"]
                + "/syncSettings), or remove its override so that the client's settings "
                "apply.",
            }
        )
    )
    return out


def _read_at(rows: pd.DataFrame) -> pd.Series:
    at = rows["read_at"]
    when = pd.Series(pd.to_datetime(at, utc=True), index=rows.index).dt.strftime("%Y-%m-%d")
    return ("read " + when).fillna("read date unknown").astype("string")


def _group_rows(rows: pd.DataFrame, opts: HistoryWindowOptions) -> pd.DataFrame:
    """``rows`` (one per owner x data type) repeated for each group the type belongs to."""
    parts = []
    for name, members in opts.groups.items():
        if not members:
            continue
        hit = rows.loc[isin(rows["data_type"], members)]
        if len(hit):
            order = {m: i for i, m in enumerate(members)}
            parts.append(hit.assign(group=name, pos=hit["data_type"].map(order).astype(int)))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _mismatched(long: pd.DataFrame, opts: HistoryWindowOptions) -> pd.DataFrame:
    """Per (owner, group) with at least two members: whether the members' history does not
    match, the member with the shortest history and every member's start as text."""
    is_stmt = isin(long["data_type"], opts.statement_types)
    is_ref = isin(long["data_type"], opts.reference_types) & ~is_stmt
    is_tx = ~is_stmt & ~is_ref
    start = long["start"].astype("float64")
    frame = long.assign(
        tx=start.where(is_tx),
        ref=start.where(is_ref),
        stmt=start.where(is_stmt),
        label=long["data_type"] + " " + long["since"] + " (" + long["detail"] + ")",
    )
    keys = ["owner", "group"]
    grouped = frame.groupby(keys, sort=False)
    agg = grouped.agg(
        n=("data_type", "size"),
        tx_min=("tx", "min"),
        tx_max=("tx", "max"),
        ref_max=("ref", "max"),
        s_min=("stmt", "min"),
        s_max=("stmt", "max"),
        own=("own", "any"),
    )
    bad = (
        (agg["tx_max"] != agg["tx_min"]) & agg["tx_max"].notna()
        | (agg["ref_max"] > agg["tx_min"])
        | (agg["s_max"] != agg["s_min"]) & agg["s_max"].notna()
        | (agg["tx_max"] > agg["s_min"])
    )
    agg = agg.loc[bad & (agg["n"] >= 2)]
    if agg.empty:
        return agg
    wanted = pd.MultiIndex.from_frame(frame[keys]).isin(agg.index)
    frame = frame.loc[wanted]
    ordered = frame.sort_values(["owner", "group", "pos"])
    labels = ordered.groupby(keys, sort=False)["label"].agg("; ".join)
    shortest = frame.sort_values(["start", "pos"], ascending=[False, True]).drop_duplicates(keys)
    shortest = shortest.set_index(keys)
    agg = agg.join(labels).join(shortest.drop(columns=["label", "start", "own"]))
    return agg.reset_index()


def _group_findings(
    ctx: RuleContext, opts: HistoryWindowOptions, client: pd.DataFrame, own: pd.DataFrame
) -> list[pd.DataFrame]:
    out: list[pd.DataFrame] = []
    columns = ["data_type", *_SETTING_COLUMNS]
    members = sorted({m for ms in opts.groups.values() for m in ms})
    if not client.empty and members:
        rows = pd.DataFrame({"data_type": pd.Series(members, dtype="string")}).merge(
            client[columns].astype({"data_type": "string"}), on="data_type", how="left"
        )
        rows = pd.concat([rows, _history(rows, ctx.as_of, opts.statement_types)], axis=1)
        long = _group_rows(rows.assign(owner=_CLIENT, own=True), opts)
        bad = _mismatched(long, opts) if len(long) else pd.DataFrame()
        if len(bad):
            out.append(
                pd.DataFrame(
                    {
                        "data_type": bad["data_type"],
                        "group": bad["group"],
                        "message": bad["group"]
                        + " members do not cover the same history in the client's sync "
                        "settings: "
                        + bad["label"]
                        + ". "
                        + bad["data_type"]
                        + " has the shortest.",
                        "remedy": "Give the "
                        + bad["group"]
                        + " members one history window in the client's sync settings (POST "
                        "/profile/syncSettings): change the "
                        + _setting_name(bad)
                        + " of "
                        + bad["data_type"]
                        + " to match the others (the same syncFromWindow or syncFromUtc on the "
                        "transactional types, statements' monthsToSync within it). Widen "
                        "rather than shrink: a shorter window deletes or voids earlier records.",
                    }
                )
            )
    companies = own["company_id"].dropna().astype("string").unique()
    if not len(companies) or not members:
        return out
    pairs = _supported(ctx, companies, members)
    if pairs.empty:
        return out
    mine = own[["company_id", *columns, "read_at"]].astype(
        {"company_id": "string", "data_type": "string"}
    )
    rows = pairs.merge(mine, on=["company_id", "data_type"], how="left", indicator=True)
    is_own = (rows.pop("_merge") == "both").to_numpy()
    if not client.empty:
        base = (
            rows[["data_type"]]
            .merge(client[columns].astype({"data_type": "string"}), on="data_type", how="left")
            .set_index(rows.index)
        )
        for c in _SETTING_COLUMNS:
            rows[c] = rows[c].where(is_own, base[c])
    rows = pd.concat([rows, _history(rows, ctx.as_of, opts.statement_types)], axis=1)
    rows["read_at"] = rows.groupby("company_id")["read_at"].transform("max")
    long = _group_rows(rows.assign(owner=rows["company_id"], own=is_own), opts)
    bad = _mismatched(long, opts) if len(long) else pd.DataFrame()
    if len(bad):
        bad = bad.loc[bad["own"].astype(bool)]
    if len(bad):
        out.append(
            pd.DataFrame(
                {
                    "company_id": bad["company_id"],
                    "company_name": bad["company_name"],
                    "platform": bad["platform"],
                    "connection_id": bad["connection_id"],
                    "data_type": bad["data_type"],
                    "group": bad["group"],
                    "message": bad["group"]
                    + " members do not cover the same history in this company's own sync "
                    "settings ("
                    + _read_at(bad)
                    + "): "
                    + bad["label"]
                    + ". "
                    + bad["data_type"]
                    + " has the shortest.",
                    "remedy": "Give the "
                    + bad["group"]
                    + " members one history window in this company's sync settings (POST "
                    "/companies/"
                    + bad["company_id"]
                    + "/syncSettings), or remove its override so that the client's apply: "
                    "change the "
                    + _setting_name(bad)
                    + " of "
                    + bad["data_type"]
                    + " to match the others. Widen rather than shrink: a shorter window "
                    "deletes or voids earlier records.",
                }
            )
        )
    return out


def _setting_name(rows: pd.DataFrame) -> pd.Series:
    """The property that sets a member's history (``syncFromWindow`` for one with none)."""
    setting = rows["setting"].astype("string")
    return setting.where(setting != "none", "syncFromWindow").astype("string")


def check(ctx: RuleContext) -> pd.DataFrame:
    """Fleet-level findings for the client's settings, company findings for overrides."""
    opts = ctx.opts(HistoryWindowOptions)
    settings = ctx.sync_settings
    client = _client_rows(settings)
    own = _override_rows(settings)
    parts = [
        *_statement_findings(ctx, opts, client, own),
        *_group_findings(ctx, opts, client, own),
    ]
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame()
    return pd.concat(parts, ignore_index=True)


RULE = Rule(
    code="FA104",
    name="history-window",
    default_severity="warning",
    options_model=HistoryWindowOptions,
    check=check,
    doc=__doc__ or "",
)
