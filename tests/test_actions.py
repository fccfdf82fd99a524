"""The ranked actions table (auditor.actions): pure, so tested on hand-made findings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from auditor.actions import (
    ACTION_COLUMNS,
    ACTIONS,
    RELINK_COLUMNS,
    build_actions,
    relinks_frame,
)
from auditor.engine import apply_coverage
from auditor.findings import conform_findings
from auditor.result import AuditResult

AS_OF = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
TYPES = ("bills", "invoices", "payments", "customers", "suppliers", "journals", "items",
         "accounts", "taxRates", "creditNotes")  # fmt: skip


def finding(**kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "rule": "stale",
        "severity": "warning",
        "company_id": "c1",
        "company_name": "Acme",
        "platform": "Xero",
        "connection_id": "k1",
        "data_type": "invoices",
        "message": "Invoices are 3 days old.",
        "remedy": "Queue a sync.",
        "code": "FA101",
        "state": "ongoing",
        "first_seen": pd.Timestamp(AS_OF) - timedelta(days=2),
        "nights_open": 3,
        "snoozed": False,
        "as_of": pd.Timestamp(AS_OF),
    }
    row["incident_key"] = f"{row['rule']}|{kw.get('company_id', 'c1')}|{kw.get('data_type', '')}"
    row.update(kw)
    return row


def result(rows: list[dict[str, Any]], covered: list[dict[str, Any]] | None = None) -> AuditResult:
    return AuditResult(
        snapshot_id="s",
        as_of=AS_OF,
        findings=conform_findings(pd.DataFrame(rows)),
        covered=conform_findings(pd.DataFrame(covered or [{}])).iloc[: len(covered or [])],
    )


def test_columns_are_fixed_and_empty_input_gives_an_empty_table() -> None:
    empty = build_actions(AuditResult(snapshot_id="s", as_of=AS_OF))
    assert tuple(empty.columns) == ACTION_COLUMNS
    assert empty.empty
    out = build_actions(result([finding()]))
    assert tuple(out.columns) == ACTION_COLUMNS
    assert set(out["action"]) <= set(ACTIONS)
    assert out["rank"].tolist() == [1]


def test_ten_failing_types_of_one_company_are_one_row() -> None:
    rows = [finding(data_type=t) for t in TYPES] + [finding(company_id="c2", company_name="Beta")]
    out = build_actions(result(rows))
    assert len(out) == 2
    acme = out.loc[out["company_id"] == "c1"].iloc[0]
    assert acme["data_type_count"] == 10
    assert acme["findings"] == 10
    assert acme["data_types"] == ", ".join(sorted(TYPES))
    assert acme["action"] == "queue-refresh"


def test_ranked_by_severity_then_new_before_ongoing_then_impact() -> None:
    rows = [
        # warning, new, 1 type
        finding(company_id="w-new", severity="warning", state="new"),
        # error, ongoing, 3 types
        *[finding(company_id="e-old-3", severity="error", data_type=t) for t in TYPES[:3]],
        # error, ongoing, 1 type
        finding(company_id="e-old-1", severity="error"),
        # error, regressed (counts as new), 1 type
        finding(company_id="e-reg", severity="error", state="regressed"),
        # error, new, 2 types: one finding new, one ongoing -> the row is new
        finding(company_id="e-new-2", severity="error", state="new"),
        finding(company_id="e-new-2", severity="error", data_type="bills"),
    ]
    out = build_actions(result(rows))
    assert out["company_id"].tolist() == ["e-new-2", "e-reg", "e-old-3", "e-old-1", "w-new"]
    assert out["state"].tolist() == ["new", "regressed", "ongoing", "ongoing", "new"]


def test_snoozed_findings_never_count() -> None:
    rows = [finding(severity="error", snoozed=True), finding(company_id="c2")]
    out = build_actions(result(rows))
    assert out["company_id"].tolist() == ["c2"]


def test_needs_relink_lists_what_it_explains_and_sends_only_an_https_codat_link() -> None:
    relink = finding(rule="needs-relink", severity="error", data_type=None, code="FA301",
                     current_status="AuthError", state="new",
                     message="The connection is Deauthorized. This also explains 2 stale "
                     "finding(s), not listed separately.")
    stale = [finding(data_type=t) for t in ("bills", "invoices")]
    shown, covered = apply_coverage(conform_findings(pd.DataFrame([relink, *stale])))
    assert len(shown) == 1
    assert len(covered) == 2
    other = finding(rule="needs-relink", severity="error", data_type=None, company_id="c2",
                    connection_id="k2", code="FA301")
    audit = AuditResult(snapshot_id="s", as_of=AS_OF,
                        findings=pd.concat([shown, conform_findings(pd.DataFrame([other]))]),
                        covered=covered)
    connections = pd.DataFrame(
        {
            "company_id": ["c1", "c2"],
            "connection_id": ["k1", "k2"],
            "link_url": ["https://link.codat.io/c1/start", "javascript:alert(1)"],
            "connection_error": ["=HYPERLINK(evil)", None],
        }
    )
    out = build_actions(audit, connections=connections).set_index("company_id")
    assert out.loc["c1", "action"] == "relink"
    assert out.loc["c1", "data_types"] == "bills, invoices"
    assert out.loc["c1", "findings"] == 3
    assert out.loc["c1", "link_url"] == "https://link.codat.io/c1/start"
    assert "https://link.codat.io/c1/start" in out.loc["c1", "action_text"]
    assert "finding(s)" not in out.loc["c1", "message"]
    assert pd.isna(out.loc["c2", "link_url"])  # javascript: is never kept
    assert "javascript" not in out.loc["c2", "action_text"]
    relinks = relinks_frame(out.reset_index(), connections)
    assert tuple(relinks.columns) == RELINK_COLUMNS
    assert relinks["company_id"].tolist() == ["c1", "c2"]
    assert relinks["error"].iloc[0] == "=HYPERLINK(evil)"  # neutralised when written (CSV)


def test_a_provider_incident_is_one_row_for_all_its_companies() -> None:
    key = "provider-incident|Xero|invoices|stale|"
    members = [
        finding(company_id=f"c{i}", provider_incident=key, severity="error", state="new")
        for i in range(25)
    ]
    fleet = finding(rule="provider-incident", company_id=None, company_name=None,
                    connection_id=None, severity="error", code="FA501", incident_key=key,
                    message="25 companies on Xero have stale findings for invoices.")
    other = finding(company_id="solo", platform="Sage")
    out = build_actions(result([*members, fleet, other]))
    assert len(out) == 2
    outage = out.iloc[0]
    assert outage["rule"] == "provider-incident"
    assert outage["action"] == "wait"
    assert outage["companies"] == 25
    assert pd.isna(outage["company_id"])
    assert "Xero" in outage["action_text"]
    assert out.iloc[1]["company_id"] == "solo"


def test_refresh_outcomes_and_pull_operation_ids_choose_the_action() -> None:
    rows = [
        finding(company_id="worked"),
        finding(company_id="failed", rule="failed-after-success", current_status="FetchError"),
        finding(company_id="running"),
        finding(company_id="stuck", rule="stuck-sync", current_status="Queued"),
        finding(company_id="none"),
        finding(company_id="ratelimited", rule="failed-after-success",
                current_status="RateLimitError"),
    ]
    refreshes = pd.DataFrame(
        {
            "company_id": ["worked", "failed", "running"],
            "data_type": ["invoices"] * 3,
            "result": ["worked", "failed", "running"],
        }
    )
    status = pd.DataFrame(
        {
            "company_id": ["failed", "stuck"],
            "data_type": ["invoices", "invoices"],
            "latest_sync_id": ["op-failed-1234567890", "op-stuck"],
        }
    )
    out = build_actions(result(rows), refreshes=refreshes, status=status).set_index("company_id")
    assert out.loc["worked", "action"] == "refresh-worked"
    assert out.loc["running", "action"] == "refresh-running"
    assert out.loc["failed", "action"] == "contact-support"
    assert out.loc["failed", "pull_operation_id"] == "op-failed-1234567890"
    assert "op-failed-1234567890" in out.loc["failed", "action_text"]
    assert out.loc["failed", "refresh_result"] == "failed"
    assert out.loc["stuck", "action"] == "contact-support"
    assert out.loc["stuck", "pull_operation_id"] == "op-stuck"
    assert out.loc["none", "action"] == "queue-refresh"
    assert out.loc["ratelimited", "action"] == "wait"
    assert pd.isna(out.loc["none", "pull_operation_id"])


def test_a_fleet_wide_finding_without_company_is_its_own_row() -> None:
    rows = [finding(rule="not-collected", company_id=None, company_name=None, data_type=None,
                    connection_id=None, severity="error", incident_key="not-collected|settings",
                    remedy="Re-run the snapshot.")]
    out = build_actions(result(rows))
    assert len(out) == 1
    assert out.iloc[0]["action"] == "follow-remedy"
    assert out.iloc[0]["action_text"] == "Re-run the snapshot."
