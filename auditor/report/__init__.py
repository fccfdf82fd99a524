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
    write_csv,
)
from ._email import (
    HTML_BODY_LIMIT,
    Delivery,
    DigestOutcome,
    DigestSendError,
    EmailRoute,
    EmailSettings,
    Scope,
    SmtpSettings,
    build_digest,
    deliver_digests,
    digest_subject,
    plan_deliveries,
    send_digest,
    write_eml,
)
from ._env import get_environment, templates_dir
from ._model import FleetInfo, ReportView, RuleDoc, build_view, rank_findings
from ._write import ReportPaths, render_report, write_reports

__all__ = [
    "FORMULA_PREFIXES",
    "HTML_BODY_LIMIT",
    "INCIDENT_COLUMNS",
    "SUMMARY_COLUMNS",
    "Delivery",
    "DigestOutcome",
    "DigestSendError",
    "EmailRoute",
    "EmailSettings",
    "FleetInfo",
    "ReportPaths",
    "ReportView",
    "RuleDoc",
    "Scope",
    "SmtpSettings",
    "build_digest",
    "build_view",
    "deliver_digests",
    "digest_subject",
    "get_environment",
    "incidents_frame",
    "neutralise_formulas",
    "plan_deliveries",
    "rank_findings",
    "render_report",
    "send_digest",
    "summary_frame",
    "templates_dir",
    "write_csv",
    "write_eml",
    "write_reports",
]
