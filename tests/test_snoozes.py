"""Snoozes: matching, expiry, the file format and its errors."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest

from auditor.config import ConfigError
from auditor.engine import audit
from auditor.snapshot import STATUS_SCHEMA, Snapshot, conform
from auditor.snoozes import Snooze, apply_snoozes, load_snoozes, split_expired

ROOT = Path(__file__).resolve().parents[1]
AS_OF = datetime(2024, 6, 1, 6, 0, tzinfo=UTC)


def _snapshot() -> Snapshot:
    rows = [
        ("c1", "Xero", "invoices", "FetchError"),
        ("c1", "Xero", "bills", "FetchError"),
        ("c2", "Xero", "invoices", "FetchError"),
        ("c3", "Sage", "invoices", "FetchError"),
    ]
    status = pd.DataFrame(
        [
            {
                "company_id": c,
                "company_name": c,
                "platform": p,
                "connection_id": f"{c}-k",
                "connection_status": "Linked",
                "data_type": t,
                "current_status": s,
                "last_successful_sync": "2024-05-31T00:00:00Z",
            }
            for c, p, t, s in rows
        ]
    )
    return Snapshot("s", AS_OF, status=conform(status, STATUS_SCHEMA))


def _snooze(**kw: object) -> Snooze:
    base: dict[str, object] = {
        "rule": "failed-after-success", "reason": "known", "owner": "ops", "until": "2024-06-30",
    }
    return Snooze.model_validate({**base, **kw})


def test_snoozed_findings_stay_marked_and_leave_the_active_set() -> None:
    result = audit(
        _snapshot(),
        as_of=AS_OF,
        snoozes=[_snooze(company_id="c1", data_type="invoices"), _snooze(platform="Sage")],
    )
    f = result.findings.set_index(["company_id", "data_type"])
    assert bool(f.loc[("c1", "invoices"), "snoozed"])
    assert f.loc[("c1", "invoices"), "snooze_reason"] == "known (ops, until 2024-06-30)"
    assert not bool(f.loc[("c1", "bills"), "snoozed"])
    assert not bool(f.loc[("c2", "invoices"), "snoozed"])
    assert bool(f.loc[("c3", "invoices"), "snoozed"])
    assert len(result.findings) == 4
    assert set(result.active["company_id"] + "/" + result.active["data_type"].astype(str)) == {
        "c1/bills", "c2/invoices"
    }


def test_rule_must_match_and_code_is_accepted() -> None:
    findings = audit(_snapshot(), as_of=AS_OF).findings
    other_rule = apply_snoozes(findings, [_snooze(rule="stale", company_id="c1")])
    assert not other_rule["snoozed"].any()
    by_code = apply_snoozes(findings, [_snooze(rule="FA201", company_id="c2")])
    assert by_code["snoozed"].sum() == 1


def test_expiry_is_inclusive_of_until_day() -> None:
    on_the_day = _snooze(company_id="c1", until="2024-06-01")
    expired = _snooze(company_id="c2", until="2024-05-31", reason="old", owner="sam")
    active, frame = split_expired([on_the_day, expired], AS_OF)
    assert active == [on_the_day]
    assert frame.to_dict("records") == [
        {"rule": "failed-after-success", "company_id": "c2", "data_type": None, "platform": None,
         "group": None, "reason": "old", "owner": "sam", "until": date(2024, 5, 31)}
    ]
    result = audit(_snapshot(), as_of=AS_OF, snoozes=[on_the_day, expired])
    assert list(result.expired_snoozes["company_id"]) == ["c2"]
    snoozed = result.findings.loc[result.findings["snoozed"].astype(bool), "company_id"]
    assert set(snoozed) == {"c1"}


def test_example_file_loads_and_audit_accepts_a_path() -> None:
    snoozes = load_snoozes(ROOT / "snoozes.example.toml")
    assert [s.rule for s in snoozes] == ["stale", "provider-incident"]
    result = audit(_snapshot(), as_of=AS_OF, snoozes=ROOT / "snoozes.example.toml")
    assert result.expired_snoozes.empty


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[[snoozes]]\nrule = "stale"\ncompany_id = "c1"\nowner = "me"\nuntil = 2024-01-01\n',
         "snoozes.toml:1: snoozes.0.reason: Field required"),
        ('[[snoozes]]\nrule = "stael"\ncompany_id = "c1"\nreason = "r"\nowner = "o"\n'
         "until = 2024-01-01\n", "snoozes.toml:2: snoozes.0.rule:"),
        ('[[snoozes]]\nrule = "stale"\nreason = "r"\nowner = "o"\nuntil = 2024-01-01\n',
         "at least one of company_id, data_type, platform, group"),
        ('[[snoozes]]\nrule = "stale"\ncompany_id = "a"\nreason = "r"\nowner = "o"\n'
         'until = 2024-01-01\n\n[[snoozes]]\nrule = "stale"\ncompany_id = "b"\nreason = "r"\n'
         'owner = "o"\nuntil = "someday"\n', "snoozes.toml:13: snoozes.1.until:"),
    ],
)
def test_snooze_file_errors(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "snoozes.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_snoozes(path)
    assert expected.replace("snoozes.toml", str(path)) in str(info.value)
