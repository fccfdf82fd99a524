"""The fleet freshness SLA figure: its definition (pure), the engine's figure (covered stale rows
count), its storage per night, the trend's line against the configured target, results.json."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from auditor.config import AuditConfig
from auditor.findings import empty_findings
from auditor.freshness import FleetFreshness, fleet_freshness
from auditor.pipeline import audit_store
from auditor.report import build_view, render_report
from auditor.report._env import format_percent
from auditor.report._trend import build_freshness, night_freshness
from auditor.result import AuditResult
from auditor.rules._base import Monitoring
from auditor.snapshot import Snapshot
from auditor.store import freshness_history, write_snapshot

START = datetime(2026, 11, 1, 6, tzinfo=UTC)


def _status(rows: list[tuple[str, str, str, str]]) -> pd.DataFrame:
    """(company, connection, data type, current status) rows of a status frame."""
    return pd.DataFrame(
        {
            "company_id": [r[0] for r in rows],
            "connection_id": [r[1] for r in rows],
            "data_type": [r[2] for r in rows],
            "current_status": [r[3] for r in rows],
        }
    ).astype("category")


def _companies(rows: list[tuple[str, str, str, str]]) -> pd.DataFrame:
    """(company, connection, platform, connection status) rows of a companies frame."""
    return pd.DataFrame(
        {
            "company_id": [r[0] for r in rows],
            "connection_id": [r[1] for r in rows],
            "platform": [r[2] for r in rows],
            "integration_key": [None] * len(rows),
            "connection_status": [r[3] for r in rows],
        }
    )


def _findings(rows: list[tuple[str, str | None, str | None, bool]]) -> pd.DataFrame:
    """(rule, company, data type, snoozed) findings."""
    return pd.DataFrame(
        {
            "rule": [r[0] for r in rows],
            "company_id": [r[1] for r in rows],
            "data_type": [r[2] for r in rows],
            "snoozed": [r[3] for r in rows],
        }
    )


STATUS = _status(
    [
        ("a", "ka", "invoices", "Complete"),
        ("a", "ka", "bills", "Complete"),
        ("a", "ka2", "bills", "Complete"),  # a second connection: still one company x type
        ("a", "ka", "payments", "NotSupported"),  # not monitored
        ("b", "kb", "invoices", "FetchError"),
        ("b", "kb", "bills", "Complete"),
        ("u", "ku", "invoices", "Complete"),  # company u: every connection Unlinked
        ("q", "kq", "invoices", "Complete"),  # connection Deauthorized by design
    ]
)
COMPANIES = _companies(
    [
        ("a", "ka", "Xero", "Linked"),
        ("a", "ka2", "Xero", "Linked"),
        ("b", "kb", "Sage", "Linked"),
        ("u", "ku", "Xero", "Unlinked"),
        ("q", "kq", "Legacy", "Deauthorized"),
    ]
)


def test_monitored_rows_and_fresh_ones_by_definition() -> None:
    monitoring = Monitoring(expected_deauthorized_platforms=["Legacy"])
    clean = fleet_freshness(STATUS, COMPANIES, empty_findings(), monitoring)
    assert clean == FleetFreshness(monitored=4, fresh=4)  # a/invoices a/bills b/invoices b/bills
    assert clean.share == 1.0
    without = fleet_freshness(STATUS, COMPANIES, empty_findings())
    assert without.monitored == 5  # q counts when its Deauthorized connection is not expected


def test_only_unsnoozed_findings_of_the_staleness_rules_count() -> None:
    findings = _findings(
        [
            ("stale", "a", "invoices", False),  # not fresh
            ("stale", "a", "invoices", False),  # the same pair twice: counted once
            ("never-synced", "b", "bills", False),  # not fresh
            ("stale", "b", "invoices", True),  # snoozed: left out, like every count
            ("failed-after-success", "a", "bills", False),  # not a staleness rule
            ("needs-relink", "a", None, False),  # no data type: not a pair
            ("stale", "u", "invoices", False),  # not monitored: not in the figure at all
            ("stale", "zz", "invoices", False),  # not in tonight's status: ignored
        ]
    )
    figure = fleet_freshness(
        STATUS, COMPANIES, findings, Monitoring(expected_deauthorized_platforms=["Legacy"])
    )
    assert figure == FleetFreshness(monitored=4, fresh=2)
    assert figure.stale == 2
    assert figure.share == 0.5
    assert fleet_freshness(STATUS.iloc[0:0], COMPANIES, findings).share is None


def test_stored_figures_are_read_back_strictly() -> None:
    assert FleetFreshness.from_json({"monitored": 10, "fresh": 7, "share": 0.7}) == (
        FleetFreshness(10, 7)
    )
    for bad in (None, [], {"monitored": 10}, {"monitored": 5, "fresh": 6},
                {"monitored": True, "fresh": 0}, {"monitored": "10", "fresh": 1}):
        assert FleetFreshness.from_json(bad) is None


def test_percent_never_rounds_up_to_a_hundred() -> None:
    assert format_percent(0.95) == "95%"
    assert format_percent(1.0) == "100%"
    assert format_percent(0.99996) == "99.9%"
    assert format_percent(0.9745) == "97.4%"
    assert format_percent(None) == "—"


def test_the_target_is_a_validated_config_option() -> None:
    assert AuditConfig().report.freshness_target == 0.95
    config = AuditConfig.model_validate({"report": {"freshness_target": 0.9}})
    assert config.report.freshness_target == 0.9
    for bad in (0, 1.5, -0.1, float("nan"), "high"):
        with pytest.raises(ValidationError):
            AuditConfig.model_validate({"report": {"freshness_target": bad}})
    with pytest.raises(ValidationError):
        AuditConfig.model_validate({"report": {"freshness_targte": 0.9}})


def _result(day: date, monitored: int, fresh: int) -> AuditResult:
    at = datetime(day.year, day.month, day.day, 2, tzinfo=UTC)
    return AuditResult(snapshot_id=f"n-{day:%Y%m%d}", as_of=at,
                       freshness=FleetFreshness(monitored, fresh))


def _history(days: list[tuple[date, int, int]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "snapshot_date": [d for d, _, _ in days],
            "snapshot_id": [f"n-{d:%Y%m%d}" for d, _, _ in days],
            "monitored": [m for _, m, _ in days],
            "fresh": [f for _, _, f in days],
        }
    )


def test_the_chart_has_one_point_per_night_dates_and_a_target_line() -> None:
    tonight = date(2026, 11, 23)
    past = [(tonight - timedelta(days=k), 1000, 990 - 10 * k) for k in range(6, 0, -1)]
    past.pop(2)  # a night without a figure: the line breaks there
    chart = build_freshness(_history(past), _result(tonight, 1000, 960), target=0.95)
    assert [p.day for p in chart.points][-1] == tonight
    assert len(chart.points) == 6
    assert chart.points[-1].tonight
    assert chart.points[-1].share == 0.96
    assert chart.path.count("M") == 2  # a gap
    assert chart.tonight == FleetFreshness(1000, 960)
    # the target sits between the 96 % and the 93 % points (y grows downwards)
    by_share = {round(p.share, 3): p.y for p in chart.points}
    assert by_share[0.96] < chart.target_y < by_share[0.93]
    assert chart.ticks[-1][1] == 1.0
    assert chart.ticks[0][1] <= 0.93
    assert chart.points[-1].label == "23 Nov"
    assert [p.below_target for p in chart.points] == [True, True, False, False, False, False]
    # tonight already in the history: not added twice
    again = night_freshness(_history([*past, (tonight, 1000, 960)]), _result(tonight, 1000, 960))
    assert len(again) == 6


def test_the_report_draws_the_target_and_tonights_figure() -> None:
    tonight = date(2026, 11, 23)
    history = _history([(tonight - timedelta(days=1), 2000, 1900)])
    view = build_view(_result(tonight, 2000, 1800), freshness_history=history,
                      freshness_target=0.92)
    html = render_report(view)
    assert 'class="target-line"' in html
    assert "target 92%" in html
    assert "Fresh tonight" in html
    assert ">90%<" in html
    assert "1,800 of 2,000" in html
    assert "below-target" in html
    y = float(re.search(r'class="target-line"[^>]*y1="([0-9.]+)"', html).group(1))  # type: ignore[union-attr]
    assert y == view.freshness.target_y
    empty = render_report(build_view(AuditResult(snapshot_id="s", as_of=START)))
    assert "No freshness figure yet" in empty
    assert "Fresh tonight" not in empty


def _night(day: int, *, invoices_age_h: float, connection: str = "Linked") -> Snapshot:
    at = START + timedelta(days=day)
    status = pd.DataFrame(
        {
            "company_id": ["c1", "c1", "c2"],
            "company_name": ["Acme Ltd", "Acme Ltd", "Bolt plc"],
            "platform": ["Xero"] * 3,
            "source_type": ["Accounting"] * 3,
            "connection_id": ["k1", "k1", "k2"],
            "connection_status": [connection, connection, "Linked"],
            "data_type": ["invoices", "customers", "invoices"],
            "current_status": ["Complete"] * 3,
            "last_successful_sync": [at - timedelta(hours=invoices_age_h),
                                     at - timedelta(hours=2), at - timedelta(hours=2)],
            "latest_sync_id": [f"s{day}a", f"s{day}b", f"s{day}c"],
            "latest_successful_sync_id": [f"s{day}a", f"s{day}b", f"s{day}c"],
            "snapshot_at": [at] * 3,
        }
    )
    companies = pd.DataFrame(
        {
            "company_id": ["c1", "c2"],
            "company_name": ["Acme Ltd", "Bolt plc"],
            "connection_id": ["k1", "k2"],
            "platform": ["Xero", "Xero"],
            "source_type": ["Accounting", "Accounting"],
            "connection_status": [connection, "Linked"],
            "link_url": ["https://link.example/k1", "https://link.example/k2"],
            "snapshot_at": [at, at],
        }
    )
    return Snapshot(f"night{day}", at, status=status, companies=companies).conformed()


def test_each_night_stores_its_figure_and_the_trend_reads_it_back(tmp_path: Path) -> None:
    store, out = tmp_path / "store", tmp_path / "out"
    nights = [
        _night(0, invoices_age_h=2),
        _night(1, invoices_age_h=900),  # stale (the default weekly schedule: 336 h)
        _night(2, invoices_age_h=900, connection="Deauthorized"),  # stale, under needs-relink
    ]
    runs = []
    for snap in nights:
        write_snapshot(store, snap)
        runs.append(audit_store(store, which=snap.snapshot_id, as_of=snap.snapshot_at,
                                out_dir=out,
                                config=AuditConfig.model_validate(
                                    {"report": {"freshness_target": 0.9}})))
    assert [r.result.freshness for r in runs] == [
        FleetFreshness(3, 3), FleetFreshness(3, 2), FleetFreshness(3, 2),
    ]
    last = runs[-1].result
    rules = set(last.findings["rule"].astype("string"))
    assert "needs-relink" in rules
    assert "stale" not in rules
    meta = json.loads((store / "snapshot_date=2026-11-03" / "night2" / "findings.json").read_text())
    assert meta["freshness"] == {"monitored": 3, "fresh": 2, "share": 2 / 3}
    table = freshness_history(store, 30)
    assert table["fresh"].tolist() == [3, 2, 2]
    assert table["snapshot_date"].tolist() == [date(2026, 11, 1), date(2026, 11, 2),
                                               date(2026, 11, 3)]
    html = (out / "report.html").read_text(encoding="utf-8")
    assert html.count('class="dot') == 3
    assert "target 90%" in html
    assert "66.6%" in html


def test_a_night_stored_before_the_figure_existed_is_a_gap(tmp_path: Path) -> None:
    store = tmp_path / "store"
    snap = _night(0, invoices_age_h=2)
    write_snapshot(store, snap)
    audit_store(store, which=snap.snapshot_id, as_of=snap.snapshot_at)
    meta_path = store / "snapshot_date=2026-11-01" / "night0" / "findings.json"
    meta = json.loads(meta_path.read_text())
    del meta["freshness"]
    meta_path.write_text(json.dumps(meta))
    assert freshness_history(store, 30).empty


def test_results_json_carries_tonights_figure() -> None:
    from auditor.results_json import build_results

    result = replace(AuditResult(snapshot_id="s", as_of=START), freshness=FleetFreshness(8, 6))

    class _Run:  # the attributes build_results reads
        snapshot = Snapshot("s", START)
        fleet = type("F", (), {"collection_errors": 0})()
        reports = None
        stored = True
        not_stored = ""

    _Run.result = result  # type: ignore[attr-defined]
    doc = build_results(command="audit", run_id="r", exit_code=0, reason="ok", as_of=START,
                        store=Path("s"), out_dir=Path("o"), audit=_Run())  # type: ignore[arg-type]
    assert doc["freshness"] == {"monitored": 8, "fresh": 6, "share": 0.75}
    schema = json.loads((Path(__file__).resolve().parents[1] / "schemas" /
                         "results.schema.json").read_text())
    assert "freshness" in schema["properties"]
