"""Reports of one audit: ``report.html``, the CSV exports and the email digest.

Compute apart from rendering. One module per job (``docs/reports.md`` has the map):

* :mod:`._view` builds the report's view model from an :class:`~auditor.result.AuditResult`,
  one ``build_*`` function per section; :mod:`._trend` computes the trend chart's geometry;
  :mod:`._rule_docs` parses the rules' docstrings for the appendix;
* :mod:`._env` is the one Jinja environment and its filters; the templates (top-level
  ``templates/``, shipped in the wheel as ``auditor/templates``) hold all markup,
  ``templates/report/`` one partial per section of ``report.html``;
* :mod:`._write` renders and writes ``report.html`` and the CSVs; :mod:`._csv` builds the CSVs
  with pandas;
* the email digest: :mod:`._email_routing` (who gets which findings), :mod:`._email_digest`
  (the message), :mod:`._email_send` (SMTP, ``.eml`` files, the whole delivery); its settings
  are :mod:`auditor.email_settings` (a leaf module the config imports too).
"""

from __future__ import annotations

from auditor.email_settings import EmailRoute, EmailSettings, SmtpSettings

from ._csv import (
    FORMULA_PREFIXES,
    INCIDENT_COLUMNS,
    SUMMARY_COLUMNS,
    incidents_frame,
    neutralise_formulas,
    summary_frame,
    write_csv,
)
from ._email_digest import HTML_BODY_LIMIT, build_digest, digest_subject
from ._email_routing import Delivery, Scope, plan_deliveries
from ._email_send import DigestOutcome, DigestSendError, deliver_digests, send_digest, write_eml
from ._env import get_environment, templates_dir
from ._rule_docs import RuleDoc
from ._view import FleetInfo, ReportView, build_view, rank_findings
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
