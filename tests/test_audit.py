"""The audit as a whole: registry, entry point, partitions, CLI listing."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pandas as pd
import pytest
from typer.testing import CliRunner

from auditor.cli import app
from auditor.config import AuditConfig
from auditor.engine import RuleError, audit, audit_partition
from auditor.findings import FINDINGS_COLUMNS, FINDINGS_SCHEMA
from auditor.rules import RULES, Rule, RuleOptions, get_rule, make_registry
from auditor.testing.snapshots import AS_OF, synthetic_snapshot

CONTRACT_NAMES = {
    "stale", "failed-after-success", "cross-type-skew", "first-sync-failed", "never-synced",
    "token-expiry-risk", "stuck-sync", "needs-relink", "unknown-status", "not-collected",
    "provider-incident", "never-linked", "history-window", "validation-warning",
}


@pytest.fixture(scope="module")
def fleet():  # type: ignore[no-untyped-def]
    return synthetic_snapshot(400, seed=3)


def test_registry_holds_the_contract_rules_with_docs() -> None:
    assert {r.name for r in RULES} == CONTRACT_NAMES
    for rule in RULES:
        assert rule.code.startswith("FA")
        assert get_rule(rule.code) is rule
        assert get_rule(rule.name) is rule
        assert rule.default_severity in {"warning", "error"}
        assert rule.summary
        assert rule.summary == rule.doc.strip().splitlines()[0]
        for section in ("What it flags", "Why it matters", "How to fix"):
            assert section in rule.doc, (rule.name, section)
    with pytest.raises(KeyError):
        get_rule("nope")


def test_registry_refuses_duplicates() -> None:
    stale = get_rule("stale")
    with pytest.raises(ValueError, match="duplicate rule 'FA101'"):
        make_registry([stale, replace(stale, name="other")])
    with pytest.raises(ValueError, match="duplicate rule 'stale'"):
        make_registry([stale, replace(stale, code="FA999")])


def test_findings_table_shape(fleet) -> None:  # type: ignore[no-untyped-def]
    result = audit(fleet, as_of=AS_OF)
    f = result.findings
    assert tuple(f.columns) == FINDINGS_COLUMNS
    assert len(f) > 0
    assert set(f["severity"].astype(str)) <= {"warning", "error"}
    assert f["incident_key"].is_unique
    assert f["message"].notna().all()
    assert f["remedy"].notna().all()
    assert (f["as_of"] == pd.Timestamp(AS_OF)).all()
    assert set(f["state"].astype(str)) == {"new"}
    assert not f["snoozed"].any()
    # errors first
    sev = list(f["severity"].astype(str))
    assert sev == sorted(sev, key=lambda s: s != "error")
    for column, kind in FINDINGS_SCHEMA.items():
        if kind == "timestamp":
            assert str(f[column].dtype) == "datetime64[ns, UTC]", column


def test_partitions_give_the_same_findings(fleet) -> None:  # type: ignore[no-untyped-def]
    whole = audit(fleet, as_of=AS_OF).findings
    chunked = audit(fleet, as_of=AS_OF, chunk_size=37).findings
    pd.testing.assert_frame_equal(whole, chunked, check_categorical=False)
    ids = list(fleet.company_ids)
    parts = [audit_partition(fleet.partition(ids[i : i + 100]), AuditConfig(), AS_OF)
             for i in range(0, len(ids), 100)]
    assert sum(len(p) for p in parts) == (whole["rule"] != "provider-incident").sum()


def test_naive_as_of_means_utc(fleet) -> None:  # type: ignore[no-untyped-def]
    aware = audit(fleet, as_of=datetime(2024, 6, 1, tzinfo=UTC)).findings
    naive = audit(fleet, as_of=datetime(2024, 6, 1)).findings
    pd.testing.assert_frame_equal(aware, naive)


def test_a_failing_rule_raises_a_clear_error(fleet) -> None:  # type: ignore[no-untyped-def]
    def broken(ctx):  # type: ignore[no-untyped-def]
        raise KeyError("boom")

    import importlib

    audit_module = importlib.import_module("auditor.engine")

    bad = Rule("FA999", "broken", "warning", RuleOptions, broken, "Broken.")
    ctx = audit_module._context(fleet, bad, AuditConfig(), pd.Timestamp.now(tz="UTC"))
    with pytest.raises(RuleError, match=r"rule broken \(FA999\) failed"):
        audit_module._run(bad, ctx)


def test_empty_snapshot_gives_an_empty_table() -> None:
    from auditor.snapshot import Snapshot

    result = audit(Snapshot("empty", AS_OF), as_of=AS_OF)
    assert result.findings.empty
    assert tuple(result.findings.columns) == FINDINGS_COLUMNS


def test_cli_lists_rules_and_prints_docs() -> None:
    runner = CliRunner()
    listing = runner.invoke(app, ["rules"])
    assert listing.exit_code == 0, listing.output
    for rule in RULES:
        assert rule.code in listing.output
        assert rule.name in listing.output
    one = runner.invoke(app, ["rules", "FA203"])
    assert one.exit_code == 0, one.output
    assert "connector is probably offline" in one.output
    assert "on_premise_platforms" in one.output
    unknown = runner.invoke(app, ["rules", "nope"])
    assert unknown.exit_code == 2


def test_registry_refuses_bad_coverage() -> None:
    stale, skew = get_rule("stale"), get_rule("cross-type-skew")
    with pytest.raises(ValueError, match="unknown rule 'nope'"):
        make_registry([replace(stale, covered_by=("nope",))])
    with pytest.raises(ValueError, match="cycle: stale <- cross-type-skew <- stale"):
        make_registry([replace(stale, covered_by=("cross-type-skew",)), skew])


def test_a_covered_incident_is_not_resolved(fleet) -> None:  # type: ignore[no-untyped-def]
    """Stale last night, failing tonight: the stale incident is covered, not resolved."""
    from auditor.snapshot import SCHEMAS, Snapshot, conform

    def night(status: str) -> Snapshot:
        row = {"company_id": "c1", "company_name": "c1 Ltd", "platform": "Xero",
               "connection_id": "c1-conn", "connection_status": "Linked",
               "data_type": "invoices", "current_status": status,
               "last_successful_sync": datetime(2024, 5, 12, tzinfo=UTC)}
        frame = conform(pd.DataFrame([row]), SCHEMAS["status"])
        return Snapshot("n", AS_OF, status=frame)

    first = audit(night("Complete"), as_of=AS_OF)
    assert list(first.findings["rule"].astype(str)) == ["stale"]
    second = audit(night("FetchError"), as_of=AS_OF, previous=first.findings)
    assert list(second.findings["rule"].astype(str)) == ["failed-after-success"]
    assert "also explains 1 stale" in str(second.findings["message"].iloc[0])
    assert second.resolved.empty
