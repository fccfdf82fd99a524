"""A connection needs the customer to re-authorise it.

What it flags
    One finding per company x connection whose connection status is ``Deauthorized``, or that
    serves at least one data type in ``AuthError``. Severity error. The remedy carries the
    connection's ``linkUrl``.

Why it matters
    Nothing syncs through a connection Codat can no longer authenticate with: every data type
    it serves ages from now on, and only the customer can fix it.

How to fix
    Send the customer the connection's link URL (in the remedy) and ask them to log in to the
    platform again with a user that has the needed permissions. After relinking, queue a sync.
"""

from __future__ import annotations

import pandas as pd

from auditor.rules._base import Rule, RuleContext, RuleOptions

__all__ = ["RULE", "check"]

_KEYS = ["company_id", "connection_id"]


def check(ctx: RuleContext) -> pd.DataFrame:
    """Connections that need relinking."""
    companies = ctx.companies.assign(
        company_id=ctx.companies["company_id"].astype("string"),
        connection_id=ctx.companies["connection_id"].astype("string"),
    )
    status = ctx.status
    auth = status.loc[(status["current_status"] == "AuthError").fillna(False).astype(bool)]
    auth = auth.assign(
        company_id=auth["company_id"].astype("string"),
        connection_id=auth["connection_id"].astype("string"),
        data_type=auth["data_type"].astype("string"),
    )
    by_connection = auth.groupby(_KEYS, sort=True, dropna=False)
    auth_summary = pd.DataFrame(
        {
            "auth_types": by_connection["data_type"].agg(lambda s: ", ".join(sorted(s))),
            "auth_count": by_connection.size(),
            "status_name": by_connection["company_name"].first(),
            "status_platform": by_connection["platform"].first(),
        }
    ).reset_index()
    deauth = companies.loc[
        (companies["connection_status"] == "Deauthorized").fillna(False).astype(bool), _KEYS
    ].assign(deauthorized=True)
    hits = deauth.merge(auth_summary, on=_KEYS, how="outer")
    if hits.empty:
        return pd.DataFrame()
    info = companies.drop_duplicates(_KEYS)[
        [*_KEYS, "company_name", "platform", "link_url", "connection_status"]
    ]
    hits = hits.merge(info, on=_KEYS, how="left")
    deauthorized = hits["deauthorized"].astype("boolean").fillna(False).astype(bool)
    count = hits["auth_count"].astype("Int64").fillna(0)
    platform = hits["platform"].astype("string").fillna(hits["status_platform"].astype("string"))
    shown_platform = platform.fillna("the platform")
    auth_text = (
        count.astype("string")
        + " data type(s) in AuthError ("
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
    message = message.str.replace(r"^: ", "", regex=True)
    link = hits["link_url"].astype("string")
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
    return pd.DataFrame(
        {
            "company_id": hits["company_id"],
            "company_name": hits["company_name"]
            .astype("string")
            .fillna(hits["status_name"].astype("string")),
            "platform": platform,
            "connection_id": hits["connection_id"],
            "current_status": pd.Series("AuthError", index=hits.index).where(count > 0),
            "severity": "error",
            "message": message,
            "remedy": remedy,
        }
    )


RULE = Rule(
    code="FA301",
    name="needs-relink",
    default_severity="error",
    options_model=RuleOptions,
    check=check,
    doc=__doc__ or "",
)
