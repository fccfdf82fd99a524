"""Runs the table-driven rule cases in ``tests/rules/*.yml`` (sqlfluff style).

Each file is about one rule::

    rule: stale                      # the rule under test (name or code)
    as_of: "2024-06-01T00:00:00Z"
    defaults: {status: {...}, companies: {...}}   # optional, merged into every row
    cases:
      - name: exactly_at_the_warning_threshold
        config: {rules: {stale: {warn_after: 48}}}   # optional, as in config.toml
        sync_settings: [...]   # rows of the snapshot frames (see auditor.snapshot)
        companies: [...]
        status: [...]
        errors: [...]
        pull_operations: [...]
        events: [...]          # webhook events (auditor.events.EVENTS_SCHEMA); absent: no log
        expected: [{severity: warning, data_type: invoices}]   # [] = no finding

A frame row may carry ``repeat: N``: it is expanded into N rows whose string values have
``{i}`` replaced by 0..N-1. Expected rows list only the columns that matter; ``message_contains``
and ``remedy_contains`` check substrings (``*_not_contains``: substrings that must be absent).
Findings and expected rows are matched regardless of order, and their numbers must be equal
(an expected row may also carry ``repeat: N``).
Timestamps are parsed with Codat's parser (7-digit fractions, ``Z``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from auditor.codat import parse_codat_datetime
from auditor.config import AuditConfig
from auditor.engine import audit
from auditor.events import EVENTS_SCHEMA
from auditor.rules import RULES, get_rule
from auditor.snapshot import SCHEMAS, Snapshot, conform

CASES_DIR = Path(__file__).parent / "rules"

_ROW_DEFAULTS: dict[str, dict[str, Any]] = {
    "status": {
        "company_name": "{company_id} Ltd",
        "platform": "Xero",
        "integration_key": "gbol",
        "source_type": "Accounting",
        "connection_id": "{company_id}-conn",
        "connection_status": "Linked",
    },
    "events": {
        "event_type": "read.completed",
        "connection_id": "{company_id}-conn",
        "status": "Complete",
    },
    "companies": {
        "company_name": "{company_id} Ltd",
        "platform": "Xero",
        "integration_key": "gbol",
        "source_type": "Accounting",
        "connection_id": "{company_id}-conn",
        "connection_status": "Linked",
        "link_url": "https://link.codat.io/companies/{company_id}",
    },
}


def _expand(rows: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for row in rows:
        count = int(row.get("repeat", 1))
        for i in range(count):
            yield {
                k: (v.replace("{i}", str(i)) if isinstance(v, str) else v)
                for k, v in row.items()
                if k != "repeat"
            }


def _frame(name: str, rows: list[dict[str, Any]], defaults: dict[str, Any]) -> pd.DataFrame:
    schema = SCHEMAS[name] if name != "events" else EVENTS_SCHEMA
    records = []
    for n, row in enumerate(_expand(rows)):
        if name == "events":
            row = {"event_id": f"evt-{n}", **row}
        full = {**_ROW_DEFAULTS.get(name, {}), **defaults.get(name, {}), **row}
        for key, value in list(full.items()):
            if isinstance(value, str) and "{company_id}" in value:
                full[key] = value.replace("{company_id}", str(full.get("company_id")))
            if schema.get(key) == "timestamp":
                full[key] = parse_codat_datetime(value)
        records.append(full)
    frame = pd.DataFrame(records, columns=list(schema)) if records else pd.DataFrame()
    return conform(frame, schema)


def _config(rule: str, case: dict[str, Any]) -> AuditConfig:
    data = dict(case.get("config") or {})
    rules = dict(data.get("rules") or {})
    rules.setdefault("select", [rule])
    data["rules"] = rules
    return AuditConfig.model_validate(data)


def _matches(row: pd.Series, expected: dict[str, Any]) -> bool:
    for key, want in expected.items():
        if key in {"message_contains", "remedy_contains"}:
            text = str(row[key.removesuffix("_contains")])
            wants = want if isinstance(want, list) else [want]
            if not all(w in text for w in wants):
                return False
            continue
        if key in {"message_not_contains", "remedy_not_contains"}:
            text = str(row[key.removesuffix("_not_contains")])
            wants = want if isinstance(want, list) else [want]
            if any(w in text for w in wants):
                return False
            continue
        got = row[key]
        if want is None:
            if not pd.isna(got):
                return False
        elif pd.isna(got):
            return False
        elif isinstance(want, float | int) and not isinstance(want, bool):
            if not math.isclose(float(got), float(want), abs_tol=0.01):
                return False
        elif isinstance(want, datetime | str) and key in {"last_successful_sync"}:
            if pd.Timestamp(got) != pd.Timestamp(parse_codat_datetime(want)):
                return False
        elif str(got) != str(want):
            return False
    return True


def _load_cases() -> Iterator[Any]:
    for path in sorted(CASES_DIR.glob("*.yml")):
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        for case in spec["cases"]:
            yield pytest.param(spec, case, id=f"{path.stem}:{case['name']}")


@pytest.mark.parametrize(("spec", "case"), list(_load_cases()))
def test_rule_case(spec: dict[str, Any], case: dict[str, Any]) -> None:
    rule = get_rule(spec["rule"])
    as_of = parse_codat_datetime(case.get("as_of", spec["as_of"]))
    defaults = {**spec.get("defaults", {}), **case.get("defaults", {})}
    frames = {name: _frame(name, case.get(name) or [], defaults) for name in SCHEMAS}
    events = _frame("events", case["events"], defaults) if "events" in case else None
    snapshot = Snapshot(snapshot_id="case", snapshot_at=as_of, events=events, **frames)
    result = audit(snapshot, _config(rule.name, case), as_of=as_of)
    findings = result.findings
    expected = list(_expand(case.get("expected") or []))
    unmatched = list(range(len(findings)))
    missing = []
    for want in expected:
        hit = next((i for i in unmatched if _matches(findings.iloc[i], want)), None)
        if hit is None:
            missing.append(want)
        else:
            unmatched.remove(hit)
    shown = findings[
        ["rule", "severity", "company_id", "connection_id", "data_type", "group", "age_hours",
         "threshold_hours", "message"]
    ]
    problem = (
        f"expected but not found: {missing}\n"
        f"found but not expected:\n{shown.iloc[unmatched].to_string()}"
    )
    assert not missing, problem
    assert not unmatched, problem
    assert set(findings["rule"].astype(str)) <= {rule.name, *case.get("also_rules", [])}
    assert findings["message"].notna().all()
    assert findings["remedy"].notna().all()
    assert findings["incident_key"].is_unique


def test_every_rule_has_cases() -> None:
    covered = {
        get_rule(yaml.safe_load(p.read_text(encoding="utf-8"))["rule"]).name
        for p in CASES_DIR.glob("*.yml")
    }
    assert covered == {r.name for r in RULES}
