"""Reports of one audit: ``report.html``, the CSV exports and the email digest.

Compute apart from rendering: :mod:`._model` builds a view model from an
:class:`~auditor.result.AuditResult`; Jinja templates (top-level ``templates/``, shipped in the
wheel as ``auditor/templates``) hold all markup; :mod:`._csv` writes the CSVs with pandas.
"""

from __future__ import annotations

from ._csv import (
    FORMULA_PREFIXES,
    INCIDENT_COLUMNS,
    SUMMARY_COLUMNS,
    incidents_frame,
    neutralise_formulas,
    summary_frame,
)
from ._env import get_environment, templates_dir
from ._model import FleetInfo, ReportView, RuleDoc, build_view, rank_findings
from ._write import ReportPaths, render_report, write_reports

__all__ = [
    "FORMULA_PREFIXES",
    "INCIDENT_COLUMNS",
    "SUMMARY_COLUMNS",
    "FleetInfo",
    "ReportPaths",
    "ReportView",
    "RuleDoc",
    "build_view",
    "get_environment",
    "incidents_frame",
    "neutralise_formulas",
    "rank_findings",
    "render_report",
    "summary_frame",
    "templates_dir",
    "write_reports",
]
