"""Write the report files of one audit: ``report.html`` and the three CSVs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from auditor.result import AuditResult

from ._bounds import bounded
from ._csv import findings_frame, incidents_frame, summary_frame, write_csv
from ._env import get_environment
from ._rule_docs import RuleDoc
from ._view import FleetInfo, ReportView, build_view

__all__ = ["ReportPaths", "render_report", "write_reports"]

REPORT_TEMPLATE = "report.html"


@dataclass(frozen=True)
class ReportPaths:
    """Where :func:`write_reports` put each file."""

    out_dir: Path
    report_html: Path
    findings_csv: Path
    summary_csv: Path
    incidents_csv: Path

    def csvs(self) -> tuple[Path, ...]:
        return (self.findings_csv, self.summary_csv, self.incidents_csv)

    def all(self) -> tuple[Path, ...]:
        return (self.report_html, *self.csvs())


def render_report(view: ReportView) -> str:
    """``report.html`` for ``view``."""
    return get_environment().get_template(REPORT_TEMPLATE).render(view=view)


def write_reports(
    result: AuditResult,
    out_dir: Path | str,
    *,
    history: pd.DataFrame | None = None,
    rules: Sequence[RuleDoc] | None = None,
    display_tz: str = "UTC",
    fleet: FleetInfo | None = None,
    max_rows: int = 2000,
    freshness_history: pd.DataFrame | None = None,
    freshness_target: float = 0.95,
) -> ReportPaths:
    """Write ``report.html``, ``findings.csv``, ``summary.csv`` and ``incidents.csv`` to
    ``out_dir`` (created if missing) and return their paths.

    ``history``: findings by severity per night (``snapshot_date, snapshot_id, severity, count``)
    for the trend chart, may be empty. ``rules``: rule documentation for the appendix (default
    ``auditor.rules.RULES``). ``max_rows``: findings shown inline in the HTML (the worst ones);
    all are in ``findings.csv``. ``freshness_history``: the fleet freshness figure of past
    nights (:func:`auditor.store.freshness_history`), drawn against ``freshness_target``.
    """
    result = bounded(result)  # text from Codat cut to its display limits, once
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = ReportPaths(
        out_dir=out,
        report_html=out / "report.html",
        findings_csv=out / "findings.csv",
        summary_csv=out / "summary.csv",
        incidents_csv=out / "incidents.csv",
    )
    write_csv(findings_frame(result), paths.findings_csv)
    write_csv(summary_frame(result), paths.summary_csv)
    write_csv(incidents_frame(result), paths.incidents_csv)
    view = build_view(
        result,
        history=history,
        rules=rules,
        display_tz=display_tz,
        fleet=fleet,
        max_rows=max_rows,
        freshness_history=freshness_history,
        freshness_target=freshness_target,
        csv_files={
            "findings": paths.findings_csv.name,
            "summary": paths.summary_csv.name,
            "incidents": paths.incidents_csv.name,
        },
    )
    tmp = paths.report_html.with_name(paths.report_html.name + ".tmp")
    tmp.write_text(render_report(view), encoding="utf-8")
    tmp.replace(paths.report_html)
    return paths
