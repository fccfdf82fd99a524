"""Connection lifecycle end to end: reading ``dataConnectionErrors``, ``connectionInfo`` and
company ``tags`` (leniently), keeping them in the companies frame, counting not-monitored
companies in the report, and the sandbox serving these shapes (docs/codat-behaviour.md,
"Connection lifecycle")."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from auditor.codat import ParseIssues, parse_company
from auditor.collector._frames import BatchBuilder
from auditor.pipeline import fleet_info
from auditor.report import build_digest, write_reports
from auditor.rules._shared import has_tag, unmonitored_companies
from auditor.sandbox import generate_fleet
from auditor.snapshot import COMPANIES_SCHEMA, Snapshot, conform, tags_json
from auditor.testing.synthetic import tiny_result

AT = datetime(2024, 6, 1, tzinfo=UTC)


def _company(**conn: Any) -> dict[str, Any]:
    return {
        "id": "c1",
        "name": "One",
        "tags": {"region": "uk", "sync": "one-time"},
        "dataConnections": [{"id": "k1", "status": "Deauthorized", **conn}],
    }


def _frame(company: dict[str, Any], issues: ParseIssues | None = None) -> pd.DataFrame:
    parsed = parse_company(company, issues)
    assert parsed is not None
    builder = BatchBuilder(AT)
    builder.add_company(parsed, None)
    return builder.build()["companies"]


def test_the_newest_unresolved_connection_error_is_kept_with_its_time() -> None:
    errors = [
        {"statusCode": 401, "statusText": "Unauthorized", "errorMessage": "Token revoked",
         "erroredOnUtc": "2024-05-20T08:30:00.1234567Z", "status": "Active"},
        {"statusText": "Older", "erroredOnUtc": "2024-04-01T00:00:00Z"},
        {"errorMessage": "Newest but resolved", "erroredOnUtc": "2024-05-30T00:00:00Z",
         "status": "Resolved"},
        {"errorMessage": "Also resolved", "erroredOnUtc": "2024-05-31T00:00:00Z",
         "resolvedOnUtc": "2024-05-31T01:00:00Z"},
    ]  # fmt: skip
    frame = _frame(_company(dataConnectionErrors=errors, connectionInfo={"tenant": "t-1"}))
    row = frame.iloc[0]
    assert row["connection_error"] == "Token revoked"
    assert row["connection_error_at"] == pd.Timestamp("2024-05-20T08:30:00.123456Z")
    assert json.loads(row["connection_info"]) == {"tenant": "t-1"}
    assert row["company_tags"] == '{"region":"uk","sync":"one-time"}'
    assert list(frame.columns) == list(COMPANIES_SCHEMA)


def test_status_text_is_used_when_there_is_no_error_message() -> None:
    frame = _frame(_company(dataConnectionErrors=[{"statusText": "invalid_grant"}]))
    assert frame.iloc[0]["connection_error"] == "invalid_grant"
    assert pd.isna(frame.iloc[0]["connection_error_at"])


def test_malformed_lifecycle_fields_become_null_and_are_counted() -> None:
    issues = ParseIssues()
    company = _company(dataConnectionErrors="boom", connectionInfo=["not", "an", "object"])
    company["tags"] = ["not", "an", "object"]
    frame = _frame(company, issues)
    row = frame.iloc[0]
    assert row["connection_id"] == "k1"  # the connection is kept
    assert row["connection_status"] == "Deauthorized"
    for column in ("connection_error", "connection_info", "company_tags"):
        assert pd.isna(row[column]), column
    assert issues.malformed_fields == {
        "connection.dataConnectionErrors": 1,
        "connection.connectionInfo": 1,
        "company.tags": 1,
    }


def test_an_unreadable_error_time_costs_the_error_list_not_the_connection() -> None:
    issues = ParseIssues()
    frame = _frame(
        _company(dataConnectionErrors=[{"errorMessage": "x", "erroredOnUtc": "yesterday"}]),
        issues,
    )
    assert frame.iloc[0]["connection_status"] == "Deauthorized"
    assert pd.isna(frame.iloc[0]["connection_error"])
    assert issues.malformed_fields == {"connection.dataConnectionErrors": 1}


def test_no_lifecycle_fields_give_nulls() -> None:
    frame = _frame({"id": "c1", "dataConnections": []})
    row = frame.iloc[0]
    assert pd.isna(row["connection_id"])
    assert pd.isna(row["company_tags"])
    assert pd.isna(row["connection_error"])


def test_tags_json_is_canonical_and_has_tag_is_exact() -> None:
    assert tags_json({"b": "2", "a": "é"}) == '{"a":"é","b":"2"}'
    assert tags_json(None) is None
    tags = pd.Series(
        [
            tags_json({"sync": "one-time"}),
            tags_json({"a": "1", "sync": "one-time"}),
            tags_json({"sync": "one-time-ish"}),
            tags_json({"note": '"sync":"one-time"'}),
            tags_json({'x"sync': "one-time"}),
            None,
        ]
    )
    found = has_tag(tags, {"sync": ["one-time"]}).tolist()
    assert found == [True, True, False, False, False, False]


def test_unmonitored_companies() -> None:
    companies = conform(
        pd.DataFrame(
            {
                "company_id": ["a", "a", "b", "c", "d", "d"],
                "connection_id": ["1", "2", None, "3", "4", "5"],
                "connection_status": [
                    "Unlinked", "Unlinked", None, "PendingAuth", "Unlinked", None
                ],
            }
        ),
        COMPANIES_SCHEMA,
    )
    # a: all Unlinked; b: no connection; c: PendingAuth (monitored); d: one unreadable status.
    assert list(unmonitored_companies(companies)) == ["a", "b"]


def test_the_report_counts_companies_not_monitored(tmp_path: Path) -> None:
    companies = conform(
        pd.DataFrame(
            {
                "company_id": ["a", "b", "c"],
                "connection_id": ["1", None, "3"],
                "connection_status": ["Unlinked", None, "Linked"],
            }
        ),
        COMPANIES_SCHEMA,
    )
    fleet = fleet_info(Snapshot(snapshot_id="s", snapshot_at=AT, companies=companies), AT)
    assert fleet.not_monitored == 2
    html = write_reports(tiny_result(as_of=AT), tmp_path, fleet=fleet).report_html.read_text()
    assert "2 not monitored (all connections Unlinked or none)" in html
    msg = build_digest(tiny_result(as_of=AT), recipients=["ops@example.com"], fleet=fleet, now=AT)
    for kind in ("plain", "html"):
        body = msg.get_body((kind,))
        assert body is not None
        assert "2 not monitored (all connections Unlinked or none)" in str(body.get_content())


def test_the_sandbox_serves_errors_tags_and_superseded_connections() -> None:
    fleet = generate_fleet(2000, seed=4, now=AT)
    superseded = errors = pending_only = 0
    for record in fleet:
        conns = record.company["dataConnections"]
        assert record.company["tags"]
        by_source: dict[str, list[dict[str, Any]]] = {}
        for conn in conns:
            by_source.setdefault(conn["sourceType"], []).append(conn)
            if conn["status"] == "Deauthorized":
                assert conn["dataConnectionErrors"][0]["errorMessage"]
                errors += 1
        accounting = by_source.get("Accounting", [])
        if len(accounting) == 2:
            old, new = accounting
            assert (old["status"], new["status"]) == ("Deauthorized", "Linked")
            assert old["created"] < new["created"]
            assert old["platformName"] != new["platformName"]
            superseded += 1
        if conns and all(c["status"] == "PendingAuth" for c in conns):
            pending_only += 1
    assert superseded > 10
    assert errors > superseded
    assert pending_only > 10
