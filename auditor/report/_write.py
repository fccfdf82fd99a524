"""Write the report files of one audit: ``report.html`` and the CSVs (``findings.csv``,
``summary.csv``, ``incidents.csv``, ``actions.csv``, ``relinks.csv``, and ``refreshes.csv``
when refreshes were queued after the previous audit)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from auditor.actions import ACTION_COLUMNS, build_actions, relinks_frame
from auditor.remediation import REFRESH_OUTCOME_COLUMNS
from auditor.result import AuditResult
from auditor.safe_text import clip_series

from ._bounds import bounded
from ._csv import findings_frame, incidents_frame, summary_frame, write_csv
from ._env import get_environment
from ._rule_docs import RuleDoc
from ._view import FleetInfo, ReportView, build_view

__all__ = [
    "DEFAULT_START_HERE",
    "ReportPaths",
    "refreshes_csv_frame",
    "relinks_csv_frame",
    "render_report",
    "write_reports",
]

REPORT_TEMPLATE = "report.html"
#: Start-here actions shown at the top of the report by default.
DEFAULT_START_HERE = 10
#: The most of Codat's error text ``relinks.csv`` quotes per connection.
RELINK_ERROR_LIMIT = 1000


@dataclass(frozen=True)
class ReportPaths:
    """Where :func:`write_reports` put each file."""

    out_dir: Path
    report_html: Path
    findings_csv: Path
    summary_csv: Path
    incidents_csv: Path
    #: The whole ranked actions table (:data:`auditor.actions.ACTION_COLUMNS`).
    actions_csv: Path | None = None
    #: Connections to re-authorise: the list to mail customers.
    relinks_csv: Path | None = None
    #: What the refreshes queued after the previous audit did (None: none were queued).
    refreshes_csv: Path | None = None

    def csvs(self) -> tuple[Path, ...]:
        extra = (self.actions_csv, self.relinks_csv, self.refreshes_csv)
        return (
            self.findings_csv,
            self.summary_csv,
            self.incidents_csv,
            *(p for p in extra if p is not None),
        )

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
    actions: pd.DataFrame | None = None,
    refreshes: pd.DataFrame | None = None,
    connections: pd.DataFrame | None = None,
    start_here: int = DEFAULT_START_HERE,
    freshness_history: pd.DataFrame | None = None,
    freshness_target: float = 0.95,
) -> ReportPaths:
    """Write ``report.html``, ``findings.csv``, ``summary.csv``, ``incidents.csv``,
    ``actions.csv``, ``relinks.csv`` (and ``refreshes.csv`` when ``refreshes`` has rows) to
    ``out_dir`` (created if missing) and return their paths.

    ``history``: findings by severity per night (``snapshot_date, snapshot_id, severity, count``)
    for the trend chart, may be empty. ``rules``: rule documentation for the appendix (default
    ``auditor.rules.RULES``). ``max_rows``: findings shown inline in the HTML (the worst ones);
    all are in ``findings.csv``. ``actions``: the ranked actions table
    (:func:`auditor.actions.build_actions`; default: built from ``result`` alone, without
    links or pull operation ids); its first ``start_here`` rows are the report's "Start here".
    ``refreshes``: :func:`auditor.remediation.refresh_outcomes` of last night's refreshes.
    ``connections``: the snapshot's ``companies`` frame, for Codat's error text in
    ``relinks.csv``.
    ``freshness_history``: the fleet freshness figure of past nights
    (:func:`auditor.store.freshness_history`), drawn against ``freshness_target``.
    """
    result = bounded(result)  # text from Codat cut to its display limits, once
    if actions is None:
        actions = build_actions(result, refreshes=refreshes)
    has_refreshes = refreshes is not None and not refreshes.empty
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    actions_csv, relinks_csv = out / "actions.csv", out / "relinks.csv"
    paths = ReportPaths(
        out_dir=out,
        report_html=out / "report.html",
        findings_csv=out / "findings.csv",
        summary_csv=out / "summary.csv",
        incidents_csv=out / "incidents.csv",
        actions_csv=actions_csv,
        relinks_csv=relinks_csv,
        refreshes_csv=out / "refreshes.csv" if has_refreshes else None,
    )
    write_csv(findings_frame(result), paths.findings_csv)
    write_csv(summary_frame(result), paths.summary_csv)
    write_csv(incidents_frame(result), paths.incidents_csv)
    write_csv(actions.reindex(columns=list(ACTION_COLUMNS)), actions_csv)
    write_csv(relinks_csv_frame(actions, connections), relinks_csv)
    if paths.refreshes_csv is not None and refreshes is not None:
        write_csv(refreshes_csv_frame(refreshes), paths.refreshes_csv)
    csv_files = {
        "findings": paths.findings_csv.name,
        "summary": paths.summary_csv.name,
        "incidents": paths.incidents_csv.name,
        "actions": actions_csv.name,
        "relinks": relinks_csv.name,
    }
    if paths.refreshes_csv is not None:
        csv_files["refreshes"] = paths.refreshes_csv.name
    view = build_view(
        result,
        history=history,
        rules=rules,
        display_tz=display_tz,
        fleet=fleet,
        max_rows=max_rows,
        csv_files=csv_files,
        actions=actions,
        refreshes=refreshes,
        start_here=start_here,
        freshness_history=freshness_history,
        freshness_target=freshness_target,
    )
    tmp = paths.report_html.with_name(paths.report_html.name + ".tmp")
    tmp.write_text(render_report(view), encoding="utf-8")
    tmp.replace(paths.report_html)
    return paths


def relinks_csv_frame(actions: pd.DataFrame, connections: pd.DataFrame | None) -> pd.DataFrame:
    """``relinks.csv`` (:data:`auditor.actions.RELINK_COLUMNS`), Codat's error text cut to
    :data:`RELINK_ERROR_LIMIT` characters."""
    frame = relinks_frame(actions, connections)
    return frame.assign(error=clip_series(frame["error"], RELINK_ERROR_LIMIT))


def refreshes_csv_frame(refreshes: pd.DataFrame) -> pd.DataFrame:
    """``refreshes.csv``: :data:`auditor.remediation.REFRESH_OUTCOME_COLUMNS`, one row per
    refreshed company × data type."""
    return refreshes.reindex(columns=list(REFRESH_OUTCOME_COLUMNS))
