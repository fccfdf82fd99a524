"""A rule that raises costs only the companies it cannot read, never the night."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from auditor.config import AuditConfig
from auditor.engine import MAX_FAILED_COMPANIES, audit
from auditor.ledger import previous_tables
from auditor.rules import RULES, RuleContext, get_rule
from auditor.snapshot import STATUS_SCHEMA, Snapshot, conform

AS_OF = datetime(2024, 6, 2, 6, 0, tzinfo=UTC)


def _fleet(n: int, as_of: datetime = AS_OF) -> Snapshot:
    """Companies c0..c(n-1), all with invoices in FetchError (one finding each)."""
    status = pd.DataFrame(
        [
            {
                "company_id": f"c{i}",
                "company_name": f"c{i}",
                "platform": "Xero",
                "connection_id": f"c{i}-k",
                "connection_status": "Linked",
                "data_type": "invoices",
                "current_status": "FetchError",
                "last_successful_sync": as_of - timedelta(hours=2),
            }
            for i in range(n)
        ]
    )
    return Snapshot("s", as_of, status=conform(status, STATUS_SCHEMA))


def _breaking(monkeypatch: pytest.MonkeyPatch, rule_name: str, bad: set[str] | None) -> None:
    """Make ``rule_name`` raise on any partition holding a company in ``bad`` (None: always)."""
    rule = get_rule(rule_name)
    original = rule.check

    def check(ctx: RuleContext) -> pd.DataFrame:
        ids = set(ctx.status["company_id"].astype(str))
        if bad is None or ids & bad:
            raise ValueError("cannot read this")
        return original(ctx)

    swapped = tuple(replace(r, check=check) if r.name == rule_name else r for r in RULES)
    monkeypatch.setattr(AuditConfig, "enabled_rules", lambda self: swapped)


def test_a_rule_failing_on_one_company_costs_only_that_company(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _breaking(monkeypatch, "failed-after-success", {"c7"})
    result = audit(_fleet(20), as_of=AS_OF)
    f = result.findings
    fas = f.loc[f["rule"] == "failed-after-success"]
    assert set(fas["company_id"]) == {f"c{i}" for i in range(20)}
    bad = fas.loc[fas["company_id"] == "c7"]
    assert bad["message"].str.contains("could not be evaluated for this company").all()
    assert bad["severity"].astype(str).tolist() == ["error"]
    assert not fas.loc[fas["company_id"] != "c7", "message"].str.contains("evaluated").any()
    [failure] = result.rule_failures
    assert (failure.rule, failure.companies, failure.fleet_wide) == (
        "failed-after-success", ("c7",), False
    )
    assert "cannot read this" in failure.error


def test_a_rule_failing_everywhere_is_one_fleet_finding_and_resolves_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    night1 = audit(_fleet(3, AS_OF - timedelta(days=1)), as_of=AS_OF - timedelta(days=1))
    assert len(night1.findings) == 3
    _breaking(monkeypatch, "failed-after-success", None)
    result = audit(_fleet(80), as_of=AS_OF,
                   previous=previous_tables(night1.findings, [night1.resolved]))
    [failure] = result.rule_failures
    assert failure.fleet_wide
    f = result.findings
    fleet = f.loc[f["company_id"].isna()]
    assert len(fleet) == 1
    assert "could not be evaluated for any company" in str(fleet["message"].iloc[0])
    # Last night's incidents of that rule are carried, not resolved.
    assert result.resolved.empty
    carried = f.loc[f["carried_over"].fillna(False).astype(bool)]
    assert sorted(carried["company_id"]) == ["c0", "c1", "c2"]
    assert len(f) == 1 + 3
    assert MAX_FAILED_COMPANIES < 80


def test_a_failing_fleet_rule_keeps_the_partition_findings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _breaking(monkeypatch, "provider-incident", None)
    result = audit(_fleet(5), as_of=AS_OF)
    [failure] = result.rule_failures
    assert (failure.rule, failure.fleet_wide) == ("provider-incident", True)
    assert (result.findings["rule"] == "failed-after-success").sum() == 5


def test_an_incomplete_audit_says_so_first_in_the_report_and_the_digest(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import email
    from email.policy import default as default_policy

    from auditor.report import build_digest, write_reports

    _breaking(monkeypatch, "failed-after-success", {"c1"})
    result = audit(_fleet(4), as_of=AS_OF)
    assert result.incomplete
    html = write_reports(result, tmp_path).report_html.read_text()
    notices = html.index("audit is incomplete")
    assert notices < html.index("Since last night")
    assert "rule failed-after-success (FA201) failed for 1 company" in html
    msg = build_digest(result, recipients=["ops@example.com"])
    assert "INCOMPLETE" in str(msg["Subject"])
    parsed = email.message_from_bytes(msg.as_bytes(), policy=default_policy)
    text = parsed.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert text.index("!! The audit is incomplete") < text.index("New:")


def test_hours_since_reads_a_column_of_no_time_dtype_as_missing() -> None:
    import numpy as np

    from auditor.vectors import hours_since

    now = pd.Timestamp("2024-06-02T06:00Z")
    assert hours_since(pd.Series([np.nan, None], dtype=object), now).isna().all()
    got = hours_since(pd.Series(["2024-06-02T04:00:00Z", "soon"], dtype=object), now)
    assert got.iloc[0] == 2.0
    assert pd.isna(got.iloc[1])
