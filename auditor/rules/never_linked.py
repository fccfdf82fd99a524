"""A company started linking and never finished: all its connections are still PendingAuth.

What it flags
    One finding per company every one of whose connections is ``PendingAuth`` and whose
    oldest connection was created more than ``after`` (7 days) before ``as_of``: the customer
    picked a platform in Link and never completed the authorisation, so Codat has no data at
    all for it. Warning; ``age_hours`` is the age of the oldest connection, the finding names
    that connection (and the remedy its link URL).

When it is not raised
    When any connection of the company is in another state (``Linked``, ``Deauthorized``,
    ``Unlinked``, or unreadable): those states have their own rules, or mean the client
    severed the connection. When no connection's creation time is known (it cannot be timed),
    and for a company with no connection at all (not monitored).

Why it matters
    A company that never linked sends nothing: every report about it is empty, and no
    freshness rule can notice, because there is nothing to age.

How to fix
    Send the customer the connection's link URL (in the remedy) and ask them to finish
    linking their platform; if they chose the wrong platform, start a new connection. Only an
    ``https`` link to a Codat host (``link_hosts``) is ever put in the remedy.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import Field

from auditor.links import DEFAULT_LINK_HOSTS, safe_links
from auditor.rules._base import Hours, Rule, RuleContext, RuleOptions
from auditor.vectors import fmt_hours, fmt_ts, hours_since, isin, text

__all__ = ["RULE", "NeverLinkedOptions", "check"]


class NeverLinkedOptions(RuleOptions):
    """``[rules.never-linked]``: how long a link may stay unfinished."""

    after: Hours = Field(
        default=168.0,
        description="Warn when the oldest PendingAuth connection was created more than this "
        "many hours ago (168 h = 7 days; '7d' also works).",
    )
    link_hosts: list[str] = Field(
        default_factory=lambda: list(DEFAULT_LINK_HOSTS),
        description="Hosts (with their subdomains) whose https linkUrls may be sent to a "
        "customer; any other linkUrl is left out of the remedy.",
    )


def check(ctx: RuleContext) -> pd.DataFrame:
    """Companies whose connections are all PendingAuth, the oldest older than ``after``."""
    opts = ctx.opts(NeverLinkedOptions)
    companies = ctx.companies
    conns = companies.loc[companies["connection_id"].notna().to_numpy()]
    if conns.empty:
        return pd.DataFrame()
    ids = text(conns["company_id"])
    pending = isin(conns["connection_status"], ["PendingAuth"])
    other = pd.Index(ids[~pending].dropna().unique())
    rows = conns.loc[pending & ~isin(ids, other) & conns["connection_created"].notna().to_numpy()]
    if rows.empty:
        return pd.DataFrame()
    rows = rows.assign(company_id=text(rows["company_id"]))
    oldest = rows.loc[rows.groupby("company_id", sort=False)["connection_created"].idxmin()]
    age = hours_since(oldest["connection_created"], ctx.as_of)
    flagged = (age > opts.after).to_numpy()
    oldest, age = oldest.loc[flagged], age[flagged]
    if oldest.empty:
        return pd.DataFrame()
    count = (
        rows.groupby("company_id", sort=False).size().reindex(oldest["company_id"]).to_numpy()
    )
    platform = text(oldest["platform"]).fillna("a platform")
    message = (
        "Every connection of this company ("
        + pd.Series(count, index=oldest.index).astype("string")
        + ") is PendingAuth: the customer started linking "
        + platform
        + " at "
        + fmt_ts(oldest["connection_created"])
        + ", "
        + fmt_hours(age)
        + " h ago, and never finished; Codat has no data for it."
    )
    link = safe_links(text(oldest["link_url"]), opts.link_hosts)
    remedy = (
        "Send the customer this link to finish linking " + platform + ": " + link + " ."
    ).fillna(
        "Ask the customer to finish linking their platform in your app (no usable linkUrl is "
        "known for the connection)."
    )
    return pd.DataFrame(
        {
            "company_id": oldest["company_id"],
            "company_name": oldest["company_name"],
            "platform": oldest["platform"],
            "connection_id": text(oldest["connection_id"]),
            "age_hours": age,
            "threshold_hours": pd.Series(
                np.full(len(oldest), opts.after, dtype="float64"), index=oldest.index
            ),
            "message": message,
            "remedy": remedy,
        }
    )


RULE = Rule(
    code="FA302",
    name="never-linked",
    default_severity="warning",
    options_model=NeverLinkedOptions,
    check=check,
    doc=__doc__ or "",
)
