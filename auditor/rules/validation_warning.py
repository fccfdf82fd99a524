"""A data type's latest read since the previous snapshot completed with issues Codat raised.

What it flags
    Each company x connection x data type whose **latest** ``read.completed`` (or
    ``read.completed.initial``) webhook received since the previous audit carried ``issues``
    (such as ``warning.validation``: the read completed, but Codat itself doubts the data).
    Severity warning. The message quotes the issue (its type and Codat's message, control and
    bidirectional characters removed, at most ``max_message_chars`` characters) and gives its
    validation logs link when it is an https link to a Codat host (any other link is left
    out and the message says so). Needs the webhook listener (``auditor listen``): it reads the
    store's event log, not ``dataStatus``, which never shows these issues.

When it is not raised
    A later read of the same data type without issues clears it (only the latest read
    counts). Without an event log nothing is raised, and open ``validation-warning`` incidents stay
    open (not resolved) until a read of that data type is seen again; so do those of a data
    type with no read event since the previous audit (a read of the company's other types
    says nothing of it).

Why it matters
    ``dataStatus`` says ``Complete`` and the data is fresh, yet Codat flagged it: totals may
    not reconcile, records may be missing or duplicated. A lender reading it would not know.

How to fix
    Open the logs link (Codat's validation results for that read) and decide: if the rule
    does not apply to your use of the data, ignore or snooze the warning; if it does, fix the
    data in the source platform (or handle the case in your application) and sync again.
    Codat: https://docs.codat.io/using-the-api/get-data-troubleshooting#warning.validation
"""

from __future__ import annotations

import pandas as pd
from pydantic import Field

from auditor.links import safe_links
from auditor.rules._base import Rule, RuleContext, RuleOptions
from auditor.safe_text import clip_series
from auditor.vectors import fmt_ts, isin, text

__all__ = ["RULE", "ValidationWarningOptions", "check"]

READ_EVENTS = ("read.completed", "read.completed.initial")
#: Control characters (but tab), line and paragraph separators, bidirectional overrides.
_UNSAFE = r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\u200e\u200f]"


class ValidationWarningOptions(RuleOptions):
    max_message_chars: int = Field(
        default=300, ge=20, le=1000, description="Characters of Codat's issue message quoted."
    )


def _clean(values: pd.Series, limit: int) -> pd.Series:
    """Text from a webhook, safe to quote: no control/bidi characters, one line, bounded."""
    out = text(values).str.replace(_UNSAFE, " ", regex=True).str.replace(r"\s+", " ", regex=True)
    return clip_series(out.str.strip(), limit)


def check(ctx: RuleContext) -> pd.DataFrame:
    """Data types whose latest read since the previous snapshot carried issues."""
    events = ctx.events
    if events is None or events.empty:
        return pd.DataFrame()
    options = ctx.opts(ValidationWarningOptions)
    reads = events.loc[
        isin(events["event_type"], READ_EVENTS)
        & events["data_type"].notna().to_numpy()
        & events["company_id"].notna().to_numpy()
    ]
    if reads.empty:
        return pd.DataFrame()
    key = ["company_id", "connection_id", "data_type"]
    latest = reads.sort_values(["at", "event_id"], kind="stable").drop_duplicates(
        key, keep="last"
    )
    flagged = latest.loc[(latest["issue_count"].fillna(0) > 0).to_numpy(bool)]
    if flagged.empty:
        return pd.DataFrame()
    flagged = flagged.reset_index(drop=True)
    status = ctx.status.loc[isin(ctx.status["company_id"], flagged["company_id"].unique())]
    status = status.drop_duplicates(["company_id", "data_type"], keep="first")
    status = status.astype({"company_id": "string", "data_type": "string"})
    on = flagged[["company_id", "data_type"]].astype("string")
    joined = on.merge(
        status[["company_id", "data_type", "company_name", "platform", "current_status",
                "last_successful_sync"]],
        on=["company_id", "data_type"], how="left",
    )  # fmt: skip
    name = text(joined["company_name"]).fillna(text(flagged["company_name"]))
    platform = text(joined["platform"]).fillna(text(flagged["platform"]))
    data_type = text(flagged["data_type"])
    count = flagged["issue_count"].astype("Int64")
    issue_type = _clean(flagged["issue_type"], 80).fillna("an issue")
    message = _clean(flagged["issue_message"], options.max_message_chars)
    logs = safe_links(flagged["issue_logs"])
    quoted = (': "' + message + '"').fillna("")
    more = (" (and " + (count - 1).astype("string") + " more)").where(count > 1, "")
    no_link = pd.Series(" Codat gave no logs link.", index=flagged.index, dtype="string")
    unsafe = " Its logs link is not an https Codat link and is not shown."
    link = (" Validation logs: " + logs).fillna(no_link.where(flagged["issue_logs"].isna(), unsafe))
    text_out = (
        "The latest read of "
        + data_type
        + " ("
        + text(flagged["event_type"])
        + " at "
        + fmt_ts(flagged["at"])
        + ", status "
        + text(flagged["status"]).fillna("unknown")
        + ") completed with "
        + issue_type
        + quoted
        + more
        + "."
        + link
    )
    return pd.DataFrame(
        {
            "company_id": flagged["company_id"],
            "company_name": name,
            "platform": platform,
            "connection_id": flagged["connection_id"],
            "data_type": flagged["data_type"],
            "current_status": joined["current_status"],
            "last_successful_sync": joined["last_successful_sync"],
            "message": text_out,
            "remedy": "Open the validation logs and check what Codat doubts; if it does not "
            "apply to your use of the data, snooze it; if it does, fix the data in the source "
            "platform and sync again.",
        }
    )


RULE = Rule(
    code="FA403",
    name="validation-warning",
    default_severity="warning",
    options_model=ValidationWarningOptions,
    check=check,
    doc=__doc__ or "",
)
