"""CSV exports: fixed columns, safe against spreadsheet formula injection, round-trippable."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from auditor.findings import FINDINGS_COLUMNS
from auditor.report import (
    FORMULA_PREFIXES,
    INCIDENT_COLUMNS,
    SUMMARY_COLUMNS,
    neutralise_formulas,
    write_reports,
)
from auditor.testing.synthetic import HOSTILE_NAMES, tiny_result

AS_OF = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("csv")
    write_reports(tiny_result(as_of=AS_OF), out)
    return out


def test_findings_csv_has_the_fixed_columns_in_order(written: Path) -> None:
    with (written / "findings.csv").open(newline="", encoding="utf-8") as fh:
        header = next(csv.reader(fh))
    assert tuple(header) == FINDINGS_COLUMNS


def test_findings_csv_holds_every_finding_including_snoozed(written: Path) -> None:
    rows = _read(written / "findings.csv")
    assert len(rows) == len(HOSTILE_NAMES) + 1
    snoozed = [r for r in rows if r["company_id"] == "c-snz"]
    assert snoozed[0]["snoozed"] == "True"


def test_no_text_cell_can_run_as_a_formula(written: Path) -> None:
    for name in ("findings.csv", "summary.csv", "incidents.csv"):
        for row in _read(written / name):
            for column, value in row.items():
                if column in {
                    "age_hours",
                    "threshold_hours",
                    "nights_open",
                    "findings",
                    "companies",
                    "new",
                    "regressed",
                    "ongoing",
                }:
                    continue
                assert not value.startswith(tuple(FORMULA_PREFIXES)), (name, column, value)


def test_hostile_names_are_prefixed_with_a_quote_and_otherwise_intact(written: Path) -> None:
    names = {r["company_id"]: r["company_name"] for r in _read(written / "findings.csv")}
    for i, hostile in enumerate(HOSTILE_NAMES):
        got = names[f"c-{i:03d}"]
        if hostile[0] in FORMULA_PREFIXES:
            assert got == "'" + hostile
        else:
            assert got == hostile
    remedy = _read(written / "findings.csv")[0]["remedy"]
    assert remedy == "'=cmd|' /C calc'!A0"


def test_negative_numbers_stay_numbers(written: Path) -> None:
    frame = pd.read_csv(written / "findings.csv")
    assert frame["age_hours"].dtype == "float64"
    assert (frame["age_hours"] == -1.5).sum() == 1


def test_timestamps_are_iso_utc(written: Path) -> None:
    row = _read(written / "findings.csv")[0]
    assert row["as_of"] == "2026-11-23T02:00:00Z"
    assert row["last_successful_sync"].endswith("Z")


def test_summary_counts_by_rule_severity_platform_without_snoozed(written: Path) -> None:
    rows = _read(written / "summary.csv")
    assert tuple(rows[0]) == SUMMARY_COLUMNS
    assert sum(int(r["findings"]) for r in rows) == len(HOSTILE_NAMES)
    keys = [(r["rule"], r["severity"], r["platform"]) for r in rows]
    assert len(keys) == len(set(keys))


def test_incidents_include_resolved_one_row_per_key(written: Path) -> None:
    rows = _read(written / "incidents.csv")
    assert tuple(rows[0]) == INCIDENT_COLUMNS
    keys = [r["incident_key"] for r in rows]
    assert len(keys) == len(set(keys)) == len(HOSTILE_NAMES) + 2
    states = {r["incident_key"]: r["state"] for r in rows}
    assert states["k-res"] == "resolved"
    assert states["k-0"] == "new"


def test_neutralise_touches_text_only() -> None:
    frame = pd.DataFrame(
        {
            "name": pd.Series(["=1+1", "ok", None, "-x"], dtype="string"),
            "cat": pd.Series(["@a", "b", "c", "d"]).astype("category"),
            "num": [-1.0, 2.0, -3.5, 0.0],
            "count": pd.Series([-1, 2, None, 4], dtype="Int64"),
        }
    )
    out = neutralise_formulas(frame)
    assert out["name"].tolist()[:2] == ["'=1+1", "ok"]
    assert pd.isna(out["name"].iloc[2])
    assert out["name"].iloc[3] == "'-x"
    assert out["cat"].iloc[0] == "'@a"
    assert out["num"].tolist() == [-1.0, 2.0, -3.5, 0.0]
    assert out["count"].dtype == "Int64"


def test_empty_result_writes_headers_only(tmp_path: Path) -> None:
    from auditor.result import AuditResult

    write_reports(AuditResult(snapshot_id="s", as_of=AS_OF), tmp_path)
    for name, cols in (
        ("findings.csv", FINDINGS_COLUMNS),
        ("summary.csv", SUMMARY_COLUMNS),
        ("incidents.csv", INCIDENT_COLUMNS),
    ):
        text = (tmp_path / name).read_bytes().decode("utf-8")
        assert next(csv.reader(io.StringIO(text))) == list(cols)
        assert text.count("\r\n") == 1
