"""The email digest: what changed tonight, small enough for any mail client.

:func:`build_digest` builds one :class:`~email.message.EmailMessage`: an HTML part
(``templates/digest.html``: inline styles, no script, no remote images; under
:data:`HTML_BODY_LIMIT` bytes whatever the fleet size), a plain-text part
(``templates/digest.txt``), and the CSVs attached (optionally ``report.html``). Its view model
is :class:`DigestView` (:func:`build_digest_view`).

It leads with **Start here**: the first ``[email] start_here`` rows of the ranked actions table
(:mod:`auditor.actions`), one per company × root cause with its one action. The sections
below (new, regressed, oldest errors) list root causes the same way, so one company with ten
failing data types takes one entry, never ten. Then the refresh outcomes of last night's
refreshes. ``relinks.csv`` and ``refreshes.csv`` are attached with the other CSVs. Ids are
shortened to their first 8 characters (full ids in a ``title`` and the CSVs) so that it reads
at 600 px.

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

from auditor.actions import ACTION_COLUMNS, build_actions
from auditor.email_settings import EmailSettings
from auditor.findings import FINDINGS_COLUMNS
from auditor.result import AuditResult

from ._actions_view import ActionItem, RefreshSummary, action_items, build_refresh_summary
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
    errors_and_warnings,
    finding_rows,
    rank_findings,
    unsnoozed,
)
from ._write import ReportPaths, refreshes_csv_frame, relinks_csv_frame

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


#: Start-here entries of the digest when ``[email] start_here`` is not set.
DEFAULT_DIGEST_START_HERE: Final[int] = 10
#: Refresh outcomes listed in the digest (failed first); the rest are in refreshes.csv.
DIGEST_REFRESH_ROWS: Final[int] = 10
_EXPLAINS: Final[str] = r"\s*This also explains .*$"


@dataclass(frozen=True)
class DigestSection:
    """One section: root causes (``items``, one per company × root cause) for new, regressed
    and oldest; finding rows (``rows``) for resolved. ``total`` counts what the section is
    about (root causes, or resolved incidents); ``in_start_here`` of them are listed in Start
    here above and not repeated."""

    key: str  # new | regressed | resolved | oldest
    title: str
    rows: tuple[FindingRow, ...]
    total: int
    items: tuple[ActionItem, ...] = ()
    in_start_here: int = 0

    @property
    def more(self) -> int:
        return self.total - len(self.rows) - len(self.items) - self.in_start_here


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
    #: "Start here": the first ranked actions (one per company × root cause).
    start_here: tuple[ActionItem, ...] = ()
    #: Actions in scope (all of them are in the attached actions.csv).
    actions_total: int = 0
    #: What last night's refreshes did; None when none were queued.
    refreshes: RefreshSummary | None = None
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


def _action_sections(
    actions: pd.DataFrame, resolved: pd.DataFrame, start_keys: set[str], max_items: int
) -> tuple[DigestSection, ...]:
    """New / regressed / resolved / oldest: root causes for the open ones, finding rows for
    the resolved ones; what Start here lists is not repeated."""
    state = actions["state"].astype("string")
    sev = actions["severity"].astype("string")
    oldest = actions.loc[(state == "ongoing").fillna(False) & (sev == "error").fillna(False)]
    oldest = oldest.sort_values("nights_open", ascending=False, kind="stable", na_position="last")
    out = []
    for key, title, frame in (
        ("new", "New tonight", actions.loc[(state == "new").fillna(False)]),
        ("regressed", "Regressed (were resolved, are back)",
         actions.loc[(state == "regressed").fillna(False)]),
        ("resolved", "Resolved since last night", None),
        ("oldest", "Still open: the oldest errors", oldest),
    ):
        if frame is None:
            shown = rank_findings(resolved).head(max_items)
            shown = shown.assign(
                message=shown["message"].astype("string").str.replace(_EXPLAINS, "", regex=True)
            )
            out.append(DigestSection(key, title, finding_rows(shown, text_limit=240),
                                     len(resolved)))
            continue
        listed = frame["root_key"].astype("string").isin(list(start_keys)).to_numpy(bool)
        items = action_items(frame.loc[~listed], max_items, text_limit=240)
        out.append(DigestSection(key, title, (), len(frame), items, int(listed.sum())))
    return tuple(out)


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
    actions: pd.DataFrame | None = None,
    refreshes: pd.DataFrame | None = None,
    start_here: int = DEFAULT_DIGEST_START_HERE,
) -> DigestView:
    """The digest's view model: ``result`` (and ``actions``, ``refreshes``) cut to ``scope``;
    the first ``start_here`` actions lead; at most ``max_items`` entries per section."""
    scoped = scope.apply(result)
    if actions is None:
        actions = build_actions(scoped, refreshes=refreshes)
    actions = actions.reindex(columns=list(ACTION_COLUMNS))
    actions = actions.loc[scope.mask(actions, result.company_tags).to_numpy(dtype=bool)]
    lead = actions.head(max(start_here, 0))
    start_keys = set(lead["root_key"].dropna().astype(str))
    active = scoped.active.reindex(columns=list(FINDINGS_COLUMNS))
    resolved = unsnoozed(scoped.resolved).reindex(columns=list(FINDINGS_COLUMNS))
    change = build_change(active, resolved)
    open_errors, open_warnings = errors_and_warnings(active)
    as_of = fleet.as_of or result.as_of
    day = format_local(as_of, display_tz, "%Y-%m-%d", zone_name=False)
    sections = _action_sections(actions, resolved, start_keys, max_items)
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
        start_here=action_items(lead, None, text_limit=240),
        actions_total=len(actions),
        refreshes=build_refresh_summary(
            refreshes if scope.everything else _scoped_refreshes(refreshes, scoped),
            DIGEST_REFRESH_ROWS,
        ),
        events=build_events_view(fleet.events, limit=max_items) if scope.everything else None,
    )


def _scoped_refreshes(refreshes: pd.DataFrame | None,
                      scoped: AuditResult) -> pd.DataFrame | None:
    """The refreshes of the companies ``scoped`` has a finding or a resolved incident about."""
    if refreshes is None or refreshes.empty:
        return refreshes
    companies = pd.concat(
        [scoped.findings["company_id"], scoped.resolved["company_id"]], ignore_index=True
    ).dropna().astype("string").unique()
    keep = refreshes["company_id"].astype("string").isin(list(companies)).fillna(False)
    return refreshes.loc[keep.to_numpy(dtype=bool)]


@dataclass(frozen=True)
class _Attachment:
    filename: str
    data: bytes
    maintype: str
    subtype: str


def _csv_attachments(
    result: AuditResult,
    gzip_above: int,
    actions: pd.DataFrame | None = None,
    refreshes: pd.DataFrame | None = None,
    connections: pd.DataFrame | None = None,
) -> list[_Attachment]:
    frames = [
        ("findings.csv", findings_frame(result)),
        ("summary.csv", summary_frame(result)),
        ("incidents.csv", incidents_frame(result)),
    ]
    if actions is not None:
        frames.append(("actions.csv", actions.reindex(columns=list(ACTION_COLUMNS))))
        frames.append(("relinks.csv", relinks_csv_frame(actions, connections)))
    if refreshes is not None and not refreshes.empty:
        frames.append(("refreshes.csv", refreshes_csv_frame(refreshes)))
    out = []
    for name, frame in frames:
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
    actions: pd.DataFrame | None = None,
    refreshes: pd.DataFrame | None = None,
    connections: pd.DataFrame | None = None,
) -> EmailMessage:
    """The digest of ``result`` as one message (HTML + text + attachments).

    ``actions``: the ranked actions table (:func:`auditor.actions.build_actions`; default:
    built from ``result`` alone); ``refreshes``: the outcomes of last night's refreshes;
    ``connections``: the snapshot's ``companies`` frame (Codat's error text in
    ``relinks.csv``). ``actions.csv`` and ``relinks.csv`` are attached (cut to ``scope``),
    and ``refreshes.csv`` when refreshes were queued.

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
    if actions is None:
        actions = build_actions(result, refreshes=refreshes)
    actions = actions.reindex(columns=list(ACTION_COLUMNS))
    scoped_actions = actions.loc[scope.mask(actions, result.company_tags).to_numpy(dtype=bool)]
    scoped_refreshes = refreshes if scope.everything else _scoped_refreshes(refreshes, scoped)
    files = _csv_attachments(
        scoped, settings.gzip_above_bytes, scoped_actions, scoped_refreshes, connections
    )
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
            actions=scoped_actions,
            refreshes=refreshes,
            start_here=settings.start_here,
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
