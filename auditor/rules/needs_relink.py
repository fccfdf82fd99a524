"""A connection needs the customer to re-authorise it.

What it flags
    One finding per company x connection whose connection status is ``Deauthorized``, or that
    serves at least one data type in ``AuthError``. Severity error. The remedy carries the
    connection's ``linkUrl``. It is the root cause of the ``stale`` and ``token-expiry-risk``
    findings of its connection (and of their ``cross-type-skew``): those are left out and the
    message says how many it explains. When Codat gives the connection's
    ``dataConnectionErrors``, the message quotes the newest unresolved one (its
    ``errorMessage``, else ``statusText``; at most 300 characters) and its time.

When it is not raised
    A Deauthorized connection that is **superseded**: the company has a ``Linked`` connection
    of the same ``sourceType`` created after it (the customer moved from Sage to Xero; a
    connection with no source type counts as Accounting). A Deauthorized connection of another
    source type, newer than the Linked one, or whose creation time is unknown, still needs a
    relink. A connection Deauthorized **by design** (a one-time sync, e.g. an on-premise
    connector set to sync once): its platform (name or integration key) is in
    ``[monitoring] expected_deauthorized_platforms``, or its company has a tag listed in
    ``[monitoring] expected_deauthorized_tags`` (its data types raise no freshness finding
    either). Data types in ``AuthError`` are flagged in every case,
    except for a company that is not monitored (every connection ``Unlinked``, or none): the
    client severed its connections on purpose, there is nothing to relink.

Why it matters
    Nothing syncs through a connection Codat can no longer authenticate with: every data type
    it serves ages from now on, and only the customer can fix it.

How to fix
    Send the customer the connection's link URL (in the remedy) and ask them to log in to the
    platform again with a user that has the needed permissions. After relinking, queue a sync.
    Only an ``https`` link to a Codat host (``link_hosts``) is ever put in the remedy: any
    other ``linkUrl`` (``javascript:``, plain ``http``, another host) is called unusable.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd
from pydantic import Field

from auditor.links import DEFAULT_LINK_HOSTS, safe_links
from auditor.rules._base import Rule, RuleContext, RuleOptions
from auditor.rules._shared import expected_deauthorized, monitored_rows
from auditor.vectors import fmt_ts, isin, text

__all__ = ["RULE", "NeedsRelinkOptions", "check"]


class NeedsRelinkOptions(RuleOptions):
    """``[rules.needs-relink]``."""

    link_hosts: list[str] = Field(
        default_factory=lambda: list(DEFAULT_LINK_HOSTS),
        description="Hosts (with their subdomains) whose https linkUrls may be sent to a "
        "customer; any other linkUrl is called unusable.",
    )


#: The most of a connection error's text a message quotes.
ERROR_QUOTE_LIMIT: Final = 300

_KEYS = ["company_id", "connection_id"]


def _summarise(auth: pd.DataFrame) -> pd.DataFrame:
    """One row per company x connection of sorted AuthError rows: count and the types."""
    if auth.empty:
        return pd.DataFrame(
            columns=[*_KEYS, "auth_types", "auth_count", "status_name", "status_platform"]
        )
    keys = auth[_KEYS].fillna("\x00").to_numpy(dtype=object)
    new_group = np.r_[True, (keys[1:] != keys[:-1]).any(axis=1)]
    starts = np.flatnonzero(new_group)
    names = (auth["data_type"].fillna("?") + ", ").to_numpy(dtype=object)
    joined = np.add.reduceat(names, starts)  # string concatenation per group, in C
    first = auth.iloc[starts]
    return pd.DataFrame(
        {
            "company_id": first["company_id"].to_numpy(),
            "connection_id": first["connection_id"].to_numpy(),
            "auth_types": pd.Series(joined, dtype="string").str.removesuffix(", ").to_numpy(),
            "auth_count": np.diff(np.r_[starts, len(auth)]),
            "status_name": first["company_name"].to_numpy(),
            "status_platform": first["platform"].to_numpy(),
        }
    )


def _superseded(companies: pd.DataFrame, deauth: pd.DataFrame) -> np.ndarray:
    """For each row of ``deauth``: a Linked connection of the same company and source type was
    created after it."""
    linked = companies.loc[
        isin(companies["connection_status"], ["Linked"])
        & companies["connection_created"].notna().to_numpy()
    ]
    if linked.empty or deauth.empty:
        return np.zeros(len(deauth), dtype=bool)
    source = text(linked["source_type"]).fillna("Accounting")
    newest = (
        linked.assign(source_type=source)
        .groupby(["company_id", "source_type"], observed=True)["connection_created"]
        .max()
        .rename("linked_created")
        .reset_index()
    )
    keyed = deauth[["company_id", "source_type", "connection_created"]].assign(
        source_type=text(deauth["source_type"]).fillna("Accounting")
    )
    merged = keyed.merge(newest, on=["company_id", "source_type"], how="left")
    later = merged["linked_created"] > merged["connection_created"]
    return later.fillna(False).to_numpy(dtype=bool)


def _quote(error: pd.Series, at: pd.Series) -> pd.Series:
    """`` Codat's error for the connection (at ...): "..."`` where an error is known, else ""."""
    raw = text(error).str.strip()
    short = raw.str.slice(0, ERROR_QUOTE_LIMIT)
    short = short.where(raw.str.len() <= ERROR_QUOTE_LIMIT, short + "\u2026")
    when = fmt_ts(at).where(at.notna().to_numpy(), "an unknown time")
    quoted = " Codat's error for the connection (at " + when + '): "' + short + '".'
    return quoted.where(raw.notna() & (raw.str.len() > 0), "").fillna("")


def check(ctx: RuleContext) -> pd.DataFrame:
    """Connections that need relinking."""
    opts = ctx.opts(NeedsRelinkOptions)
    companies = ctx.companies.assign(
        company_id=text(ctx.companies["company_id"]),
        connection_id=text(ctx.companies["connection_id"]),
    )
    status = ctx.status
    auth = status.loc[
        isin(status["current_status"], ["AuthError"]) & monitored_rows(ctx, status),
        ["company_id", "company_name", "platform", "connection_id", "data_type"],
    ]
    auth = auth.assign(
        company_id=text(auth["company_id"]),
        connection_id=text(auth["connection_id"]),
        data_type=text(auth["data_type"]),
    ).sort_values([*_KEYS, "data_type"], na_position="last")
    auth_summary = _summarise(auth)
    deauth_rows = companies.loc[isin(companies["connection_status"], ["Deauthorized"])]
    silent = _superseded(companies, deauth_rows) | expected_deauthorized(
        ctx.monitoring, deauth_rows
    )
    deauth = deauth_rows.loc[~silent, _KEYS].assign(deauthorized=True)
    hits = deauth.merge(auth_summary, on=_KEYS, how="outer")
    if hits.empty:
        return pd.DataFrame()
    info = companies.drop_duplicates(_KEYS)[
        [
            *_KEYS,
            "company_name",
            "platform",
            "link_url",
            "connection_status",
            "connection_error",
            "connection_error_at",
        ]
    ]
    hits = hits.merge(info, on=_KEYS, how="left")
    deauthorized = hits["deauthorized"].astype("boolean").fillna(False).astype(bool)
    count = hits["auth_count"].astype("Int64").fillna(0)
    platform = hits["platform"].astype("string").fillna(hits["status_platform"].astype("string"))
    shown_platform = platform.fillna("the platform")
    auth_text = (
        count.astype("string")
        + pd.Series(" data types", index=hits.index).where(count != 1, " data type")
        + " in AuthError ("
        + hits["auth_types"].astype("string")
        + ")"
    )
    deauth_text = pd.Series("The connection to ", index=hits.index) + shown_platform + (
        " is Deauthorized"
    )
    message = (
        deauth_text.where(deauthorized, "")
        + pd.Series("; ", index=hits.index).where(deauthorized & (count > 0), "")
        + auth_text.where(count > 0, "").fillna("")
        + ": Codat can no longer read "
        + shown_platform
        + " for this company."
    )
    message = message.str.replace(r"^: ", "", regex=True) + _quote(
        hits["connection_error"], hits["connection_error_at"]
    )
    raw_link = hits["link_url"].astype("string")
    link = safe_links(raw_link, opts.link_hosts)
    unusable = raw_link.notna() & link.isna()
    remedy = (
        "Send the customer this link to re-authorise the connection with "
        + shown_platform
        + ": "
        + link
        + " ; then queue a sync."
    ).fillna(
        "Ask the customer to relink the connection in your app (no linkUrl is known for it); "
        "then queue a sync."
    )
    remedy = remedy.mask(
        unusable,
        "Ask the customer to relink the connection in your app: the linkUrl Codat gave is "
        "unusable (not an https link to a Codat host), do not send it; then queue a sync.",
    )
    return pd.DataFrame(
        {
            "company_id": hits["company_id"],
            "company_name": hits["company_name"]
            .astype("string")
            .fillna(hits["status_name"].astype("string")),
            "platform": platform,
            "connection_id": hits["connection_id"],
            "current_status": pd.Series("AuthError", index=hits.index).where(count > 0),
            "message": message,
            "remedy": remedy,
        }
    )


RULE = Rule(
    code="FA301",
    name="needs-relink",
    default_severity="error",
    options_model=NeedsRelinkOptions,
    check=check,
    doc=__doc__ or "",
)
