"""Many companies on one platform fail the same way tonight: probably a provider outage.

What it flags
    Fleet-wide, after the other rules: for each platform x data type x rule x status, the
    number of companies with such a finding. When it is at least ``min_companies`` (20) and at
    least ``min_percent`` (10 %) of that platform's companies, one ``provider-incident`` finding
    (error, no company) says how many companies are affected. The per-company findings stay,
    with ``provider_incident`` set to the incident's key. Only the rules in ``rules`` count
    (by default the status-based ones: failed-after-success, first-sync-failed, stuck-sync,
    needs-relink, stale, unknown-status).

Why it matters
    When Xero or a bank feed has an outage, 3,000 identical lines hide everything else in the
    report. Ops need to see one outage, raise one ticket, and still see the companies involved.

How to fix
    Check the platform's status page and Codat's (status.codat.io); raise one ticket with
    Codat for the platform and data type; when it is fixed, queue syncs for the affected
    companies (their findings carry this incident's key).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import Field

from auditor.rules._base import Rule, RuleContext, RuleOptions
from auditor.vectors import isin, text

__all__ = ["RULE", "ProviderIncidentOptions", "annotate", "check", "member_keys"]

_PREFIX = "provider-incident"


class ProviderIncidentOptions(RuleOptions):
    """``[rules.provider-incident]``: how many companies make an outage."""

    min_companies: int = Field(
        default=20, ge=1, description="At least this many companies with the same finding."
    )
    min_percent: float = Field(
        default=10.0,
        ge=0,
        le=100,
        description="And at least this percentage of the platform's companies.",
    )
    rules: list[str] = Field(
        description="The rules whose findings count towards an incident.",
        default_factory=lambda: [
            "failed-after-success",
            "first-sync-failed",
            "stuck-sync",
            "needs-relink",
            "stale",
            "unknown-status",
        ]
    )


def member_keys(findings: pd.DataFrame) -> pd.Series:
    """The provider-incident key each per-company finding would belong to."""
    return (
        _PREFIX
        + "|"
        + text(findings["platform"], "")
        + "|"
        + text(findings["data_type"], "")
        + "|"
        + text(findings["rule"], "")
        + "|"
        + text(findings["current_status"], "")
    )


def check(ctx: RuleContext) -> pd.DataFrame:
    """One finding per platform x data type x rule x status affecting many companies."""
    opts = ctx.opts(ProviderIncidentOptions)
    findings = ctx.findings
    if findings is None or findings.empty:
        return pd.DataFrame()
    eligible = findings.loc[
        isin(findings["rule"], opts.rules)
        & findings["company_id"].notna().to_numpy()
        & findings["platform"].notna().to_numpy(),
        ["company_id", "platform", "data_type", "rule", "current_status"],
    ]
    if eligible.empty:
        return pd.DataFrame()
    keys = ["platform", "data_type", "rule", "current_status"]
    company_codes, _ = pd.factorize(eligible["company_id"])
    grouped = pd.DataFrame(
        {k: eligible[k].astype("category") for k in keys} | {"company": company_codes}
    ).groupby(keys, observed=True, dropna=False, sort=True)
    affected = pd.DataFrame(grouped["company"].nunique().rename("affected")).reset_index()
    affected = affected.loc[affected["affected"] >= opts.min_companies]
    if affected.empty:
        return pd.DataFrame()
    affected = affected.assign(**{k: text(affected[k], "") for k in keys}).rename(
        columns={"rule": "member_rule"}
    )
    companies = ctx.companies
    sizes = (
        companies.assign(platform=text(companies["platform"], ""))
        .drop_duplicates(["company_id", "platform"])
        .groupby("platform")
        .size()
    )
    known = sizes.reindex(affected["platform"]).fillna(0).to_numpy()
    affected["platform_companies"] = np.maximum(known, affected["affected"].to_numpy())
    affected["percent"] = 100.0 * affected["affected"] / affected["platform_companies"]
    hit = affected.loc[affected["percent"] >= opts.min_percent]
    if hit.empty:
        return pd.DataFrame()
    what = hit["data_type"].where(hit["data_type"] != "", "connections")
    status = (" in " + hit["current_status"]).where(hit["current_status"] != "", "")
    message = (
        hit["affected"].astype("string")
        + " companies ("
        + hit["percent"].round(0).astype("Int64").astype("string")
        + "% of the "
        + hit["platform_companies"].astype("string")
        + " on "
        + hit["platform"]
        + ") have "
        + hit["member_rule"]
        + " findings for "
        + what
        + status
        + " tonight: probably a provider or Codat outage, not "
        + hit["affected"].astype("string")
        + " separate problems."
    )
    incident_key = (
        _PREFIX
        + "|"
        + hit["platform"]
        + "|"
        + hit["data_type"]
        + "|"
        + hit["member_rule"]
        + "|"
        + hit["current_status"]
    )
    return pd.DataFrame(
        {
            "platform": hit["platform"],
            "data_type": hit["data_type"].where(hit["data_type"] != ""),
            "current_status": hit["current_status"].where(hit["current_status"] != ""),
            "message": message,
            "remedy": "Check "
            + hit["platform"]
            + "'s status page and status.codat.io; raise one ticket with Codat for "
            + hit["platform"]
            + " / "
            + what
            + "; once fixed, queue syncs for the affected companies (their findings carry "
            "this incident's key).",
            "incident_key": incident_key,
        }
    )


def annotate(findings: pd.DataFrame, incidents: pd.DataFrame) -> pd.DataFrame:
    """Mark each per-company finding that belongs to one of ``incidents``."""
    keys = member_keys(findings)
    member = isin(keys, incidents["incident_key"].dropna()) & findings[
        "company_id"
    ].notna().to_numpy(dtype=bool)
    if not member.any():
        return findings
    out = findings.copy()
    out["provider_incident"] = keys.where(member).astype("string")
    return out


RULE = Rule(
    code="FA501",
    name="provider-incident",
    default_severity="error",
    options_model=ProviderIncidentOptions,
    check=check,
    doc=__doc__ or "",
    scope="fleet",
    annotate=annotate,
)
