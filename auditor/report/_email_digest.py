"""The email digest: what changed tonight, small enough for any mail client.

:func:`build_digest` builds one :class:`~email.message.EmailMessage`: an HTML part
(``templates/digest.html``: inline styles, no script, no remote images; under
:data:`HTML_BODY_LIMIT` bytes whatever the fleet size), a plain-text part
(``templates/digest.txt``), and the CSVs attached (optionally ``report.html``). Its view model
is :class:`DigestView` (:func:`build_digest_view`).

Snoozed findings are left out of every count and list of the digest.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, make_msgid
from typing import Final

import pandas as pd

from auditor.email_settings import EmailSettings
from auditor.findings import FINDINGS_COLUMNS
from auditor.result import AuditResult

from ._bounds import bounded
from ._csv import findings_frame, incidents_frame, summary_frame, to_csv_bytes
from ._email_routing import Scope
from ._env import format_count, format_local, get_environment, resolve_tz
from ._events import EventsView, build_events_view
from ._rule_docs import RuleDoc, load_rules
from ._view import (
    Change,
    FindingRow,
    FleetInfo,
    RuleTotal,
    build_change,
    build_notices,
    build_rule_totals,
    finding_rows,
    rank_findings,
    unsnoozed,
)
from ._write import ReportPaths

__all__ = [
    "HTML_BODY_LIMIT",
    "DigestSection",
    "DigestView",
    "build_digest",
    "build_digest_view",
    "digest_subject",
]

#: Bytes the HTML body may take (Gmail clips messages whose HTML passes ~102 KB).
HTML_BODY_LIMIT: Final[int] = 100_000
#: The message policy: SMTP line ends; long header lines allowed (up to 200 characters) so that
#: the subject is never folded (CPython's folder doubles a space before an encoded "—").
MESSAGE_POLICY: Final = SMTP_POLICY.clone(max_line_length=200)


@dataclass(frozen=True)
class DigestSection:
    key: str  # new | regressed | resolved | oldest
    title: str
    rows: tuple[FindingRow, ...]
    total: int

    @property
    def more(self) -> int:
        return self.total - len(self.rows)


@dataclass(frozen=True)
class DigestView:
    """Everything the digest shows."""

    title: str
    subject: str
    day: str
    tz: str
    as_of: datetime
    snapshot_id: str
    scope: str | None
    change: Change
    open_errors: int
    open_warnings: int
    companies_audited: int | None
    sections: tuple[DigestSection, ...]
    rule_totals: tuple[RuleTotal, ...]
    attachments: tuple[str, ...]
    #: What makes tonight's audit incomplete (:func:`~._view.build_notices`), shown first.
    notices: tuple[str, ...] = ()
    #: Companies not monitored (every connection Unlinked, or none); None when unknown.
    not_monitored: int | None = None
    #: Connection events since the previous audit (``digest/_events.*``); whole fleet only.
    events: EventsView | None = None

    @property
    def open_total(self) -> int:
        return self.open_errors + self.open_warnings


def _plural(n: int, word: str) -> str:
    return f"{format_count(n)} {word}{'' if n == 1 else 's'}"


def digest_subject(change: Change, open_total: int, day: str, prefix: str = "[freshness]") -> str:
    """E.g. ``[freshness] 12 new errors, 3 resolved — 2026-11-23``."""
    parts = []
    if change.new_errors:
        parts.append(f"{_plural(change.new_errors, 'new error')}")
    if change.new_warnings:
        parts.append(f"{_plural(change.new_warnings, 'new warning')}")
    if change.regressed:
        parts.append(f"{format_count(change.regressed)} regressed")
    if change.resolved:
        parts.append(f"{format_count(change.resolved)} resolved")
    if not parts:
        parts.append(f"no change, {format_count(open_total)} open" if open_total else "all clear")
    return f"{prefix} {', '.join(parts)} — {day}".strip()


def _section_frames(
    active: pd.DataFrame, resolved: pd.DataFrame
) -> list[tuple[str, str, pd.DataFrame]]:
    state = active["state"].astype("string")
    sev = active["severity"].astype("string")
    oldest = active.loc[(state == "ongoing").fillna(False) & (sev == "error").fillna(False)]
    return [
        ("new", "New tonight", active.loc[(state == "new").fillna(False)]),
        (
            "regressed",
            "Regressed (were resolved, are back)",
            active.loc[(state == "regressed").fillna(False)],
        ),
        ("resolved", "Resolved since last night", resolved),
        ("oldest", "Still open: the oldest errors", oldest),
    ]


def build_digest_view(
    result: AuditResult,
    *,
    subject_prefix: str,
    rules: Sequence[RuleDoc],
    display_tz: str,
    fleet: FleetInfo,
    scope: Scope,
    attachments: Sequence[str],
    max_items: int,
) -> DigestView:
    """The digest's view model: ``result`` cut to ``scope``, at most ``max_items`` rows per
    section."""
    scoped = scope.apply(result)
    active = scoped.active.reindex(columns=list(FINDINGS_COLUMNS))
    resolved = unsnoozed(scoped.resolved).reindex(columns=list(FINDINGS_COLUMNS))
    change = build_change(active, resolved)
    sev = active["severity"].astype("string")
    open_errors = int((sev == "error").fillna(False).sum())
    open_warnings = int((sev == "warning").fillna(False).sum())
    as_of = fleet.as_of or result.as_of
    day = format_local(as_of, display_tz, "%Y-%m-%d", zone_name=False)
    sections = tuple(
        DigestSection(
            key,
            title,
            finding_rows(rank_findings(frame).head(max_items), text_limit=240),
            len(frame),
        )
        for key, title, frame in _section_frames(active, resolved)
    )
    totals = tuple(t for t in build_rule_totals(active, rules) if t.total)
    notices = build_notices(result, fleet)
    subject = digest_subject(change, open_errors + open_warnings, day, subject_prefix)
    if result.incomplete:  # never let an incomplete night read as a normal one in an inbox
        subject = subject.replace(subject_prefix, f"{subject_prefix} INCOMPLETE:", 1)
    return DigestView(
        title=fleet.title,
        subject=subject,
        day=day,
        tz=display_tz,
        as_of=as_of,
        snapshot_id=fleet.snapshot_id or result.snapshot_id,
        scope=scope.label(),
        change=change,
        open_errors=open_errors,
        open_warnings=open_warnings,
        companies_audited=fleet.companies_audited,
        sections=sections,
        rule_totals=totals,
        attachments=tuple(attachments),
        notices=notices,
        not_monitored=fleet.not_monitored,
        events=build_events_view(fleet.events, limit=max_items) if scope.everything else None,
    )


@dataclass(frozen=True)
class _Attachment:
    filename: str
    data: bytes
    maintype: str
    subtype: str


def _csv_attachments(result: AuditResult, gzip_above: int) -> list[_Attachment]:
    out = []
    for name, frame in (
        ("findings.csv", findings_frame(result)),
        ("summary.csv", summary_frame(result)),
        ("incidents.csv", incidents_frame(result)),
    ):
        data = to_csv_bytes(frame)
        if len(data) > gzip_above:
            out.append(
                _Attachment(name + ".gz", gzip.compress(data, mtime=0), "application", "gzip")
            )
        else:
            out.append(_Attachment(name, data, "text", "csv"))
    return out


def _render_bodies(view: DigestView) -> tuple[str, str]:
    env = get_environment()
    html = env.get_template("digest.html").render(view=view)
    text = env.get_template("digest.txt").render(view=view)
    return html, text


def build_digest(
    result: AuditResult,
    *,
    settings: EmailSettings | None = None,
    recipients: Iterable[str] = (),
    scope: Scope | None = None,
    rules: Sequence[RuleDoc] | None = None,
    display_tz: str = "UTC",
    fleet: FleetInfo | None = None,
    report_paths: ReportPaths | None = None,
    attach_report: bool | None = None,
    sender: str | None = None,
    now: datetime | None = None,
) -> EmailMessage:
    """The digest of ``result`` as one message (HTML + text + attachments).

    ``scope`` limits it to part of the fleet (routing, see
    :func:`~auditor.report.plan_deliveries`); the CSVs attached then hold that part only.
    ``report_paths``' ``report.html`` is attached when ``attach_report`` (default:
    ``settings.attach_report``). The HTML body is cut (fewer items per section) until it fits
    :data:`HTML_BODY_LIMIT`.
    """
    settings = settings or EmailSettings()
    result = bounded(result)  # text from Codat cut to its display limits, once
    scope = scope or Scope()
    resolve_tz(display_tz)
    fleet = fleet or FleetInfo()
    rules = tuple(load_rules() if rules is None else rules)
    scoped = scope.apply(result)
    files = _csv_attachments(scoped, settings.gzip_above_bytes)
    want_report = settings.attach_report if attach_report is None else attach_report
    if want_report and report_paths is not None and report_paths.report_html.is_file():
        files.append(
            _Attachment("report.html", report_paths.report_html.read_bytes(), "text", "html")
        )

    max_items = settings.max_items
    while True:
        view = build_digest_view(
            result,
            subject_prefix=settings.subject_prefix,
            rules=rules,
            display_tz=display_tz,
            fleet=fleet,
            scope=scope,
            attachments=[f.filename for f in files],
            max_items=max_items,
        )
        html, text = _render_bodies(view)
        if len(html.encode("utf-8")) <= HTML_BODY_LIMIT or max_items == 0:
            break
        max_items //= 2

    msg = EmailMessage(policy=MESSAGE_POLICY)
    msg["Subject"] = view.subject
    from_ = sender or settings.sender or "freshness-auditor@localhost"
    msg["From"] = from_
    to = [r for r in recipients if r]
    if to:
        msg["To"] = ", ".join(to)
    msg["Date"] = format_datetime(now or datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain=from_.rpartition("@")[2] or "localhost")
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auditor-Snapshot"] = view.snapshot_id
    msg.set_content(text, subtype="plain", charset="utf-8")
    msg.add_alternative(html, subtype="html", charset="utf-8")
    for f in files:
        msg.add_attachment(f.data, maintype=f.maintype, subtype=f.subtype, filename=f.filename)
    return msg
